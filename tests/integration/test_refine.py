"""refine against a real kernel on a tiny task: candidates are new attempts of the best track
(source "refine") run through the harness, and a change is kept only when the cross-validated
score improves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from langgraph.runtime import Runtime

import nodes.refine as refine_module
from graph.context import EventLog, RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.check import check
from nodes.execute import execute
from nodes.generate import generate
from nodes.profile import profile
from nodes.refine import Candidate, refine
from nodes.track import finish
from runtime.metrics import get_metric

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A binary task through analyze, profile, blueprint and one traditional attempt."""
    from conftest import tabular_frame, write_task

    root = tmp_path_factory.mktemp("refine")
    frame = tabular_frame(240)
    frame["outcome"] = np.where(frame.signal + np.random.RandomState(3).normal(scale=1.0, size=240) > 0, "yes", "no")
    frame = frame.drop(columns="signal")
    task_dir = write_task(root / "task", frame.iloc[:200], frame.iloc[200:].drop(columns="outcome"), None,
                          "Predict outcome; scored by area under the ROC curve.")
    run_dir = root / "run"
    run_dir.mkdir()
    ctx = RunContext(settings=Settings(time_budget_s=600, n_folds=3, tracks=("traditional",)), events=EventLog(run_dir / "events.jsonl"))
    runtime = Runtime(context=ctx)
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
    for node in (analyze, profile, blueprint):
        state.update(node(state, runtime))
    track_state = {**state, "plan": state["blueprint"].tracks[0], "attempts": []}
    track_state.update(generate(track_state, runtime))
    assert check(track_state, runtime)["last_error"] is None
    track_state["attempts"] = execute(track_state, runtime)["attempts"]
    state["tracks"] = finish(track_state, runtime)["tracks"]
    assert state["tracks"]["traditional"].status == "ok"
    yield state, runtime
    ctx.close()


class Scripted:
    """A proposer that tries the given params in order, the way an LLM proposer would."""

    def __init__(self, candidates: list[Candidate]):
        self.candidates = list(candidates)
        self.kept: list[bool] = []

    def next(self):
        return self.candidates.pop(0) if self.candidates else None

    def feedback(self, cand, kept):
        self.kept.append(kept)


def _refine_events(run_dir: str) -> list[dict]:
    lines = (Path(run_dir) / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "refine" and "attempt" in e]


def test_a_worse_candidate_is_recorded_but_not_kept(tracked, monkeypatch):
    state, runtime = tracked
    base = state["tracks"]["traditional"]
    params = dict(base.best.params)
    stump = Candidate(params={**params, "num_leaves": 2, "n_estimators": 1, "learning_rate": 0.001}, note="a single stump")
    proposer = Scripted([stump])
    monkeypatch.setattr(refine_module, "propose_candidates", lambda *a, **k: proposer)
    update = refine(state, runtime)
    result = update["tracks"]["traditional"]
    new = [a for a in result.attempts if a.source == "refine"]
    assert len(new) == 1 and new[0].status == "ok" and new[0].params["num_leaves"] == 2
    metric = get_metric("auc")
    assert metric.better(base.score, new[0].score)  # the stump is worse ...
    assert proposer.kept == [False]  # ... so refine says it was not kept
    assert result.best_attempt == base.best_attempt and result.score == base.score
    assert Path(new[0].dir, "oof.npy").exists() and Path(new[0].dir, "model.py").exists()


def test_search_keeps_only_improvements(tracked, monkeypatch):
    state, runtime = tracked
    monkeypatch.setattr(refine_module, "MAX_CANDIDATES", 4)
    base = state["tracks"]["traditional"]
    before = len(_refine_events(state["run_dir"]))
    update = refine(state, runtime)
    result = update["tracks"]["traditional"]
    tried = [a for a in result.attempts if a.source == "refine"]
    assert 1 <= len(tried) <= 4
    assert all(a.attempt > base.best_attempt for a in tried)
    metric = get_metric("auc")
    # kept exactly when the score beat the best so far by more than fold noise
    from nodes.refine import beyond_fold_noise

    by_number = {a.attempt: a for a in result.attempts}
    current = base.best
    for event in _refine_events(state["run_dir"])[before:]:
        cand = by_number[event["attempt"]]
        expected = cand.status == "ok" and beyond_fold_noise(metric, cand, current)
        assert event["kept"] == expected, event
        if expected:
            assert metric.better(cand.score, current.score)
            current = cand
    # the track's best is the last kept attempt, refine's or the base
    assert result.best_attempt == current.attempt and result.score == pytest.approx(current.score)
    assert not metric.better(base.score, result.score)


def test_when_the_best_attempts_search_runs_dry_the_next_family_is_searched(tracked, monkeypatch):
    """The time left after one base's search goes to the best attempt of another model family,
    whose candidates are attempts of the track with that family's name."""
    state, runtime = tracked
    track = state["tracks"]["traditional"]
    base = track.best
    member = base.model_copy(update={"attempt": base.attempt + 50, "member": "linear", "source": "member",
                                     "score": base.score - 0.01})
    state = {**state, "tracks": {"traditional": track.model_copy(update={"attempts": [*track.attempts, member]})}}
    monkeypatch.setattr(refine_module, "propose_candidates", lambda *a, **k: Scripted([]))  # the best: nothing to try
    monkeypatch.setattr(refine_module, "MAX_CANDIDATES", 2)
    before = len(_refine_events(state["run_dir"]))
    result = refine(state, runtime)["tracks"]["traditional"]
    events = _refine_events(state["run_dir"])[before:]
    assert len(events) == 2 and {e["base"] for e in events} == {member.attempt}
    tried = [a for a in result.attempts if a.source == "refine"][-2:]
    assert all(a.member == "linear" and a.status == "ok" for a in tried)
    done = [json.loads(line) for line in (Path(state["run_dir"]) / "events.jsonl").read_text().splitlines()][-1]
    assert done["event"] == "refine_done" and done["stopped"] == "candidates"
