"""Each competition shape end to end, as a user runs it: `iml example`, `iml run`, `iml validate`,
`iml grade` against the kept answers (better than the constant sample submission), solution.py
reproducing the submission without iML, and `iml predict` on the test file giving it back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from machine_speed import backstop, scaled_duration

from scripts.examples import grade, make_example
from scripts.shape_examples import SHAPE_EXAMPLES
from solution_checks import LAUNCHER, assert_same_submission

REPO = Path(__file__).resolve().parents[2]


def iml(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=backstop(timeout), cwd=REPO)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(SHAPE_EXAMPLES))
def test_every_shape_end_to_end(name, tmp_path):
    task = make_example(name, tmp_path / name)
    run = tmp_path / "run"
    # better than the constant needs a scored model: 15 s on free cores, more on a busy machine
    done = iml("run", task, "--out", run, "--time-budget", scaled_duration(15), "--folds", "3", "--tracks", "traditional",
               "--refine-candidates", "3", "--quiet")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert iml("validate", task, run / "submission.csv").returncode == 0
    spec = json.loads((task / ".answers" / "meta.json").read_text())
    got, constant = grade(task, run / "submission.csv"), grade(task, next(task.glob("sample*ubmission*.csv")))
    assert got.metric == spec["metric"]
    from runtime.metrics import get_metric

    assert get_metric(got.metric).better(got.score, constant.score), (got, constant)
    recorded = json.loads((run / "task.json").read_text())
    assert recorded["task_type"] == SHAPE_EXAMPLES[name].task_type
    if recorded.get("images"):  # the report shows what the images look like
        assert (run / "report_files" / f"images_{recorded['images']['column']}.png").stat().st_size > 1000
        assert "### Images:" in (run / "report.md").read_text()
    # solution.py, in a process where iML cannot be imported
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    out = tmp_path / "solution_out.csv"
    solved = subprocess.run([sys.executable, "-I", str(launcher), str(run / "solution.py"), str(task), str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=backstop(300))
    assert solved.returncode == 0, solved.stderr[-3000:]
    assert_same_submission(run / "submission.csv", out)
    # iml predict on the task's own test rows (no test table: the sample submission's ids, their images)
    test_file = next((p for p in task.iterdir() if p.name.startswith("test.")), None) or next(task.glob("sample*ubmission*"))
    predicted = tmp_path / "predicted.csv"
    assert iml("predict", run, test_file, "--out", predicted).returncode == 0
    assert_same_submission(run / "submission.csv", predicted, reorder_by=recorded["id_column"])
