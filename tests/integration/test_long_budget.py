"""A long budget's last steps against a real kernel on a tiny task: refine's search stops, the
best attempt of each model family is bagged (its folds cut several times, a seed per cut), the
ensemble weighs a stacker over the families, and the leaderboard, solution.py and `iml predict`
all hold what was chosen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from langgraph.runtime import Runtime
from solution_checks import assert_same_submission, run_isolated

from graph.context import EventLog, RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.ensemble import ensemble
from nodes.profile import profile
from nodes.submit import submit
from runtime.metrics import get_metric

pytestmark = pytest.mark.slow

BUDGET_S = 600.0  # a long budget's plan; the tiny task ends in well under a minute of it


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A regression task through its track (LightGBM and the linear member), refine with one
    candidate per family, the bags, the ensemble and submit."""
    from conftest import tabular_frame, write_task

    from graph.builder import build_track_graph
    from nodes.refine import build_refine_graph

    root = tmp_path_factory.mktemp("long")
    frame = tabular_frame(1_500, seed=2)
    # a straight part the linear member fits best, a wavy one only the trees can: a blend uses both families
    frame["outcome"] = frame.signal * 10 + 50 + 3 * np.sin(2 * frame.beta)
    frame = frame.drop(columns="signal")
    task_dir = write_task(root / "task", frame.iloc[:1_200], frame.iloc[1_200:].drop(columns="outcome"), None,
                          "Predict the outcome. Submissions are evaluated on root mean squared error.")
    run_dir = root / "run"
    run_dir.mkdir()
    settings = Settings(time_budget_s=BUDGET_S, n_folds=3, tracks=("traditional",), refine_max_candidates=1)
    ctx = RunContext(settings=settings, events=EventLog(run_dir / "events.jsonl"))
    runtime = Runtime(context=ctx)
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
    for node in (analyze, profile, blueprint):
        state.update(node(state, runtime))
    plan = state["blueprint"].tracks[0]
    plan.members = {"linear": plan.members["linear"]}  # two families are enough; the others cost minutes here
    plan.members_if_time = {}
    (run_dir / "blueprint.json").write_text(state["blueprint"].model_dump_json(indent=2))
    track = build_track_graph().compile().invoke({**state, "plan": plan, "attempts": []}, context=ctx)
    state["tracks"] = track["tracks"]
    state["tracks"] = build_refine_graph().compile().invoke(state, context=ctx)["tracks"] or state["tracks"]
    state.update(ensemble(state, runtime))
    # before submit deletes the fitted models of the attempts the ensemble does not use
    shutil.copytree(run_dir, root / "before_submit")
    state.update(submit(state, runtime))
    yield state, task_dir, run_dir
    ctx.close()


def test_the_plan_keeps_time_for_bags_and_a_stacker(long_run):
    state, _, _ = long_run
    bp = state["blueprint"]
    assert bp.stack and bp.bagging is not None and bp.bagging.cuts >= 3


def test_each_family_s_best_is_bagged_with_its_own_cuts_and_seeds(long_run):
    state, _, run_dir = long_run
    track = state["tracks"]["traditional"]
    bags = [a for a in track.attempts if a.source == "bag"]
    assert {a.member for a in bags} == {None, "linear"}  # LightGBM's own family and the linear member: both blended
    cuts = state["blueprint"].bagging.cuts
    for bag in bags:
        assert bag.status == "ok" and bag.params["cuts"] == cuts and bag.params["seed_per_cut"] is True
        assert len(bag.fold_scores) == cuts * state["blueprint"].validation.n_folds
        result = json.loads((Path(bag.dir) / "result.json").read_text())
        assert result["cuts"] == cuts and "full_fit" not in result  # its fold models are its test predictions
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    judged = {e["attempt"]: e for e in events if e["event"] == "refine" and e.get("bag")}
    assert sorted(judged) == sorted(a.attempt for a in bags) and all(isinstance(e["kept"], bool) for e in judged.values())
    n_folds = state["blueprint"].validation.n_folds
    by_number = {a.attempt: a for a in track.attempts}
    for bag in bags:
        base = by_number[judged[bag.attempt]["base"]]
        assert bag.params == {**base.params, "cuts": cuts, "seed_per_cut": True}
        # its first cut is its base's, taken over (the same folds, params and seed): only the further cuts are fitted
        assert bag.fold_scores[:n_folds] == base.fold_scores[:n_folds]
        kept_models = run_dir.parent / "before_submit" / Path(bag.dir).relative_to(run_dir) / "models"  # before submit's clean-up
        assert len(list(kept_models.glob("fold_*.pkl"))) == cuts * n_folds
    lgbm = next(a for a in bags if a.member is None)
    assert lgbm.fold_scores[n_folds:2 * n_folds] != pytest.approx(lgbm.fold_scores[:n_folds])  # another cut, another seed
    done = [e for e in events if e["event"] == "refine_done"][-1]
    assert done["bags"] == len(bags) and done["bags_kept"] == sum(a.kept for a in bags)


