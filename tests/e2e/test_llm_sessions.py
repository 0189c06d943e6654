"""Runs with a real model in the loop, replayed as tests (issue 30).

Each folder under tests/fixtures/llm_sessions/ holds one `iml run` recorded while a capable model
answered every request through `iml llm-server` (README: "Hand-answered server, recording and
replay"): `recording/` (the requests and answers, `--llm-record`) and `session.json`: how to
rebuild the task (the example, its seed and rows), the replay's arguments, the scores the
model's code must reach, and what the recorded run itself did, to read.

A replay needs no model and no server: it runs the model's code again, in real kernels, on the
rebuilt task. It must use every recorded answer once, and every attempt the model wrote (its
modules, its repairs, its rewrites) must score what `expected` says, up to floating point; the
submission must be valid. What the framework adds around them (bags, the stacker, the ensemble)
is left to the framework's own tests: how much of it fits depends on the machine's speed.

The replay's budget is the test's, not the recorded run's: a run answered by hand waits minutes
per answer on its clock, and a replay at that budget would spend the time it did not wait on
long-budget work (bags, fine-tuning). `expected` is what the model's code scores at the replay's
budget on the current recipes, which it subclasses: a change to a recipe can change it. Then,
after checking why, refresh it from a replay (the recorded run's own scores stay in `recorded`):

    PYTHONPATH=$PWD .venv/bin/python tests/e2e/test_llm_sessions.py expect NAME

To store a new session, after recording it (tests/fixtures/llm_sessions/README.md):

    PYTHONPATH=$PWD .venv/bin/python tests/e2e/test_llm_sessions.py store NAME RUN_DIR RECORDING_DIR \\
        EXAMPLE SEED ROWS -- REPLAY_ARGS...
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from graph.context import Settings
from graph.recording import read_recording
from runtime.budget import LLM_SOURCES
from runtime.submission_file import validate_submission
from runtime.task_reader import read_task

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "tests" / "fixtures" / "llm_sessions"
REL = 1e-6  # floating point only: the same code on the same rows, another machine's arithmetic
ABS = 1e-9


def session_names() -> list[str]:
    return sorted(p.parent.name for p in SESSIONS.glob("*/session.json"))


def leaderboard(run: Path) -> list[dict]:
    """Each row of a run's leaderboard.csv: entry, source, status, score (None when unscored) and
    the seconds its cross-validation took (to read: a replay compares the rest)."""
    with (run / "leaderboard.csv").open(newline="") as f:
        return [{"entry": r["entry"], "source": r["source"], "status": r["status"],
                 "score": float(r["score"]) if r["score"] else None,
                 "seconds": float(r["seconds"]) if r["seconds"] else None} for r in csv.DictReader(f)]


def model_written(rows: list[dict]) -> list[dict]:
    """The attempts whose code the model wrote: generated, repaired or rewritten by refine."""
    return [r for r in rows if r["source"] in LLM_SOURCES]


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def rebuild(session: dict, folder: Path) -> Path:
    """The session's task, from data that ships offline: the example cut to its rows."""
    from scripts.examples import make_example

    return make_example(session["example"], folder, seed=session["seed"], rows=session["rows"])


def with_scaled_budget(args: list[str]) -> list[str]:
    """The session's arguments with its --time-budget stretched by the machine's measured slowness:
    the plan divides its rooms by the slowness it measures, so on a busy machine the same plan
    (the same tracks, the same requests) needs the budget stretched alike (a 3-minute replay beside
    two busy processes planned no pretrained track and left its recorded answer unasked)."""
    from machine_speed import scaled_duration

    from scripts.cli import parse_duration

    args = list(args)
    if "--time-budget" in args:
        at = args.index("--time-budget") + 1
        args[at] = scaled_duration(parse_duration(args[at]))
    return args


def replay(session: dict, recording: Path, folder: Path) -> tuple[Path, Path, str]:
    """(task, run folder, what the run printed) of `iml run --llm-replay` on the rebuilt task."""
    import contextlib
    import io

    from scripts.cli import main

    task = rebuild(session, folder / "task")
    run = folder / "replayed"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", str(task), "--llm-replay", str(recording), "--out", str(run), "--quiet",
                     *with_scaled_budget(session["args"])])
    assert code == 0, printed.getvalue()
    return task, run, printed.getvalue()


