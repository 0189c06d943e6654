"""One rule for "better" (runtime/verdict.py): a refine candidate that scores better only within
fold noise is not kept, so it is neither the track's best, nor the anytime submission, nor the
ensemble's single result, and the progress never calls it the best."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graph.context import EventLog, RunContext, Settings
from nodes.track import summarize_track
from runtime.metrics import get_metric
from runtime.records import AttemptResult
from runtime.submission_file import offer_submission, read_submission_record
from runtime.task_reader import read_task
from runtime.verdict import best_standing, replaces, stands


def _attempt(n: int, source: str, score: float, folder: Path | None = None, **fields) -> AttemptResult:
    return AttemptResult(track="traditional", attempt=n, source=source, status="ok", score=score,
                         dir=str(folder or "/nowhere"), **fields)


def test_a_refine_candidate_stands_only_once_refine_kept_it():
    auc = get_metric("auc")
    recipe, member = _attempt(1, "recipe", 0.80), _attempt(2, "member", 0.81)
    within_noise = _attempt(3, "refine", 0.82)
    kept = _attempt(4, "refine", 0.815, kept=True)
    assert stands(recipe) and stands(member) and stands(kept) and not stands(within_noise)
    # planned attempts are compared by their scores; the candidate refine did not keep is no result
    assert best_standing(auc, [recipe, member, within_noise]) == member
    assert best_standing(auc, [recipe, member, within_noise, kept]) == kept
    assert summarize_track("traditional", [recipe, member, within_noise, kept], auc).best_attempt == 4
    assert not replaces(auc, within_noise, 0.80) and replaces(auc, kept, 0.81) and not replaces(auc, kept, 0.82)
    failed = AttemptResult(track="traditional", attempt=5, source="recipe", status="error", dir="/nowhere")
    assert summarize_track("traditional", [failed], auc).status == "failed"


def test_the_anytime_submission_is_not_replaced_by_a_candidate_refine_did_not_keep(make_task, tmp_path):
    """The contradiction a 60 s penguins run printed: 'submission.csv written: traditional/attempt_9
    scored 0.04205, the best so far' beside 'refine: ... 0.04205, best stays 0.043791'."""
    task = read_task(make_task("binary"), Settings())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ctx = RunContext(settings=Settings(), events=EventLog(run_dir / "events.jsonl"))

    def scored(n: int, source: str, score: float, **fields) -> AttemptResult:
        folder = run_dir / "tracks" / "traditional" / f"attempt_{n}"
        folder.mkdir(parents=True)
        np.save(folder / "test.npy", np.full(48, score))
        return _attempt(n, source, score, folder, **fields)

    assert offer_submission(task, run_dir, scored(1, "recipe", 0.80), ctx.events)
    candidate = scored(2, "refine", 0.81)  # executed, not judged yet: execute offers every attempt
    assert not offer_submission(task, run_dir, candidate, ctx.events)
    assert not offer_submission(task, run_dir, candidate.model_copy(update={"kept": False}), ctx.events)  # judged: within noise
    assert read_submission_record(run_dir)["source"] == "traditional/attempt_1"
    assert offer_submission(task, run_dir, candidate.model_copy(update={"kept": True}), ctx.events)  # judged: beyond noise
    assert read_submission_record(run_dir)["source"] == "traditional/attempt_2"
    said = [line for line in (run_dir / "events.jsonl").read_text().splitlines() if '"submission"' in line]
    assert len(said) == 2 and "attempt_1" in said[0] and "attempt_2" in said[1]


def test_the_progress_says_what_refine_decided_in_the_words_the_submission_uses():
    from io import StringIO

    from rich.console import Console

    from scripts.progress import Progress

    out = StringIO()
    progress = Progress(Console(file=out, width=300), budget_s=60, live=False)
    base = {"event": "refine", "track": "traditional", "change": "C 1.0 -> 3.0", "status": "ok", "against": 0.0438,
            "best": 0.0438, "best_attempt": 3}
    for event in ({**base, "attempt": 9, "score": 0.042, "kept": False, "within_noise": True},
                  {**base, "attempt": 10, "score": 0.050, "kept": False, "within_noise": False},
                  {**base, "attempt": 14, "score": 0.0396, "kept": True, "best": 0.0396, "best_attempt": 14},
                  {**base, "attempt": 15, "score": 0.041, "kept": True, "against": 0.0438, "best": 0.0396,
                   "best_attempt": 14, "base": 2},
                  {"event": "submission", "kind": "anytime", "source": "traditional/attempt_14", "score": 0.0396}):
        progress("custom", event)
    lines = out.getvalue().splitlines()
    assert "0.042, within fold noise of the best, 0.0438: not kept" in lines[0]
    assert "0.05, the best stays 0.0438" in lines[1]
    assert "0.0396, kept, the best so far" in lines[2]
    assert "0.041, kept as its chain's base; the best stays 0.0396" in lines[3]
    assert "traditional/attempt_14 scored 0.0396, the best so far" in lines[4]


# -- long budgets: bags, and predictions judged on the run's folds ---------------------------------


def test_a_bag_stands_only_once_refine_kept_it():
    auc = get_metric("auc")
    recipe = _attempt(1, "recipe", 0.80)
    bag_within_noise, bag_kept = _attempt(2, "bag", 0.805), _attempt(3, "bag", 0.803, kept=True)
    assert not stands(bag_within_noise) and stands(bag_kept)
    assert best_standing(auc, [recipe, bag_within_noise]) == recipe
    assert best_standing(auc, [recipe, bag_within_noise, bag_kept]) == bag_kept


def _cut(y: np.ndarray, rng: np.random.RandomState, scale: float) -> np.ndarray:
    return y + rng.normal(scale=scale, size=len(y))


def test_a_bag_that_averages_its_cuts_beats_one_cut_beyond_fold_noise():
    """Each cut's predictions carry their own noise: the average of five beats one cut on every fold."""
    from runtime.verdict import predictions_beyond_fold_noise

    rng = np.random.RandomState(0)
    y = rng.normal(size=1000)
    folds = rng.permutation(np.arange(1000) % 5)
    one = _cut(y, rng, 0.6)
    bag = np.mean([one, *[_cut(y, rng, 0.6) for _ in range(4)]], axis=0)
    rmse = get_metric("rmse")
    assert predictions_beyond_fold_noise(rmse, y, folds, bag, one)
    assert not predictions_beyond_fold_noise(rmse, y, folds, one, bag)


def test_predictions_better_only_within_fold_noise_are_not_kept():
    """A candidate a hair better overall and on three folds of five, worse on the others: the gain
    is noise, and it is not kept."""
    from runtime.verdict import predictions_beyond_fold_noise, scored_on_folds

    rng = np.random.RandomState(1)
    y = rng.normal(size=500)
    folds = rng.permutation(np.arange(500) % 5)
    base = _cut(y, rng, 0.5)
    candidate = base + rng.normal(scale=0.05, size=500)  # the same model's predictions, jittered
    rmse = get_metric("rmse")
    ours, theirs = scored_on_folds(rmse, y, folds, candidate), scored_on_folds(rmse, y, folds, base)
    assert rmse.better(ours.score, theirs.score)
    assert sum(rmse.better(c, b) for c, b in zip(ours.fold_scores, theirs.fold_scores)) == 3
    assert not predictions_beyond_fold_noise(rmse, y, folds, candidate, base)
