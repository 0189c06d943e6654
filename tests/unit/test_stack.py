"""The stacker (runtime/stack.py) and its place in the ensemble (runtime/blend.py): scored on its
own inner folds, so a stacker over noise never wins; kept only when it beats the blend or the best
single result beyond fold noise; its weights, bias and predictions are what the submission uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.blend import blend, family_members
from runtime.metrics import get_metric
from runtime.records import AttemptResult, TaskSpec, TrackResult
from runtime.stack import fit_stacker, stack_predict, stacked_out_of_fold
from runtime.verdict import predictions_beyond_fold_noise


def _folds(n: int, rng: np.random.RandomState, k: int = 5) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)


@pytest.mark.parametrize("seed", range(5))
def test_a_stacker_over_noise_columns_does_not_win_out_of_fold(seed):
    """One member that is the target's expectation, ten of pure noise: fitted on every row the
    stacker scores better than the member (it fits the noise), but on its own inner folds it does
    not beat the member beyond fold noise."""
    rng = np.random.RandomState(seed)
    n = 300
    signal = rng.normal(size=n)
    y = signal + rng.normal(scale=0.5, size=n)
    folds = _folds(n, rng)
    preds = {"good": signal, **{f"noise{i}": rng.normal(size=n) for i in range(10)}}
    metric = get_metric("rmse")
    in_sample = stack_predict(fit_stacker(preds, y, "regression", "squared"), preds)
    assert metric.better(metric.score(y, in_sample), metric.score(y, signal))  # what an in-sample score would claim
    honest = stacked_out_of_fold(preds, y, folds, "regression", "squared")
    assert not predictions_beyond_fold_noise(metric, y, folds, honest, signal)


def test_the_inner_folds_never_see_the_rows_they_predict():
    """A fold whose target is shifted far away: a stacker fitted with those rows would move its
    bias towards them; the inner folds' prediction of that fold does not."""
    rng = np.random.RandomState(0)
    n = 200
    signal = rng.normal(size=n)
    folds = _folds(n, rng)
    y = signal.copy()
    y[folds == 0] += 100.0
    honest = stacked_out_of_fold({"a": signal, "b": signal + rng.normal(scale=0.1, size=n)}, y, folds, "regression", "squared")
    assert np.abs(honest[folds == 0] - signal[folds == 0]).mean() < 1.0  # fitted on folds 1-4, where y is the signal


def test_a_stacker_wins_where_the_members_add_up_and_no_convex_blend_can():
    rng = np.random.RandomState(1)
    n = 400
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = a + b
    folds = _folds(n, rng)
    preds = {"a": a + rng.normal(scale=0.3, size=n), "b": b + rng.normal(scale=0.3, size=n)}
    metric = get_metric("rmse")
    honest = stacked_out_of_fold(preds, y, folds, "regression", "squared")
    mean = (preds["a"] + preds["b"]) / 2  # the best a hill climb of two can do
    assert predictions_beyond_fold_noise(metric, y, folds, honest, mean)
    stacker = fit_stacker(preds, y, "regression", "squared")
    assert stacker["weights"] == pytest.approx({"a": 1.0, "b": 1.0}, abs=0.15)


def test_probabilities_stay_probabilities():
    rng = np.random.RandomState(2)
    n = 300
    y = rng.randint(0, 3, size=n)

    def member(strength: float) -> np.ndarray:
        z = np.eye(3)[y] * strength + rng.normal(size=(n, 3))
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    preds = {"x": member(1.0), "z": member(0.5)}
    out = stacked_out_of_fold(preds, y, _folds(n, rng), "multiclass", "log_loss")
    assert out.shape == (n, 3) and np.allclose(out.sum(axis=1), 1.0) and (out > 0).all()
    binary = (y == 1).astype(int)
    p = stack_predict(fit_stacker({"x": preds["x"][:, 1], "z": preds["z"][:, 1]}, binary, "binary", "log_loss"),
                      {"x": preds["x"][:, 1], "z": preds["z"][:, 1]})
    assert p.shape == (n,) and ((p > 0) & (p < 1)).all()


def test_absolute_error_is_fitted_by_absolute_error():
    """MAE: a member with heavy-tailed errors and one that is half the target. Least squares would
    weigh the first by its outliers; the absolute loss leans on the second, scaled back up."""
    rng = np.random.RandomState(3)
    n = 400
    y = rng.normal(size=n)
    preds = {"tails": y + rng.standard_t(1.5, size=n), "half": y * 0.5 + rng.normal(scale=0.2, size=n)}
    stacker = fit_stacker(preds, y, "regression", "absolute")
    assert stacker["weights"]["half"] > 1.5 and stacker["weights"].get("tails", 0.0) < 0.3


# -- in the ensemble -------------------------------------------------------------------------------


def _task(tmp_path: Path, metric: str = "rmse") -> TaskSpec:
    return TaskSpec(task_dir=str(tmp_path), task_type="regression", target="y", id_column="id", metric=metric,
                    greater_is_better=False, submission_format="label", submission_columns=["id", "y"])


