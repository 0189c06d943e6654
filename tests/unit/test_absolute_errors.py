"""Absolute errors on a skewed non-negative target: LightGBM learns log1p(y) with the Huber loss
(robust like L1, converging in fewer trees), L1 stays for a signed target; models that average
(neighbours, the network) learn such a target as it is, and log1p(y) only for RMSLE. Real fits
on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prompts.recipes.members.knn.model import Model as KnnModel
from prompts.recipes.traditional.model import Model as LgbmModel
from runtime.recipe_steps import TargetScale


def _data(signed: bool = False, n: int = 400):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = np.exp(1.0 + X.a + rng.normal(scale=0.5, size=n))  # prices: positive, right-skewed
    return X, (y - np.median(y) if signed else y)


def _task(metric: str) -> dict:
    return {"task_type": "regression", "metric": metric, "classes": []}


def test_lightgbm_learns_a_skewed_amount_under_absolute_errors_with_huber_on_its_log():
    X, y = _data()
    model = LgbmModel(_task("mae"), {"n_estimators": 30}).fit(X[:300], y[:300], X[300:], y[300:])
    assert model.target.log and model.model.objective == "huber" and model.model.get_params()["alpha"] == 0.1
    tuned = LgbmModel(_task("mae"), {"n_estimators": 30, "huber_delta": 0.3}).fit(X, y)
    assert tuned.model.get_params()["alpha"] == 0.3
    pred = model.predict(X[300:])
    assert np.abs(pred - y[300:]).mean() < np.abs(np.median(y[:300]) - y[300:]).mean()  # it learnt something


def test_a_signed_target_keeps_l1_and_other_metrics_their_own_loss():
    X, y = _data(signed=True)
    model = LgbmModel(_task("mae"), {"n_estimators": 30}).fit(X, y)
    assert not model.target.log and model.model.objective == "l1"
    assert LgbmModel(_task("rmse"), {"n_estimators": 30}).fit(*_data()).model.objective == "regression"
    assert LgbmModel(_task("mae"), {"n_estimators": 30, "objective": "l2"}).fit(*_data()).model.objective == "l2"


def test_models_that_average_learn_absolute_errors_on_the_target_itself():
    X, y = _data()
    assert TargetScale.fitted(_task("mae"), None, y).log  # LightGBM, CatBoost, the linear model
    assert not TargetScale.fitted(_task("mae"), None, y, absolute=False).log
    assert TargetScale.fitted(_task("rmsle"), None, y, absolute=False).log
    knn = KnnModel(_task("mae"), {}).fit(X.to_numpy(), y)
    assert not knn.target.log
    assert KnnModel(_task("mae"), {"log_target": True}).fit(X.to_numpy(), y).target.log  # the override stands
