"""A real `iml run` killed with SIGKILL, then `iml resume`: nothing finished is redone, the
attempts on disk stay numbered once each, the clock carries over, and the result is valid.

The first test kills one run twice — while its track cross-validates, then (resumed) while
refine tries candidates — and resumes it twice; the second kills a run while submit writes
solution.py and the report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from machine_speed import backstop, scaled_duration

from graph.runner import run_status
from scripts.examples import make_example

REPO = Path(__file__).resolve().parents[2]


def iml(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=backstop(timeout), cwd=REPO)


def events(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # the run is writing this very line as we read
            break
    return out


def sessions(log: list[dict]) -> list[list[dict]]:
    """The events of each session (the run, then each resume)."""
    out: list[list[dict]] = []
    for e in log:
        if e["event"] == "session" or not out:
            out.append([])
        out[-1].append(e)
    return out


def start_and_kill(args: list[str], run: Path, until, timeout: float = 240) -> int:
    """Start `iml ARGS`, SIGKILL it (no cleanup at all) once `until(run)` holds; return how many
    of its kernels outlived it for more than 20 s (they are killed here either way)."""
    process = subprocess.Popen([sys.executable, "-m", "scripts.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + backstop(timeout)
    try:
        while not until(run):
            assert process.poll() is None, "the run ended before the moment to kill it"
            assert time.time() < deadline, "the moment to kill the run never came"
            time.sleep(0.05)
        children = psutil.Process(process.pid).children(recursive=True)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # The kernels notice that their parent is gone and exit (ipykernel's parent poller).
    _, alive = psutil.wait_procs(children, timeout=20)
    for p in alive:  # never leave a stray process behind, whatever happened
        p.kill()
    return len(alive)


def cross_validating(run: Path, attempt: int) -> bool:
    """The event that says the attempt's cross-validation has begun has been written."""
    return any(e["event"] == "cross_validate" and e.get("attempt") == attempt for e in events(run))


def attempt_numbers(run: Path) -> list[int]:
    folder = run / "tracks" / "traditional"
    return sorted(int(p.name.removeprefix("attempt_")) for p in folder.iterdir() if p.name.startswith("attempt_"))