def _attempt(run_dir: Path, n: int, oof: np.ndarray, test: np.ndarray, y: np.ndarray, member: str | None) -> AttemptResult:
    folder = run_dir / "tracks" / "traditional" / f"attempt_{n}"
    folder.mkdir(parents=True)
    np.save(folder / "oof.npy", oof)
    np.save(folder / "test.npy", test)
    return AttemptResult(track="traditional", attempt=n, source="member" if member else "recipe", status="ok",
                         score=get_metric("rmse").score(y, oof), dir=str(folder), member=member)


def _tracks(attempts: list[AttemptResult]) -> dict[str, TrackResult]:
    best = min(attempts, key=lambda a: a.score)
    return {"traditional": TrackResult(track="traditional", status="ok", best_attempt=best.attempt, score=best.score,
                                       attempts=attempts)}


def _run(tmp_path: Path, n: int = 400) -> tuple[np.ndarray, np.random.RandomState]:
    rng = np.random.RandomState(4)
    folds = _folds(n, rng)
    np.save(tmp_path / "folds.npy", folds)
    return folds, rng


def test_the_ensemble_keeps_a_stacker_that_wins_and_predicts_the_test_rows_with_it(tmp_path):
    _, rng = _run(tmp_path)
    a, b = rng.normal(size=400), rng.normal(size=400)
    y = a + b
    np.save(tmp_path / "y.npy", y)
    test_a, test_b = rng.normal(size=50), rng.normal(size=50)
    attempts = [_attempt(tmp_path, 1, a + rng.normal(scale=0.3, size=400), test_a, y, None),
                _attempt(tmp_path, 2, b + rng.normal(scale=0.3, size=400), test_b, y, "catboost")]
    result = blend(_task(tmp_path), _tracks(attempts), tmp_path, stack=True)
    assert result.kind == "stacked"
    assert set(result.weights) == {"traditional/attempt_1", "traditional/attempt_2"}
    assert result.stacker["link"] == "identity"
    expected = stack_predict(result.stacker, {"traditional/attempt_1": test_a, "traditional/attempt_2": test_b})
    assert np.allclose(np.load(result.test_path), expected)
    # its score is the inner folds' out-of-fold score, the very predictions saved as the ensemble's
    assert result.score == pytest.approx(get_metric("rmse").score(y, np.load(result.oof_path)))
    [stack_entry] = [c for c in result.candidates if c["entry"].startswith("stacker")]
    assert stack_entry["kept"] and stack_entry["score"] == pytest.approx(result.score)


def test_the_ensemble_records_a_stacker_that_does_not_win_and_leaves_the_result_alone(tmp_path):
    _, rng = _run(tmp_path)
    signal = rng.normal(size=400)
    y = signal + rng.normal(scale=0.5, size=400)
    np.save(tmp_path / "y.npy", y)
    attempts = [_attempt(tmp_path, 1, signal, np.zeros(50), y, None)]
    attempts += [_attempt(tmp_path, i + 2, rng.normal(size=400), np.ones(50), y, name)
                 for i, name in enumerate(("linear", "knn", "extratrees"))]
    result = blend(_task(tmp_path), _tracks(attempts), tmp_path, stack=True)
    assert result.kind == "single" and result.stacker is None
    assert result.weights == {"traditional/attempt_1": 1.0}
    [stack_entry] = [c for c in result.candidates if c["entry"].startswith("stacker")]
    assert stack_entry["entry"] == "stacker over 4 families" and not stack_entry["kept"]
    assert "not beyond fold noise" in result.reason


def test_without_the_blueprint_s_plan_no_stacker_is_weighed(tmp_path):
    _, rng = _run(tmp_path)
    a, b = rng.normal(size=400), rng.normal(size=400)
    y = a + b
    np.save(tmp_path / "y.npy", y)
    attempts = [_attempt(tmp_path, 1, a, np.zeros(50), y, None), _attempt(tmp_path, 2, b, np.zeros(50), y, "knn")]
    result = blend(_task(tmp_path), _tracks(attempts), tmp_path)  # no blueprint.json: a short run's plan
    assert result.kind != "stacked"
    assert not [c for c in result.candidates if c["entry"].startswith("stacker")]


def test_the_stacker_weighs_each_family_s_best_attempt(tmp_path):
    _, rng = _run(tmp_path)
    y = rng.normal(size=400)
    np.save(tmp_path / "y.npy", y)
    own = [_attempt(tmp_path, i, y + rng.normal(scale=s, size=400), np.zeros(50), y, None) for i, s in ((1, 0.5), (2, 0.3))]
    knn = [_attempt(tmp_path, i, y + rng.normal(scale=s, size=400), np.zeros(50), y, "knn") for i, s in ((3, 0.9), (4, 0.6))]
    members = family_members(_tracks(own + knn), get_metric("rmse"))
    assert sorted(members) == ["traditional/attempt_2", "traditional/attempt_4"]