@pytest.mark.parametrize("name", session_names())
def test_a_real_models_run_replays_to_its_scores(name, tmp_path):
    folder = SESSIONS / name
    session = json.loads((folder / "session.json").read_text())
    recording = folder / "recording"
    _, entries = read_recording(recording)

    task, run, printed = replay(session, recording, tmp_path)

    # every recorded answer was asked for, once, and nothing fell back for want of one
    assert f"llm replay: {len(entries)} of {len(entries)} recorded answers used" in printed, printed
    said = events(run)
    assert sorted(e["replayed"] for e in said if e["event"] == "llm" and "replayed" in e) == [e.n for e in entries]
    assert [e for e in said if e["event"] == "llm_replay_missing"] == []

    # the model's code ran, attempt by attempt, and scored what it scores
    got, want = model_written(leaderboard(run)), session["expected"]
    assert [(r["entry"], r["source"], r["status"]) for r in got] == \
        [(r["entry"], r["source"], r["status"]) for r in want]
    for g, w in zip(got, want, strict=True):
        if w["score"] is None:
            assert g["score"] is None, g
        else:
            assert g["score"] == pytest.approx(w["score"], rel=REL, abs=ABS), (g, w)
    assert any(r["source"] == "llm" and r["status"] == "ok" for r in got)

    assert validate_submission(read_task(task, Settings()), run / "submission.csv") == []


def test_every_session_is_complete_and_small():
    """What a stored session must hold for its replay to mean something (and stay fast)."""
    names = session_names()
    assert len(names) >= 3
    for name in names:
        session = json.loads((SESSIONS / name / "session.json").read_text())
        _, entries = read_recording(SESSIONS / name / "recording")
        assert {"analyze", "blueprint", "generate"} <= {e.role for e in entries}, name
        assert session["rows"] <= 1000 and session["expected"], name
        assert model_written(session["recorded"]["leaderboard"]), name


# -- storing a session, refreshing its expectations (run as a script) -----------------------------


def store_session(name: str, run: Path, recording: Path, example: str, seed: int, rows: int, args: list[str]) -> Path:
    """Copy a recorded run into tests/fixtures/llm_sessions/NAME: its recording, how to rebuild its
    task, the replay's arguments, and what the recorded run did (its arguments, wall seconds, each
    request's seconds of waiting for its answer, its leaderboard), to read. Then `expect` it."""
    folder = SESSIONS / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copytree(recording, folder / "recording", ignore=shutil.ignore_patterns("*.tmp"))
    index, entries = read_recording(recording)
    said = events(run)
    ended = next((e for e in reversed(said) if e["event"] == "session_end"), {})
    settings = json.loads((run / "settings.json").read_text()) if (run / "settings.json").exists() else {}
    session = {
        "example": example, "seed": seed, "rows": rows, "args": args, "expected": [],
        "recorded": {"model": index.get("model"), "time_budget_s": settings.get("time_budget_s"),
                     "wall_s": ended.get("seconds"),
                     "requests": [{"n": e.n, "role": e.role, "track": e.track, "outcome": e.outcome,
                                   "seconds": e.seconds} for e in entries],
                     "leaderboard": leaderboard(run)},
    }
    (folder / "session.json").write_text(json.dumps(session, indent=2) + "\n")
    return folder


def expect(name: str) -> list[dict]:
    """Replay session NAME at its arguments and keep what the model's code scored as `expected`."""
    path = SESSIONS / name / "session.json"
    session = json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        _, run, printed = replay(session, SESSIONS / name / "recording", Path(tmp))
        session["expected"] = model_written(leaderboard(run))
    path.write_text(json.dumps(session, indent=2) + "\n")
    print(printed.splitlines()[-1])
    return session["expected"]


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "expect":
        print(json.dumps(expect(rest[0]), indent=1))
    else:
        head, _, replay_args = " ".join(rest).partition(" -- ")
        name, run, recording, example, seed, rows = head.split()
        print(store_session(name, Path(run), Path(recording), example, int(seed), int(rows), replay_args.split()))
