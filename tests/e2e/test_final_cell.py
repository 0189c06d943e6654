"""The ensemble computed in the run's last kernel: the framework's process never imports sklearn
on a single-track run, the kernel's blend is the one the framework would compute itself, and a
cell that fails leaves the framework to compute it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from machine_speed import backstop

from runtime.kernel import KernelSession
from runtime.records import TaskSpec

REPO = Path(__file__).resolve().parents[2]

RUN = """
import sys
from graph.context import Settings
from graph.runner import run_task
run_task(sys.argv[1], sys.argv[2], Settings(time_budget_s=8, n_folds=3, tracks=("traditional",), refine_max_candidates=2))
print("imported:", sorted(m for m in ("sklearn", "scipy", "lightgbm") if m in sys.modules))
"""


def test_a_single_track_run_blends_in_its_kernel_and_never_imports_sklearn(make_task, tmp_path):
    from graph.runner import run_status
    from runtime.association import read_association
    from runtime.blend import blend

    task = make_task("multiclass")
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", RUN, str(task), str(run)], cwd=REPO, capture_output=True, text=True,
                          timeout=backstop(180))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported: []" in done.stdout, done.stdout
    [event] = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()
               if json.loads(line)["event"] == "ensemble"]
    assert event["where"] == "kernel"
    finished, state = run_status(run)
    assert finished
    # the framework's own blend of the same tracks: the same result, the same saved predictions
    kept = (run / "ensemble_test.npy").read_bytes()
    assert blend(state["task"], state["tracks"], run) == state["ensemble"]
    assert (run / "ensemble_test.npy").read_bytes() == kept
    ranked = read_association(run)
    assert ranked and {name for name, _, _ in ranked} <= {c.name for c in state["profile"].columns}
    assert "association.png" in (run / "report.md").read_text()


def test_a_final_cell_that_fails_leaves_the_blend_to_the_framework(tmp_path):
    from nodes.ensemble import blend_in_kernel

    task = TaskSpec(task_dir=str(tmp_path), task_type="binary", target="y", id_column="id", metric="auc",
                    greater_is_better=True, submission_format="proba", submission_columns=["id", "y"], classes=["0", "1"])
    with KernelSession(tmp_path) as kernel:
        result, where = blend_in_kernel(kernel, task, {}, None, tmp_path / "no such run")
        assert result is None and where.startswith("framework (the kernel's cell failed: ") and "Error" in where
        assert kernel.execute("1 + 1").ok  # and the kernel is still usable


def test_a_baseline_blended_in_the_kernel_reads_back_with_its_nan_score(make_task, tmp_path):
    """No track scored (every attempt timed out on a slow machine): the kernel's blend is the
    constant baseline, whose score is NaN, and it must come back as the framework computes it."""
    import math

    from graph.context import Settings
    from nodes.ensemble import blend_in_kernel
    from runtime.blend import blend
    from runtime.task_reader import read_task

    task = read_task(make_task("binary"), Settings())
    run = tmp_path / "run"
    run.mkdir()
    with KernelSession(run) as kernel:
        result, where = blend_in_kernel(kernel, task, {}, None, run)
    assert where == "kernel" and result is not None and result.kind == "baseline" and math.isnan(result.score)
    kept = (run / "ensemble_test.npy").read_bytes()
    here = blend(task, {}, run)
    assert here.model_copy(update={"score": 0.0}) == result.model_copy(update={"score": 0.0})
    assert (run / "ensemble_test.npy").read_bytes() == kept
