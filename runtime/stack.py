"""The stacker: a second-level model over the members' out-of-fold predictions.

One weight per member (never negative) and one bias per output column, on the members'
predictions in the space where adding them makes sense: values as they are (regression), log-odds
(binary and multi-label probabilities), log-probabilities with a softmax (multiclass). It is fitted
to the training target by the loss that suits the metric (squared or absolute error, log loss),
with a small ridge on the weights. Breiman's stacked regression: non-negative weights keep a
member that only adds noise near zero, and a stacker this small has little to overfit. Unlike the
blend's hill climbing it may scale the members and shift them (a bias), and weigh them in log-odds.

Its score must be honest: `stacked_out_of_fold` predicts each fold's rows with a stacker fitted on
the other folds' rows only, and only that score is compared with the blend (runtime/blend.py, by the
rule of runtime/verdict.py). The stacker applied to the test rows is fitted on every row.

solution.py holds this module whole (runtime/solution.py inlines it), so it imports nothing of iML,
and numpy only at the top: the fit's scipy is imported where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

EPS = 1e-6
RIDGE = 1e-3        # on the weights, against a loss of order one (values scaled by the target's spread)
HUBER_SHARE = 0.05  # absolute error, smoothed within this share of the target's spread (a gradient for L-BFGS)
FIT_ROWS = 100_000  # beyond, the stacker is fitted on a seeded sample: a dozen parameters need no more


def link_of(task_type: str) -> str:
    return {"regression": "identity", "multitarget": "identity", "binary": "logit", "multilabel": "logit"}.get(task_type, "log")


def loss_of(task_type: str, metric_base: str) -> str:
    """The loss the stacker is fitted by: log loss for probabilities; absolute error where the
    metric is one (MAE, median absolute error), squared error for other values."""
    if link_of(task_type) != "identity":
        return "log_loss"
    return "absolute" if metric_base in ("mae", "medae") else "squared"


def _columns(pred: np.ndarray, link: str) -> np.ndarray:
    """A member's predictions as (rows, columns) in the link's space."""
    p = np.asarray(pred, dtype=float)
    p = p.reshape(len(p), -1)
    if link == "logit":
        p = np.clip(p, EPS, 1 - EPS)
        return np.log(p / (1 - p))
    if link == "log":
        return np.log(np.clip(p, EPS, 1.0))
    return p


def _inverse(z: np.ndarray, link: str, shape: tuple) -> np.ndarray:
    if link == "logit":
        out = 1.0 / (1.0 + np.exp(-z))
    elif link == "log":
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out = e / e.sum(axis=1, keepdims=True)
    else:
        out = z
    return out.reshape(shape)


def stack_predict(stacker: Mapping[str, Any], preds: Mapping[str, np.ndarray]) -> np.ndarray:
    """The stacker's predictions from the members' (name -> predictions in the contract's form)."""
    link = stacker["link"]
    names = list(stacker["weights"])
    first = np.asarray(preds[names[0]])
    z = np.asarray(stacker["bias"], dtype=float)[None, :] + sum(
        float(stacker["weights"][n]) * _columns(preds[n], link) for n in names)
    return _inverse(z, link, first.shape)


def fit_stacker(preds: Mapping[str, np.ndarray], y: np.ndarray, task_type: str, loss: str,
                rows: np.ndarray | None = None) -> dict[str, Any]:
    """The stacker fitted on `rows` (a boolean mask; all rows by default): {"link", "weights"
    (member -> weight, zero weights left out), "bias" (one per output column)}."""
    from scipy.optimize import minimize

    link = link_of(task_type)
    names = list(preds)
    index = np.flatnonzero(rows) if rows is not None else np.arange(len(y))
    if len(index) > FIT_ROWS:
        index = np.sort(np.random.RandomState(0).choice(index, FIT_ROWS, replace=False))
    Z = np.stack([_columns(preds[n], link)[index] for n in names])  # (members, rows, columns)
    m, n, c = Z.shape
    yy = np.asarray(y)[index]
    if link == "log":  # multiclass: the true class's column
        target = np.zeros((n, c))
        target[np.arange(n), yy.astype(int)] = 1.0
    else:
        target = yy.reshape(n, -1).astype(float)
    # values on the scale of the target's spread, so one ridge and one smoothing suit any unit
    centre, scale = (float(target.mean()), float(target.std()) or 1.0) if link == "identity" else (0.0, 1.0)
    Zs, Ts = (Z - centre) / scale, (target - centre) / scale
    delta = HUBER_SHARE

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:m], theta[m:]
        F = np.tensordot(w, Zs, axes=1) + b[None, :]
        if link == "identity" and loss == "squared":
            r = F - Ts
            value, dF = float(np.mean(r ** 2)), 2 * r / r.size
        elif link == "identity":  # absolute error, smoothed near zero (pseudo-Huber)
            r = F - Ts
            root = np.sqrt(1 + (r / delta) ** 2)
            value, dF = float(np.mean(delta ** 2 * (root - 1))), r / root / r.size
        elif link == "logit":
            p = 1.0 / (1.0 + np.exp(-F))
            pc = np.clip(p, 1e-12, 1 - 1e-12)
            value = float(-np.mean(Ts * np.log(pc) + (1 - Ts) * np.log(1 - pc)))
            dF = (p - Ts) / p.size
        else:
            F = F - F.max(axis=1, keepdims=True)
            logp = F - np.log(np.exp(F).sum(axis=1, keepdims=True))
            value = float(-np.mean((Ts * logp).sum(axis=1)))
            dF = (np.exp(logp) - Ts) / n
        grad_w = np.tensordot(Zs, dF, axes=([1, 2], [0, 1])) + 2 * RIDGE * w
        return value + RIDGE * float(w @ w), np.concatenate([grad_w, dF.sum(axis=0)])

    start = np.concatenate([np.full(m, 1.0 / m), np.zeros(c)])  # the members' plain mean
    found = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * m + [(None, None)] * c)
    w, b = found.x[:m], found.x[m:]
    if link == "identity":  # back to the target's units: F * scale + centre
        b = b * scale + centre * (1 - w.sum())
    weights = {name: float(x) for name, x in zip(names, w) if x > 1e-9}
    if not weights:  # every member at zero would be a constant: the members' plain mean instead
        weights, b = {name: 1.0 / m for name in names}, np.zeros(c)
    return {"link": link, "weights": weights, "bias": [float(x) for x in np.atleast_1d(b)]}


def stacked_out_of_fold(preds: Mapping[str, np.ndarray], y: np.ndarray, folds: np.ndarray, task_type: str,
                        loss: str) -> np.ndarray:
    """Out-of-fold predictions of the stacker itself: each fold's rows by a stacker fitted on the
    other folds' rows, so its score is as honest as a member's."""
    first = np.asarray(next(iter(preds.values())))
    out = np.zeros(first.shape, dtype=float)
    for k in np.unique(folds):
        held = folds == k
        stacker = fit_stacker(preds, y, task_type, loss, rows=~held)
        out[held] = stack_predict(stacker, {n: np.asarray(p)[held] for n, p in preds.items()})
    return out