def test_bags_and_the_stacker_are_on_the_leaderboard(long_run):
    state, _, run_dir = long_run
    board = pd.read_csv(run_dir / "leaderboard.csv")
    bags = board[board.source == "bag"]
    assert len(bags) == 2 and bags.kept.isin([True, False]).all()
    stack = board[board.entry.str.startswith("ensemble candidate: stacker over")]
    assert len(stack) == 1 and stack.iloc[0].entry.endswith("2 families")
    result = state["ensemble"]
    assert bool(stack.iloc[0].kept) == (result.kind == "stacked")
    report = (run_dir / "report.md").read_text()
    assert "stacker over 2 families" in report and "bag" in report


def test_solution_py_and_iml_predict_reproduce_the_submission(long_run, tmp_path):
    """Whatever the ensemble chose (a bag's many cuts, a stacker), solution.py refits it and
    `iml predict` replays its saved fold models, to the submission's values."""

    _, task_dir, run_dir = long_run
    assert_script_and_predict_reproduce(run_dir, task_dir, tmp_path)


def test_a_stacked_ensemble_is_reproduced_by_solution_py_and_iml_predict(long_run, tmp_path):
    """The stacker applied to the run's real members (bags included), written as the ensemble:
    solution.py and `iml predict` give the submission's values."""
    from nodes.submit import write_manifest
    from prompts.imports import library_modules
    from runtime.blend import family_members
    from runtime.records import EnsembleResult
    from runtime.solution import write_solution
    from runtime.stack import fit_stacker, stack_predict
    from runtime.submission_file import write_submission

    state, task_dir, run_dir = long_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir.parent / "before_submit", copy)
    tracks = {name: t.model_copy(update={"attempts": [a.model_copy(update={"dir": a.dir.replace(str(run_dir), str(copy))})
                                                      for a in t.attempts]}) for name, t in state["tracks"].items()}
    members = family_members(tracks, get_metric("rmse"))
    y = np.load(copy / "y.npy")
    stacker = fit_stacker({n: np.load(Path(a.dir) / "oof.npy") for n, a in members.items()}, y, "regression", "squared")
    test = stack_predict(stacker, {n: np.load(Path(members[n].dir) / "test.npy") for n in stacker["weights"]})
    np.save(copy / "ensemble_test.npy", test)
    total = sum(stacker["weights"].values())
    result = EnsembleResult(kind="stacked", weights={n: w / total for n, w in stacker["weights"].items()}, score=1.0,
                            oof_path="", test_path=str(copy / "ensemble_test.npy"), reason="a test's stacker", stacker=stacker)
    copied = {**state, "run_dir": str(copy), "tracks": tracks, "ensemble": result}
    write_submission(state["task"], test, copy / "submission.csv")
    write_manifest(copied, copy)
    write_solution(copied, copy, library_modules)
    assert_script_and_predict_reproduce(copy, task_dir, tmp_path)


def assert_script_and_predict_reproduce(run_dir, task_dir, tmp_path) -> None:
    """solution.py, run alone, and `iml predict` (the saved models) both give the run's submission."""
    from runtime.predict import load_run

    out = tmp_path / "out.csv"
    done = run_isolated(run_dir / "solution.py", task_dir, out, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_submission(run_dir / "submission.csv", out)
    predicted = load_run(run_dir).predict(pd.read_csv(task_dir / "test.csv"))
    predicted.to_csv(tmp_path / "predicted.csv", index=False)
    assert_same_submission(run_dir / "submission.csv", tmp_path / "predicted.csv")
