"""Two tracks on one execution slot, in a real run: the second starts its kernel only once the
first has finished (so their kernels never sit side by side), and the run keeps its budget."""

from __future__ import annotations

import json

import pytest
from machine_speed import slowness

from graph.runner import run_task
from graph.settings import Settings


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_second_track_runs_after_the_first_and_the_run_keeps_its_budget(make_task, tmp_path):
    task = make_task("binary", n=900)
    run_dir = tmp_path / "run"
    slow = slowness()
    budget = 30.0 * slow  # room for both tracks to score on free cores, stretched on a busy machine
    final = run_task(task, run_dir, Settings(time_budget_s=budget, n_folds=3, tracks=("traditional", "neural"),
                                             parallel_kernels=1, kernel_threads=2, refine_max_candidates=2, seed=0))
    assert final.get("submission_path")
    planned = [p.track for p in final["blueprint"].tracks]
    assert planned == ["traditional", "neural"], final["blueprint"].skipped
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    ended = {e["track"]: e["t"] for e in events if e["event"] == "track"}
    first_cell = {}
    for e in events:
        if e["event"] in ("cross_validate", "attempt") and "track" in e:
            first_cell.setdefault(e["track"], e["t"])
    assert {"traditional", "neural"} <= set(ended), ended
    assert ended["traditional"] <= first_cell["neural"], "the neural track computed before the traditional one finished"
    assert final["tracks"]["neural"].status == "ok", final["tracks"]["neural"].reason
    session = next(e for e in events if e["event"] == "session_end")
    assert session["seconds"] <= budget + 5 * slow, session
