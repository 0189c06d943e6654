"""The large-table path end to end, on a 20k-row taxi table with the thresholds lowered so that it
takes the very path a 20M-row one does: the columnar cache, the sampled profile, the measured
plan, the kernels on the planned rows, the progress saying so, solution.py on the same rows, and a
resumed run reusing the cache. Nothing here depends on the machine's speed: the user's cap on a
fit's rows (`max_fit_rows`) makes the plan a sample whatever the measure says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from solution_checks import assert_same_submission, run_isolated

from graph.context import Settings
from graph.runner import run_task
from runtime.columnar import cache_paths, cached_manifest
from runtime.submission_file import validate_submission
from runtime.task_reader import read_task

ROWS = 20_000
LARGE = dict(large_table_mb=0.5, profile_sample_rows=5_000, measure_rows=4_000, max_fit_rows=6_000)


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    from scripts.examples import make_example

    root = tmp_path_factory.mktemp("large")
    task_dir = make_example("taxi_fares", root / "taxi", rows=ROWS)
    assert (task_dir / "labels.csv").stat().st_size > LARGE["large_table_mb"] * 2 ** 20
    events: list[dict] = []
    settings = Settings(time_budget_s=90, seed=0, refine_max_candidates=2, **LARGE)
    task = read_task(task_dir, settings)
    final = run_task(task_dir, root / "run", settings, task=task,
                     on_update=lambda mode, chunk: events.append(chunk) if mode == "custom" else None)
    return task_dir, root / "run", final, events


@pytest.mark.slow
def test_a_large_table_is_read_once_into_the_cache_and_profiled_on_a_sample(large_run):
    task_dir, run, final, events = large_run
    manifest = cached_manifest(run, task_dir / "labels.csv")
    assert manifest is not None and manifest["rows"] == ROWS
    assert manifest["columns"]["pickup_datetime"]["kind"] == "datetime"  # parsed once, not at every fit
    assert manifest["columns"]["pickup_longitude"]["dtype"] == "float32"
    assert manifest["columns"]["fare_amount"]["dtype"] == "float64"  # the target keeps its digits
    assert "key" not in manifest["columns"]  # the id: no fit reads it
    profile = json.loads((run / "profile.json").read_text())
    assert profile["n_train"] == ROWS and profile["sampled_rows"] == LARGE["profile_sample_rows"]
    kinds = {c["name"]: c["kind"] for c in profile["columns"]}
    assert kinds["pickup_datetime"] == "datetime" and "key" not in kinds
    said = [e["event"] for e in events]
    assert said.index("cache") < said.index("profile") < said.index("measure") < said.index("rows")


@pytest.mark.slow
def test_the_plan_is_measured_and_the_kernels_fit_on_its_rows(large_run):
    task_dir, run, final, events = large_run
    blueprint = json.loads((run / "blueprint.json").read_text())
    data = blueprint["data"]
    assert data["n_rows"] == ROWS and data["measured"]["rows"] == [2_000, 4_000]
    folds = blueprint["validation"]["n_folds"]
    assert 2_000 <= data["rows"] and data["rows"] * (folds - 1) / folds <= LARGE["max_fit_rows"]
    assert data["reasons"] and data["estimate_s"] > 0 and data["memory_mb"] > 0
    assert len(np.load(run / "y.npy")) == data["rows"]  # the folds were cut over the planned rows
    rows_event = next(e for e in events if e["event"] == "rows")
    assert rows_event["what"].startswith(f"fitting on {data['rows']:,} of {ROWS:,} rows")
    # the submission is the plan's: the traditional recipe scored, within its share
    track = final["tracks"]["traditional"]
    first = track.attempts[0]
    assert (first.source, first.status) == ("recipe", "ok")
    assert first.duration_s <= blueprint["tracks"][0]["time_share"] * blueprint["budget_s"]
    task = read_task(task_dir, Settings())
    assert validate_submission(task, run / "submission.csv") == []


@pytest.mark.slow
def test_solution_py_fits_on_the_same_rows_of_the_table(large_run, tmp_path):
    task_dir, run, final, events = large_run
    out = tmp_path / "again.csv"
    done = run_isolated(run / "solution.py", task_dir, out, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_submission(run / "submission.csv", out)


@pytest.mark.slow
def test_the_progress_says_what_was_done_with_the_rows(large_run):
    from rich.console import Console

    from scripts.progress import Progress

    task_dir, run, final, events = large_run
    console = Console(record=True, width=200, force_terminal=False)
    progress = Progress(console, budget_s=90, live=False)
    for event in events:
        progress("custom", event)
    text = console.export_text()
    assert "read once into the run's columnar cache" in text and f"of {ROWS:,} rows" in text


@pytest.mark.slow
def test_a_new_kernel_of_the_run_reuses_the_cache_and_its_rows(large_run):
    """What a resumed run's kernels do: read the cache the run built, never the table again."""
    from runtime.harness import Harness

    task_dir, run, final, events = large_run
    table, _ = cache_paths(run)
    written = table.stat().st_mtime_ns
    harness = Harness(run)
    assert table.stat().st_mtime_ns == written
    np.testing.assert_array_equal(harness.y, np.load(run / "y.npy"))
    assert harness.X["pickup_datetime"].dtype.kind == "M" and harness.X["dropoff_latitude"].dtype == np.float32
