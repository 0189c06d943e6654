"""Runs with a real model in the loop, replayed as tests (issue 30).

Each folder under tests/fixtures/llm_sessions/ holds one `iml run` recorded while a capable model
answered every request through `iml llm-server` (README: "Hand-answered server, recording and
replay"): `recording/` (the requests and answers, `--llm-record`), `session.json` (how to rebuild
the task: the example, its seed and rows; the run's arguments; what the recorded run's
leaderboard held, attempt by attempt) and `submission.csv` (the recorded run's). A replay needs no
model and no server: it runs the model's code again, in real kernels, on the rebuilt task, and
must use every recorded answer once, score every attempt as the recorded run did (up to floating
point), and end with the same submission.

To store a new session, after recording it:

    PYTHONPATH=$PWD .venv/bin/python tests/e2e/test_llm_sessions.py NAME RUN_DIR RECORDING_DIR \\
        EXAMPLE SEED ROWS -- RUN_ARGS...
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from graph.context import Settings
from graph.recording import read_recording
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


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def rebuild(session: dict, folder: Path) -> Path:
    """The session's task, from data that ships offline: the example cut to its rows."""
    from scripts.examples import make_example

    return make_example(session["example"], folder, seed=session["seed"], rows=session["rows"])


def same_values(got: Path, want: Path) -> list[str]:
    """Where two submissions differ beyond floating point: the columns, the ids, or values."""
    with got.open(newline="") as f:
        rows_got = list(csv.reader(f))
    with want.open(newline="") as f:
        rows_want = list(csv.reader(f))
    if rows_got[0] != rows_want[0] or len(rows_got) != len(rows_want):
        return [f"columns or rows differ: {rows_got[0]} x {len(rows_got)} vs {rows_want[0]} x {len(rows_want)}"]
    problems = []
    for i, (a, b) in enumerate(zip(rows_got[1:], rows_want[1:], strict=True), 2):
        for column, x, y in zip(rows_want[0], a, b, strict=True):
            try:
                close = math.isclose(float(x), float(y), rel_tol=REL, abs_tol=ABS)
            except ValueError:
                close = x == y
            if not close:
                problems.append(f"line {i}, {column}: {x} vs {y}")
    return problems[:5]


@pytest.mark.parametrize("name", session_names())
def test_a_real_models_run_replays_to_its_scores_and_submission(name, tmp_path, capsys):
    from scripts.cli import main

    folder = SESSIONS / name
    session = json.loads((folder / "session.json").read_text())
    recording = folder / "recording"
    _, entries = read_recording(recording)
    task = rebuild(session, tmp_path / "task")
    run = tmp_path / "replayed"
    capsys.readouterr()

    code = main(["run", str(task), "--llm-replay", str(recording), "--out", str(run), "--quiet", *session["args"]])
    printed = capsys.readouterr().out
    assert code == 0, printed

    # every recorded answer was asked for, once, and nothing fell back for want of one
    assert f"llm replay: {len(entries)} of {len(entries)} recorded answers used" in printed, printed
    said = events(run)
    assert sorted(e["replayed"] for e in said if e["event"] == "llm" and "replayed" in e) == [e.n for e in entries]
    assert [e for e in said if e["event"] == "llm_replay_missing"] == []

    # the model's code ran and scored what it scored when recorded, attempt by attempt
    got, want = leaderboard(run), session["leaderboard"]
    assert [(r["entry"], r["source"], r["status"]) for r in got] == \
        [(r["entry"], r["source"], r["status"]) for r in want]
    for g, w in zip(got, want, strict=True):
        if w["score"] is None:
            assert g["score"] is None, g
        else:
            assert g["score"] == pytest.approx(w["score"], rel=REL, abs=ABS), (g, w)
    assert any(r["source"] == "llm" and r["status"] == "ok" for r in got)  # the model's modules, not recipes

    # the same submission, and a valid one
    assert validate_submission(read_task(task, Settings()), run / "submission.csv") == []
    assert same_values(run / "submission.csv", folder / "submission.csv") == []


def test_every_session_is_complete_and_rebuilds_small():
    """What a stored session must hold for its replay to mean something (and stay fast)."""
    names = session_names()
    assert len(names) >= 3
    for name in names:
        session = json.loads((SESSIONS / name / "session.json").read_text())
        _, entries = read_recording(SESSIONS / name / "recording")
        assert {"analyze", "blueprint", "generate"} <= {e.role for e in entries}, name
        assert session["rows"] <= 1000 and (SESSIONS / name / "submission.csv").is_file(), name
        assert [r["entry"] for r in session["leaderboard"]], name


# -- storing a session (run as a script) ---------------------------------------------------------


def store_session(name: str, run: Path, recording: Path, example: str, seed: int, rows: int, args: list[str]) -> Path:
    """Copy a recorded run into tests/fixtures/llm_sessions/NAME: its recording, its leaderboard
    and submission as the replay's expectations, how to rebuild its task, and what the run spent
    (its wall seconds, those it waited for answers) to read, not to test."""
    folder = SESSIONS / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copytree(recording, folder / "recording", ignore=shutil.ignore_patterns("*.tmp"))
    shutil.copyfile(run / "submission.csv", folder / "submission.csv")
    index, entries = read_recording(recording)
    ended = next((e for e in reversed(events(run)) if e["event"] == "session_end"), {})
    session = {
        "example": example, "seed": seed, "rows": rows, "args": args,
        "model": index.get("model"),
        # requests of tracks that ask at once overlap, and tracks compute while others wait: the
        # run's compute is its replay's wall time, not the wall time less these seconds
        "recorded": {"wall_s": ended.get("seconds"), "answer_seconds_summed": round(sum(e.seconds for e in entries), 1),
                     "requests": [{"n": e.n, "role": e.role, "track": e.track, "outcome": e.outcome,
                                   "seconds": e.seconds} for e in entries]},
        "leaderboard": leaderboard(run),
    }
    (folder / "session.json").write_text(json.dumps(session, indent=2) + "\n")
    return folder


if __name__ == "__main__":
    head, _, rest = " ".join(sys.argv[1:]).partition(" -- ")
    name, run, recording, example, seed, rows = head.split()
    print(store_session(name, Path(run), Path(recording), example, int(seed), int(rows), rest.split()))
