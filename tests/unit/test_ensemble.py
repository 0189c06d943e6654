"""ensemble: a blend is kept only when it beats the best single member out of fold; members
are each track's top attempts (refine's candidates included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from runtime.blend import blend, ensemble_members
from runtime.metrics import get_metric
from runtime.records import AttemptResult, TaskSpec, TrackResult


def _task(tmp_path: Path) -> TaskSpec:
    return TaskSpec(task_dir=str(tmp_path), task_type="regression", target="y", id_column="id", metric="rmse",
                    greater_is_better=False, submission_format="label", submission_columns=["id", "y"])


def _attempt(run_dir: Path, track: str, n: int, oof: np.ndarray, test: np.ndarray, y: np.ndarray, source="recipe") -> AttemptResult:
    folder = run_dir / "tracks" / track / f"attempt_{n}"
    folder.mkdir(parents=True)
    np.save(folder / "oof.npy", oof)
    np.save(folder / "test.npy", test)
    score = get_metric("rmse").score(y, oof)
    return AttemptResult(track=track, attempt=n, source=source, status="ok", score=score, dir=str(folder))


def _track(name: str, attempts: list[AttemptResult]) -> TrackResult:
    best = min(attempts, key=lambda a: a.score)
    return TrackResult(track=name, status="ok", best_attempt=best.attempt, score=best.score, attempts=attempts)


def test_blend_of_complementary_members_is_kept(tmp_path):
    rng = np.random.RandomState(0)
    y = rng.normal(size=400)
    np.save(tmp_path / "y.npy", y)
    # two members with independent errors: their mean halves the error variance
    a = _attempt(tmp_path, "traditional", 1, y + rng.normal(scale=0.5, size=400), np.zeros(50), y)
    b = _attempt(tmp_path, "neural", 1, y + rng.normal(scale=0.5, size=400), np.ones(50), y)
    result = blend(_task(tmp_path), {"traditional": _track("traditional", [a]), "neural": _track("neural", [b])}, tmp_path)
    assert result.kind == "weighted"
    assert result.score < min(a.score, b.score)
    assert set(result.weights) == {"traditional/attempt_1", "neural/attempt_1"}
    assert abs(sum(result.weights.values()) - 1) < 1e-3
    test = np.load(result.test_path)
    assert np.all((test > 0) & (test < 1))  # a weighted mean of the members' test predictions


def test_blend_that_does_not_help_is_dropped(tmp_path):
    rng = np.random.RandomState(1)
    y = rng.normal(size=400)
    np.save(tmp_path / "y.npy", y)
    good = _attempt(tmp_path, "traditional", 1, y + rng.normal(scale=0.1, size=400), np.zeros(50), y)
    noise = _attempt(tmp_path, "neural", 1, rng.normal(scale=3.0, size=400), np.ones(50), y)
    result = blend(_task(tmp_path), {"traditional": _track("traditional", [good]), "neural": _track("neural", [noise])}, tmp_path)
    assert result.kind == "single"
    assert result.weights == {"traditional/attempt_1": 1.0}
    assert result.score == good.score
    assert np.array_equal(np.load(result.test_path), np.zeros(50))


def test_refine_candidates_of_one_track_are_members(tmp_path):
    rng = np.random.RandomState(2)
    y = rng.normal(size=300)
    np.save(tmp_path / "y.npy", y)
    attempts = [_attempt(tmp_path, "traditional", i, y + rng.normal(scale=0.4 + 0.05 * i, size=300), np.full(30, float(i)), y,
                         source="recipe" if i == 1 else "refine") for i in range(1, 7)]
    tracks = {"traditional": _track("traditional", attempts)}
    members = ensemble_members(tracks, get_metric("rmse"), per_track=4)
    assert len(members) == 4
    best = tracks["traditional"].best_attempt
    assert f"traditional/attempt_{best}" in members
    ranked = sorted(attempts, key=lambda a: a.score)[:4]
    assert set(members) == {f"traditional/attempt_{a.attempt}" for a in ranked}
    result = blend(_task(tmp_path), tracks, tmp_path)
    # several noisy versions of one signal with independent noise: averaging them helps
    assert result.kind == "weighted" and len(result.weights) > 1
    assert result.score < tracks["traditional"].score


def test_failed_attempts_and_missing_predictions_are_not_members(tmp_path):
    y = np.arange(10.0)
    ok = _attempt(tmp_path, "traditional", 1, y + 0.1, np.zeros(3), y)
    gone = _attempt(tmp_path, "traditional", 2, y + 0.2, np.zeros(3), y)
    (Path(gone.dir) / "oof.npy").unlink()
    failed = AttemptResult(track="traditional", attempt=3, source="refine", status="error", error="boom", dir=str(tmp_path))
    tracks = {"traditional": _track("traditional", [ok, gone]).model_copy(update={"attempts": [ok, gone, failed]})}
    assert list(ensemble_members(tracks, get_metric("rmse"))) == ["traditional/attempt_1"]


def test_a_label_metric_gets_a_decision_threshold_tuned_out_of_fold():
    """F1 on a rare class with calibrated probabilities: labelling from 0.5 on misses most
    positives; the tuned threshold is lower and scores better on folds it was not tuned on."""
    from runtime.blend import decision_threshold
    from runtime.metrics import get_metric

    rng = np.random.RandomState(0)
    p = rng.beta(1, 6, size=4000)
    y = (rng.rand(4000) < p).astype(int)
    folds = rng.randint(0, 5, size=4000)
    f1 = get_metric("f1")
    threshold, note = decision_threshold(f1, y, p, folds)
    assert 0.1 < threshold < 0.4, note
    assert f1.score(y, (p >= threshold).astype(float)) > f1.score(y, (p >= 0.5).astype(float)) + 0.05


def test_no_threshold_from_fold_noise():
    """Predictions that carry no signal: whatever threshold wins on some rows does not hold up
    on the others, so 0.5 stays."""
    from runtime.blend import decision_threshold
    from runtime.metrics import get_metric

    rng = np.random.RandomState(1)
    y = rng.randint(0, 2, size=300)
    p = np.clip(0.5 + rng.normal(scale=0.01, size=300), 0, 1)
    threshold, note = decision_threshold(get_metric("accuracy"), y, p, rng.randint(0, 5, size=300))
    assert threshold == 0.5, note


def test_the_submission_labels_follow_the_threshold():
    from runtime.submission import submission_frame

    task = {"task_dir": ".", "task_type": "binary", "id_column": None, "submission_format": "label", "classes": ["no", "yes"],
            "submission_columns": ["answer"], "passthrough_columns": [], "target": "answer"}
    rows = pd.DataFrame(index=range(3))
    pred = np.array([0.2, 0.35, 0.7])
    assert list(submission_frame(task, pred, rows=rows)["answer"]) == ["no", "no", "yes"]
    assert list(submission_frame(task, pred, rows=rows, threshold=0.3)["answer"]) == ["no", "yes", "yes"]


def _softened(logits: np.ndarray, temperature: float) -> np.ndarray:
    e = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
    return e / e.sum(axis=1, keepdims=True)


def test_log_loss_probabilities_too_soft_are_sharpened_out_of_fold():
    """Classes drawn from known probabilities, predicted at temperature 2 (a blend of members
    that disagree, boosting stopped early): the fitted power is about 2, and it scores better
    on held-out folds than the probabilities as they were."""
    from runtime.blend import probability_power
    from runtime.submission import sharpened

    rng = np.random.RandomState(0)
    logits = rng.normal(scale=3.0, size=(3000, 4))
    truth = _softened(logits, 1.0)
    y = np.array([rng.choice(4, p=row) for row in truth])
    soft = _softened(logits, 2.0)
    folds = rng.randint(0, 5, size=3000)
    log_loss = get_metric("log_loss")
    power, note = probability_power(log_loss, y, soft, folds, "multiclass")
    assert 1.6 < power < 2.5, note
    calibrated = sharpened(soft, power, "multiclass")
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert (calibrated.argmax(axis=1) == soft.argmax(axis=1)).all()  # labels never change
    assert log_loss.score(y, calibrated) < log_loss.score(y, soft) - 0.02
    # binary: the positive class's probability, too sharp this time
    p = 1 / (1 + np.exp(-rng.normal(scale=2.0, size=3000)))
    yb = (rng.rand(3000) < p).astype(int)
    sharp = sharpened(p, 2.0, "binary")
    power, note = probability_power(log_loss, yb, sharp, folds, "binary")
    assert 0.4 < power < 0.62, note


def test_calibrated_probabilities_and_small_data_keep_their_temperature():
    from runtime.blend import probability_power

    rng = np.random.RandomState(3)
    logits = rng.normal(scale=2.0, size=(2000, 3))
    truth = _softened(logits, 1.0)
    y = np.array([rng.choice(3, p=row) for row in truth])
    power, note = probability_power(get_metric("log_loss"), y, truth, rng.randint(0, 5, size=2000), "multiclass")
    assert power == 1.0, note
    assert "not beyond fold noise" in note


def test_a_log_loss_blend_records_its_power_and_the_submission_applies_it(tmp_path):
    from runtime.submission import sharpened, submission_frame

    rng = np.random.RandomState(0)
    logits = rng.normal(scale=3.0, size=(1500, 3))
    y = np.array([rng.choice(3, p=row) for row in _softened(logits, 1.0)])
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "folds.npy", rng.randint(0, 5, size=1500))
    test_logits = rng.normal(scale=3.0, size=(4, 3))
    folder = tmp_path / "tracks" / "traditional" / "attempt_1"
    folder.mkdir(parents=True)
    np.save(folder / "oof.npy", _softened(logits, 2.5))
    np.save(folder / "test.npy", _softened(test_logits, 2.5))
    attempt = AttemptResult(track="traditional", attempt=1, source="recipe", status="ok", dir=str(folder),
                            score=get_metric("log_loss").score(y, _softened(logits, 2.5)))
    task = TaskSpec(task_dir=str(tmp_path), task_type="multiclass", target="kind", id_column=None, metric="log_loss",
                    greater_is_better=False, submission_format="proba_cols", submission_columns=["a", "b", "c"],
                    classes=["a", "b", "c"])
    result = blend(task, {"traditional": _track("traditional", [attempt])}, tmp_path)
    assert result.power > 1.5, result.reason
    assert result.score < attempt.score  # the ensemble's score is the calibrated one
    assert "temperature" in result.reason
    raw = np.load(result.test_path)  # kept as blended: the submission applies the power
    frame = submission_frame(task.model_dump(), raw, rows=pd.DataFrame(index=range(4)), power=result.power)
    assert np.allclose(frame[["a", "b", "c"]].to_numpy(), sharpened(raw, result.power, "multiclass"))
    assert not np.allclose(frame[["a", "b", "c"]].to_numpy(), raw)
    # a label metric is never calibrated: its labels cannot move, its score cannot gain
    assert blend(task.model_copy(update={"metric": "accuracy", "greater_is_better": True}),
                 {"traditional": _track("traditional", [attempt])}, tmp_path).power == 1.0


def test_the_single_result_is_the_run_s_best_never_a_candidate_refine_did_not_keep(tmp_path):
    """A refine candidate that scores a hair better than the track's best, within fold noise, is
    not kept: the ensemble starts from the track's best and, when no blend beats it beyond fold
    noise, submits it, not the candidate refine rejected."""
    from runtime.verdict import FoldScores, beyond_fold_noise

    rng = np.random.RandomState(16)
    y = rng.normal(size=400)
    folds = np.arange(400) % 5
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "folds.npy", folds)
    first = y + rng.normal(scale=0.5, size=400)
    best = _attempt(tmp_path, "traditional", 1, first, np.zeros(50), y)
    candidate = _attempt(tmp_path, "traditional", 2, first + rng.normal(scale=0.05, size=400), np.ones(50), y, source="refine")
    rmse = get_metric("rmse")
    by_fold = {a.attempt: FoldScores(a.score, [rmse.score(y[folds == k], np.load(Path(a.dir) / "oof.npy")[folds == k])
                                               for k in range(5)]) for a in (best, candidate)}
    assert candidate.score < best.score and not beyond_fold_noise(rmse, by_fold[2], by_fold[1])  # refine's verdict: not kept
    track = TrackResult(track="traditional", status="ok", best_attempt=1, score=best.score, attempts=[best, candidate])
    result = blend(_task(tmp_path), {"traditional": track}, tmp_path)
    assert result.kind == "single" and result.weights == {"traditional/attempt_1": 1.0}
    assert result.score == best.score and np.array_equal(np.load(result.test_path), np.zeros(50))
