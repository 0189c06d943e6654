"""The `iml` command as a user types it: real subprocesses, real kernels, tiny data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from machine_speed import backstop, scaled_duration

REPO = Path(__file__).resolve().parents[2]


def iml(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=backstop(timeout), cwd=cwd or REPO)


@pytest.mark.slow
@pytest.mark.parametrize("example", ["iris", "breast_cancer", "diabetes"])
def test_example_run_validate_grade(tmp_path, example):
    task, run = tmp_path / "task", tmp_path / "run"
    assert iml("example", example, task).returncode == 0
    # the grade below needs a scored model: 20 s on free cores, more on a busy machine
    done = iml("run", task, "--time-budget", scaled_duration(20), "--out", run, "--folds", "3",
               "--refine-candidates", "3")  # refine runs, but the run ends once its chains are done
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leaderboard" in done.stdout and str(run / "submission.csv") in done.stdout
    assert iml("validate", task, run / "submission.csv").returncode == 0
    graded = iml("grade", task, run / "submission.csv")
    assert graded.returncode == 0
    score = float(graded.stdout.split(":")[1].split()[0])
    # far from chance on these easy sets: the pipeline learnt something real
    assert {"iris": score > 0.85, "breast_cancer": score > 0.95, "diabetes": score < 65}[example], score
    board = pd.read_csv(run / "leaderboard.csv")
    assert (board.status == "ok").any()
    assert (run / "tracks" / "traditional" / "attempt_1" / "features.py").exists()


@pytest.mark.slow
def test_a_task_never_seen_before(tmp_path):
    """Arbitrary column names, a description in plain prose, ids that are strings."""
    rng = np.random.RandomState(3)
    n = 300
    frame = pd.DataFrame({
        "Ticket No.": [f"T-{i:05d}" for i in range(n)],
        "Weight (kg)": rng.normal(70, 12, n).round(1),
        "Home Town": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], n),
        "visit date": pd.date_range("2021-01-01", periods=n, freq="D").astype(str),
        "Spend": rng.gamma(2, 50, n).round(2),
    })
    frame["Will Return"] = np.where(frame["Spend"] + rng.normal(0, 30, n) > 100, "Y", "N")
    task = tmp_path / "shop"
    task.mkdir()
    frame.iloc[:240].to_csv(task / "train.csv", index=False)
    frame.iloc[240:].drop(columns="Will Return").to_csv(task / "test.csv", index=False)
    pd.DataFrame({"Ticket No.": frame["Ticket No."].iloc[240:], "Will Return": "N"}).to_csv(task / "sample_submission.csv", index=False)
    (task / "description.md").write_text(
        "Our shop wants to know which customers come back. For each ticket in the test set, say "
        "whether the customer will return (Y or N). We will count the share of tickets you get right.\n")
    run = tmp_path / "run"
    done = iml("run", task, "--time-budget", "20s", "--out", run, "--folds", "3",
               "--refine-candidates", "3")  # refine runs, but the run ends once its chains are done
    assert done.returncode == 0, done.stdout + done.stderr
    assert iml("validate", task, run / "submission.csv").returncode == 0
    sub = pd.read_csv(run / "submission.csv")
    assert list(sub.columns) == ["Ticket No.", "Will Return"] and set(sub["Will Return"]) <= {"Y", "N"}


@pytest.mark.parametrize("setup, args, message", [
    (lambda t: (t / "train.csv").unlink(), [], "train file not found"),
    (lambda t: (t / "test.csv").write_text(""), [], "test file is empty"),
    (lambda t: None, ["--target", "nope"], "target 'nope' is not a column"),
    (lambda t: None, ["--metric", "bananas"], "unknown metric 'bananas'"),
    (lambda t: pd.read_csv(t / "test.csv")[["row_key"]].to_csv(t / "test.csv", index=False), [], "test file lacks 4 of the 4"),
    (lambda t: (t / "train.csv").write_bytes(b"PK\x03\x04\x00\x00binary zip"), [], "not a text table"),
])
def test_bad_input_is_one_line_and_exit_2(make_task, tmp_path, setup, args, message):
    task = make_task("binary")
    setup(task)
    done = iml("run", task, "--out", tmp_path / "run", *args, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_validate_reports_each_problem(make_task, tmp_path):
    task = make_task("regression")
    sub = pd.read_csv(task / "sample_submission.csv").iloc[:-3]
    sub.loc[sub.index[0], "outcome"] = None
    sub.to_csv(tmp_path / "s.csv", index=False)
    done = iml("validate", task, tmp_path / "s.csv", timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert any("rows, expected 48" in line for line in lines) and any("missing values" in line for line in lines)


def test_example_list_and_unknown_example(tmp_path):
    listed = iml("example", "--list", timeout=60)
    assert listed.returncode == 0 and "penguins" in listed.stdout and "diamonds" in listed.stdout
    unknown = iml("example", "nope", tmp_path / "x", timeout=60)
    assert unknown.returncode == 2 and "nope" in unknown.stderr and "Traceback" not in unknown.stderr
