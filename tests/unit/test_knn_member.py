"""The neighbours member: which scale its distance uses, and probabilities a log loss can read."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits, load_iris
from sklearn.metrics import log_loss

from prompts import MEMBERS_DIR
from runtime.fold_loop import load_module

FEATURES = load_module("features", MEMBERS_DIR / "knn" / "features.py")
MODEL = load_module("model", MEMBERS_DIR / "knn" / "model.py")


def _profile(X: pd.DataFrame) -> dict:
    return {"n_train": len(X), "columns": [{"name": c, "kind": "numeric"} for c in X.columns]}


def _task(classes: int) -> dict:
    return {"task_type": "multiclass", "metric": "log_loss", "classes": [str(i) for i in range(classes)]}


def _fit(X: pd.DataFrame, y: np.ndarray, params: dict | None = None):
    tr, va = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    task = _task(int(y.max()) + 1)
    feats = FEATURES.Features(task, _profile(X), dict(params or {})).fit(X[tr], y[tr])
    model = MODEL.Model(task, dict(params or {})).fit(feats.transform(X[tr]), y[tr])
    return feats, model, model.predict(feats.transform(X[va])), y[va]


def test_pixels_share_one_scale_and_measurements_each_their_own():
    digits = load_digits()
    pixels = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
    feats, _, pred, truth = _fit(pixels, digits.target)
    assert feats.scale == "global"
    # a near-constant border pixel scaled to unit spread drowns the strokes: one scale is better here
    _, _, standard, _ = _fit(pixels, digits.target, {"scale": "standard"})
    assert (pred.argmax(1) == truth).mean() > (standard.argmax(1) == truth).mean()

    iris = load_iris()
    sizes = pd.DataFrame(iris.data * [1.0, 1.0, 100.0, 1.0], columns=["a", "b", "c", "d"])
    assert _fit(sizes, iris.target)[0].scale == "standard"


def test_probabilities_are_mixed_with_the_class_shares_so_a_wrong_vote_costs_a_bounded_loss():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(600, 5)), columns=list("abcde"))
    y = ((X["a"] + rng.normal(scale=1.0, size=600)) > 0).astype(int).to_numpy()  # half noise: votes often wrong
    feats, model, pred, truth = _fit(X, y)
    assert 0.0 < model.mix <= 0.5 and np.isclose(pred.sum(axis=1), 1.0).all()
    mixed, model.mix = model.mix, 0.0
    raw = model.predict(feats.transform(X[np.arange(600) % 4 == 0]))
    clipped = np.clip(raw, 1e-3, 1)
    assert log_loss(truth, pred) < log_loss(truth, clipped / clipped.sum(axis=1, keepdims=True)), mixed