def executions(run: Path) -> dict[int, tuple[str, float | None]]:
    """attempt -> (what was executed, when its result was written, or None)."""
    out = {}
    for n in attempt_numbers(run):
        folder = run / "tracks" / "traditional" / f"attempt_{n}"
        if (folder / "execution.json").exists():
            result = folder / "result.json"
            out[n] = (json.loads((folder / "execution.json").read_text())["sha256"],
                      result.stat().st_mtime if result.exists() else None)
    return out


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return make_example("penguins", tmp_path_factory.mktemp("resume") / "penguins")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_mid_track_then_mid_refine(task, tmp_path):
    run = tmp_path / "run"
    # 1. killed while attempt 1 cross-validates: its check passed and its execution has begun
    # refine must try two candidates in the budget: 30 s on free cores, more on a busy machine
    budget = scaled_duration(30)
    orphans = start_and_kill(["run", task, "--out", run, "--time-budget", budget, "--folds", "3", "--tracks", "traditional",
                              "--quiet"], run, lambda r: cross_validating(r, attempt=1))
    assert orphans == 0, "a kernel outlived its killed run"
    first = sessions(events(run))
    assert len(first) == 1 and "generate" in {e["event"] for e in first[0]}
    assert not any(e["event"] in ("track", "submit") for e in first[0])
    killed = json.loads((run / "run.json").read_text())["sessions"][0]
    assert killed["ended"] is None  # killed: no goodbye
    # the clock was written at the last event, whether or not a heartbeat had fired (before the
    # event's line, so it counts it; 3 ms for the rounding of three numbers to milliseconds)
    assert killed["started"] + killed["seconds"] >= first[0][-1]["t"] - 3e-3 > killed["started"]

    # 2. resumed, and killed again once refine has finished two candidates
    def refined_twice(r: Path) -> bool:
        last = sessions(events(r))[-1]
        return len(sessions(events(r))) == 2 and sum(e["event"] == "refine" and "attempt" in e for e in last) >= 2

    orphans = start_and_kill(["resume", run, "--quiet"], run, refined_twice)
    assert orphans == 0
    second = sessions(events(run))[1]
    assert not any(e["event"] in ("task", "profile", "blueprint", "generate") for e in second), "finished stages ran again"
    before = executions(run)
    finished_before = {n for n, (_, written) in before.items() if written is not None}
    assert {1, 2, 3} <= finished_before, before

    # 3. resumed to the end
    resumed = iml("resume", run)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout and str(run / "submission.csv") in resumed.stdout
    log = events(run)
    third = sessions(log)[2]
    assert not any(e["event"] in ("task", "profile", "blueprint", "generate", "track") for e in third)
    # refine resumes at the step it was in: no candidate that had finished cross-validates again
    # (counted from the events), and its search goes on from the study in the run folder
    validated = [e["attempt"] for e in third if e["event"] == "cross_validate"]
    assert not set(validated) & finished_before, (validated, finished_before)
    assert len(validated) == len(set(validated))
    assert (run / "tracks" / "traditional" / "refine_study.jsonl").exists()
    after = executions(run)
    for n in finished_before:
        if after[n][0] == before[n][0]:  # the same code and params in the same folder
            assert after[n][1] == before[n][1], f"attempt {n} was executed again"
    # every attempt is numbered once, with no gap, and the run's state knows exactly those
    numbers = attempt_numbers(run)
    assert numbers == list(range(1, len(numbers) + 1))
    finished, state = run_status(run)
    assert finished
    recorded = sorted(a.attempt for a in state["tracks"]["traditional"].attempts)
    assert recorded == numbers
    # the clock carried over: each session started with what the earlier ones had used
    clock = json.loads((run / "run.json").read_text())
    assert [s["kind"] for s in clock["sessions"]] == ["run", "resume", "resume"]
    used = [s["used_before_s"] for s in clock["sessions"]]
    assert used[0] == 0 < used[1] < used[2] and clock["sessions"][2]["ended"] == "finished"
    assert clock["time_budget_s"] == float(budget.removesuffix("s"))

    assert iml("validate", task, run / "submission.csv").returncode == 0
    for name in ("solution.py", "report.md", "report.html", "leaderboard.csv"):
        assert (run / name).exists(), name
    assert "resumed 2 time" in (run / "report.md").read_text()

    again = iml("resume", run)
    assert again.returncode == 0 and "already finished" in again.stdout


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_killed_during_submit(task, tmp_path):
    run = tmp_path / "run"
    # submission.csv is written; submit is writing solution.py and the report
    orphans = start_and_kill(["run", task, "--out", run, "--time-budget", "20s", "--folds", "3", "--tracks", "traditional",
                              "--quiet"], run, lambda r: "submit" in {e["event"] for e in events(r)})
    assert orphans == 0
    assert "report" not in {e["event"] for e in events(run)}
    folders = attempt_numbers(run)
    resumed = iml("resume", run, "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    redone = {e["event"] for e in sessions(events(run))[1]}
    assert not redone & {"attempt", "refine", "track", "ensemble"}, redone
    assert {"submit", "solution", "report"} <= redone
    assert attempt_numbers(run) == folders
    assert iml("validate", task, run / "submission.csv").returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_right_after_the_first_score_leaves_a_valid_submission(task, tmp_path):
    run = tmp_path / "run"
    # attempt 1 must score in the budget: 20 s on free cores, more on a busy machine
    orphans = start_and_kill(["run", task, "--out", run, "--time-budget", scaled_duration(20), "--folds", "3",
                              "--tracks", "traditional", "--quiet"], run, lambda r: any(e["event"] == "submission" for e in events(r)))
    assert orphans == 0
    log = events(run)
    [written] = [e for e in log if e["event"] == "submission"]
    assert written["kind"] == "anytime" and written["source"] == "traditional/attempt_1"
    assert not any(e["event"] == "submit" for e in log), "killed before the end: only the anytime file exists"
    checked = iml("validate", task, run / "submission.csv")
    assert checked.returncode == 0, checked.stderr
    assert not list(run.glob(".*.tmp")) or (run / "submission.csv").exists()
    # resumed to the end, the final blend replaces it, and the events say when each was written
    assert iml("resume", run, "--quiet").returncode == 0
    kinds = [e["kind"] for e in events(run) if e["event"] == "submission"]
    assert kinds[0] == "anytime" and kinds[-1] == "final"
    assert json.loads((run / "submission.json").read_text())["kind"] == "final"
    assert iml("validate", task, run / "submission.csv").returncode == 0
