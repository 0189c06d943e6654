"""Metric registry shared by the framework and the execution kernel.

This module is loaded into the Jupyter kernel by the harness, so it depends only on
numpy, pandas, scikit-learn and scipy — never on the rest of iML.

Conventions (the model contract in DESIGN.md §4):
- ``y_true``: regression -> float values; classification -> int codes ``0..k-1``
  (the harness encodes labels; for binary, 1 is the positive class).
- ``pred``: regression -> ``(n,)`` values; binary -> ``(n,)`` probability of class 1
  (an ``(n, 2)`` matrix is accepted too); multiclass -> ``(n, k)`` probabilities.
Each metric converts the prediction into what it consumes (``needs``): labels by
threshold 0.5 / argmax, clipped probabilities for log loss, rounded values for qwk.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Callable, Literal, TypeVar

import numpy as np

T = TypeVar("T")


class _SklearnMetrics:
    """sklearn.metrics, imported on first use: the registry (names, directions, parsing a
    description) is needed long before any score, and sklearn + scipy cost ~70 MB of the
    framework's process, which the run's peak memory would count while a kernel computes. The
    first score in this process is the ensemble's, after refine has closed the kernels (the
    import, ~1 s on 2 cores, is in the final reserve)."""

    def __getattr__(self, name: str):
        from sklearn import metrics

        return getattr(metrics, name)


skm = _SklearnMetrics()


__all__ = [
    "ALIASES",
    "METRICS",
    "Metric",
    "Needs",
    "TaskType",
    "UnknownMetricError",
    "default_metric",
    "get_metric",
    "metric_from_text",
]

TaskType = Literal["binary", "multiclass", "regression", "multilabel", "multitarget"]
Needs = Literal["label", "proba", "value"]

_EPS = 1e-15
_CLS = frozenset({"binary", "multiclass"})
_REG = frozenset({"regression"})
_ALL = _CLS | _REG
_MULTILABEL = frozenset({"multilabel"})  # several 0/1 labels per row
_MULTITARGET = frozenset({"multitarget"})  # several numeric targets per row


# --------------------------------------------------------------------------- conversions


def _as_proba_matrix(pred: np.ndarray) -> np.ndarray:
    """(n,) P(class 1) or (n, k) probabilities -> (n, k) probabilities."""
    p = np.asarray(pred, dtype=float)
    if p.ndim == 1:
        return np.column_stack([1.0 - p, p])
    if p.ndim == 2 and p.shape[1] == 1:
        col = p[:, 0]
        return np.column_stack([1.0 - col, col])
    return p


def _positive_proba(pred: np.ndarray) -> np.ndarray:
    """Binary scores as (n,): a (n, 2) matrix keeps its class-1 column."""
    p = np.asarray(pred, dtype=float)
    if p.ndim == 2:
        return p[:, -1]
    return p


def _to_labels(pred: np.ndarray) -> np.ndarray:
    """Probabilities -> int codes: threshold 0.5 for (n,), argmax for (n, k)."""
    p = np.asarray(pred, dtype=float)
    if p.ndim == 2 and p.shape[1] > 1:
        return np.argmax(p, axis=1)
    if p.ndim == 2:
        p = p[:, 0]
    return (p >= 0.5).astype(int)


def _ordinal_labels(y_true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """qwk's prediction: argmax of probabilities, or rounded values clipped to the seen range."""
    p = np.asarray(pred, dtype=float)
    if p.ndim == 2 and p.shape[1] > 1:
        return np.argmax(p, axis=1)
    p = p.reshape(-1)
    y = np.asarray(y_true, dtype=float)
    # Clipping keeps a regressor's overshoot from inventing classes no row has.
    return np.clip(np.rint(p), np.nanmin(y), np.nanmax(y)).astype(int)


def _n_classes(y_true: np.ndarray, proba: np.ndarray) -> int:
    k = proba.shape[1]
    y = np.asarray(y_true)
    if y.size:
        k = max(k, int(np.max(y)) + 1)
    return k


# --------------------------------------------------------------------------- scorers


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(math.sqrt(skm.mean_squared_error(y, p)))


def _rmsle(y: np.ndarray, p: np.ndarray) -> float:
    # A model may predict slightly negative prices; RMSLE is undefined there, so clip at 0
    # (what Kaggle graders effectively require of submissions).
    p = np.clip(np.asarray(p, dtype=float), 0.0, None)
    y = np.clip(np.asarray(y, dtype=float), 0.0, None)
    return float(math.sqrt(skm.mean_squared_log_error(y, p)))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    if np.unique(y).size < 2:
        # A fold with one class has no ranking to measure: report nan, do not crash a run.
        return float("nan")
    if p.ndim == 2 and p.shape[1] > 2:
        k = p.shape[1]
        present = np.unique(y)
        if present.size < k:
            # One-vs-rest AUC over the classes that occur; renormalise their columns.
            sub = p[:, present]
            sub = sub / np.clip(sub.sum(axis=1, keepdims=True), _EPS, None)
            remap = {c: i for i, c in enumerate(present)}
            yy = np.array([remap[int(v)] for v in y])
            if present.size == 2:
                return float(skm.roc_auc_score(yy, sub[:, 1]))
            return float(skm.roc_auc_score(yy, sub, multi_class="ovr"))
        return float(skm.roc_auc_score(y, p, multi_class="ovr", labels=list(range(k))))
    return float(skm.roc_auc_score(y, _positive_proba(p)))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    proba = _as_proba_matrix(p)
    proba = np.clip(proba, _EPS, 1.0 - _EPS)
    proba = proba / proba.sum(axis=1, keepdims=True)
    k = _n_classes(y, proba)
    if proba.shape[1] < k:
        raise ValueError(f"log_loss: predictions have {proba.shape[1]} columns but y_true has {k} classes")
    # labels=range(k) so a fold missing a class still scores against all k columns.
    return float(skm.log_loss(y, proba, labels=list(range(k))))


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.accuracy_score(y, _to_labels(p)))


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.balanced_accuracy_score(y, _to_labels(p)))


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    labels = _to_labels(p)
    y = np.asarray(y)
    if max(int(np.max(y)) if y.size else 0, int(np.max(labels)) if labels.size else 0) > 1:
        # Plain "F1" on a multiclass task means nothing binary; macro is the usual reading.
        return float(skm.f1_score(y, labels, average="macro", zero_division=0))
    return float(skm.f1_score(y, labels, average="binary", zero_division=0))


def _f1_macro(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.f1_score(y, _to_labels(p), average="macro", zero_division=0))


def _mcc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.matthews_corrcoef(y, _to_labels(p)))


def _qwk(y: np.ndarray, p: np.ndarray) -> float:
    y_int = np.rint(np.asarray(y, dtype=float)).astype(int)
    return float(skm.cohen_kappa_score(y_int, _ordinal_labels(y, p), weights="quadratic"))


def _mape(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.mean_absolute_percentage_error(y, p))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.mean_absolute_error(y, p))


def _mse(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.mean_squared_error(y, p))


def _medae(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.median_absolute_error(y, p))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.r2_score(y, p))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Metric:
    """One evaluation metric: how to score, which way is better, what it consumes."""

    name: str
    greater_is_better: bool
    needs: Needs
    task_types: frozenset[str]
    description: str
    _fn: Callable[[np.ndarray, np.ndarray], float] = field(repr=False, compare=False)
    base: str | None = None  # a column-wise mean: the metric each target column is scored by

    def score(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        """Score ``pred`` (in the model contract's form) against ``y_true``."""
        y = np.asarray(y_true)
        p = np.asarray(pred)
        if self.base is not None:
            return self._columnwise(y, p)
        if y.ndim > 1 and y.shape[1] == 1:
            y = y[:, 0]
        if self.needs == "value" and p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        if len(y) != len(p):
            raise ValueError(f"{self.name}: y_true has {len(y)} rows but pred has {len(p)}")
        return self._fn(y, p)

    def _columnwise(self, y: np.ndarray, p: np.ndarray) -> float:
        """The mean over target columns of the base metric (a column that cannot be scored in
        this fold, such as AUC on one class, is left out of the mean)."""
        y = y.reshape(len(y), -1)
        p = p.reshape(len(p), -1)
        if y.shape != p.shape:
            raise ValueError(f"{self.name}: y_true has shape {y.shape} but pred has {p.shape}")
        base = METRICS[self.base]
        scores = [base.score(y[:, j], p[:, j]) for j in range(y.shape[1])]
        scores = [s for s in scores if not math.isnan(s)]
        return float(np.mean(scores)) if scores else float("nan")

    def columnwise(self) -> "Metric":
        """This metric averaged over several target columns (mean column-wise AUC, RMSLE, ...)."""
        if self.base is not None:
            return self
        for m in METRICS.values():
            if m.base == self.name:
                return m
        raise UnknownMetricError(f"metric '{self.name}' has no column-wise mean for several targets; "
                                 f"use one of {', '.join(m.base for m in METRICS.values() if m.base)}")

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b`` (nan is never better)."""
        if a is None or (isinstance(a, float) and math.isnan(a)):
            return False
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return True
        return a > b if self.greater_is_better else a < b

    def gain(self, a: float, b: float) -> float:
        """How much better score ``a`` is than ``b`` (negative when worse), whichever way the
        metric points: fold-by-fold gains are compared with their spread."""
        return (a - b) if self.greater_is_better else (b - a)

    def ranked(self, items: Iterable[T], key: Callable[[T], float | None] = lambda x: x) -> list[T]:
        """The items with a real score, best first (a stable sort: ties keep their order)."""
        scored = [x for x in items if _real(key(x))]
        return sorted(scored, key=key, reverse=self.greater_is_better)

    def best(self, items: Iterable[T], key: Callable[[T], float | None] = lambda x: x) -> T | None:
        """The item whose score is best (the first of equals), or None when none has a real score."""
        ranked = self.ranked(items, key)
        return ranked[0] if ranked else None

    def worst(self) -> float:
        """The value every real score beats, for initialising searches."""
        return -math.inf if self.greater_is_better else math.inf


def _real(score: float | None) -> bool:
    return score is not None and not (isinstance(score, float) and math.isnan(score))


def _m(
    name: str,
    gib: bool,
    needs: Needs,
    tasks: frozenset[str],
    description: str,
    fn: Callable[[np.ndarray, np.ndarray], float],
) -> Metric:
    return Metric(name, gib, needs, tasks, description, fn)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        _m("auc", True, "proba", _CLS, "area under the ROC curve (one-vs-rest for multiclass)", _auc),
        _m("accuracy", True, "label", _CLS, "share of rows whose predicted class is correct", _accuracy),
        _m("balanced_accuracy", True, "label", _CLS, "mean per-class recall", _balanced_accuracy),
        _m("log_loss", False, "proba", _CLS, "cross-entropy of the predicted class probabilities", _log_loss),
        _m("f1", True, "label", _CLS, "F1 score of the positive class (macro over classes if multiclass)", _f1),
        _m("f1_macro", True, "label", _CLS, "unweighted mean of per-class F1 scores", _f1_macro),
        _m("mcc", True, "label", _CLS, "Matthews correlation coefficient", _mcc),
        _m("qwk", True, "label", _ALL, "quadratic weighted Cohen's kappa on ordinal labels", _qwk),
        _m("rmse", False, "value", _REG, "root mean squared error", _rmse),
        _m("rmsle", False, "value", _REG, "root mean squared logarithmic error (predictions clipped at 0)", _rmsle),
        _m("mae", False, "value", _REG, "mean absolute error", _mae),
        _m("mse", False, "value", _REG, "mean squared error", _mse),
        _m("medae", False, "value", _REG, "median absolute error", _medae),
        _m("mape", False, "value", _REG, "mean absolute percentage error (as a fraction)", _mape),
        _m("r2", True, "value", _REG, "coefficient of determination (R squared)", _r2),
    ]
}
# Column-wise means for several targets per row (jigsaw-toxic, nomad2018): the base metric on
# each target column, averaged. Scored on (n, t) arrays.
METRICS.update({
    m.name: m
    for m in [
        Metric("mean_columnwise_auc", True, "proba", _MULTILABEL, "mean over the label columns of their ROC AUC", None, "auc"),
        Metric("mean_columnwise_log_loss", False, "proba", _MULTILABEL, "mean over the label columns of their log loss",
               None, "log_loss"),
        Metric("mean_columnwise_rmse", False, "value", _MULTITARGET, "mean over the target columns of their RMSE", None, "rmse"),
        Metric("mean_columnwise_rmsle", False, "value", _MULTITARGET, "mean over the target columns of their RMSLE", None,
               "rmsle"),
        Metric("mean_columnwise_mae", False, "value", _MULTITARGET, "mean over the target columns of their MAE", None, "mae"),
    ]
})

# Keys are normalised with _norm (lowercase, runs of space/hyphen/underscore -> one space).
ALIASES: dict[str, str] = {
    # auc
    "auc": "auc",
    "roc auc": "auc",
    "rocauc": "auc",
    "auroc": "auc",
    "auc roc": "auc",
    "roc": "auc",
    "area under the roc curve": "auc",
    "area under roc curve": "auc",
    "area under the receiver operating characteristic curve": "auc",
    "area under the curve": "auc",
    # accuracy
    "accuracy": "accuracy",
    "acc": "accuracy",
    "classification accuracy": "accuracy",
    "categorization accuracy": "accuracy",
    "balanced accuracy": "balanced_accuracy",
    "balanced acc": "balanced_accuracy",
    # log loss
    "log loss": "log_loss",
    "logloss": "log_loss",
    "logarithmic loss": "log_loss",
    "cross entropy": "log_loss",
    "crossentropy": "log_loss",
    "binary cross entropy": "log_loss",
    "multi class log loss": "log_loss",
    "multiclass log loss": "log_loss",
    "mlogloss": "log_loss",
    "neg log loss": "log_loss",
    # f1
    "f1": "f1",
    "f1 score": "f1",
    "f score": "f1",
    "f1 binary": "f1",
    "f1 macro": "f1_macro",
    "macro f1": "f1_macro",
    "macro f1 score": "f1_macro",
    "macro averaged f1": "f1_macro",
    "mean f1": "f1_macro",
    # mcc
    "mcc": "mcc",
    "matthews correlation coefficient": "mcc",
    "matthews corrcoef": "mcc",
    # qwk
    "qwk": "qwk",
    "kappa": "qwk",
    "quadratic kappa": "qwk",
    "quadratic weighted kappa": "qwk",
    "cohen kappa": "qwk",
    "quadratic weighted cohen kappa": "qwk",
    # regression
    "rmse": "rmse",
    "root mean squared error": "rmse",
    "root mean square error": "rmse",
    "rmsle": "rmsle",
    "root mean squared logarithmic error": "rmsle",
    "root mean squared log error": "rmsle",
    "root mean square logarithmic error": "rmsle",
    "mae": "mae",
    "mean absolute error": "mae",
    "l1": "mae",
    "mse": "mse",
    "mean squared error": "mse",
    "mean square error": "mse",
    "l2": "mse",
    "medae": "medae",
    "median absolute error": "medae",
    "mape": "mape",
    "mean absolute percentage error": "mape",
    "r2": "r2",
    "r^2": "r2",
    "r 2": "r2",
    "r squared": "r2",
    "rsquared": "r2",
    "coefficient of determination": "r2",
    # column-wise means (several targets)
    "mean columnwise auc": "mean_columnwise_auc",
    "mean column wise auc": "mean_columnwise_auc",
    "mean columnwise roc auc": "mean_columnwise_auc",
    "mean column wise roc auc": "mean_columnwise_auc",
    "columnwise auc": "mean_columnwise_auc",
    "mean columnwise log loss": "mean_columnwise_log_loss",
    "mean column wise log loss": "mean_columnwise_log_loss",
    "mean columnwise rmse": "mean_columnwise_rmse",
    "mean column wise rmse": "mean_columnwise_rmse",
    "mean columnwise rmsle": "mean_columnwise_rmsle",
    "mean column wise rmsle": "mean_columnwise_rmsle",
    "columnwise rmsle": "mean_columnwise_rmsle",
    "mean columnwise mae": "mean_columnwise_mae",
    "mean column wise mae": "mean_columnwise_mae",
}


class UnknownMetricError(ValueError):
    """Raised for a metric name that is neither canonical nor an alias."""


def _norm(name: str) -> str:
    s = name.strip().lower().replace("’", "'").replace("'s", "").replace("'", "")
    return re.sub(r"[\s_\-]+", " ", s).strip()


for _name in METRICS:
    ALIASES.setdefault(_norm(_name), _name)


def get_metric(name: str) -> Metric:
    """Look a metric up by canonical name or alias (case, space, hyphen, underscore ignored)."""
    key = _norm(str(name))
    canonical = ALIASES.get(key) or ALIASES.get(key.replace(" ", ""))
    if canonical is None:
        raise UnknownMetricError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[canonical]


_DEFAULTS: dict[str, str] = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}


def default_metric(task_type: TaskType) -> str:
    """The metric used when a task names none.

    binary -> auc (threshold-free, the Kaggle default for binary targets);
    multiclass -> accuracy (what users read most easily; log_loss is chosen only when named);
    regression -> rmse.
    """
    try:
        return _DEFAULTS[task_type]
    except KeyError:
        raise ValueError(f"unknown task type {task_type!r}; known: {', '.join(_DEFAULTS)}") from None


# --------------------------------------------------------------------------- text reading

# Each metric's phrases, written with " " for "one or more spaces or hyphens" and "~" for
# "an optional space or hyphen". The number is the specificity that breaks ties, so "root
# mean squared logarithmic error" beats "root mean squared error", "macro f1" beats "f1",
# and "balanced accuracy" beats "accuracy".
_TEXT_PATTERNS: list[tuple[str, tuple[str, ...], int]] = [
    (
        "rmsle",
        (
            r"\brmsle\b",
            r"\blog rmse\b",
            r"root mean squared? log(?:arithmic)? error",
            # House Prices' wording: "RMSE between the logarithm of the predicted value..."
            r"root mean squared? error[^.\n]{0,40}\blog(?:arithm)?s?\b(?: of)? (?:the )?"
            r"(?:predicted|values?|target|prices?|sales)",
        ),
        3,
    ),
    ("rmse", (r"\brmse\b", r"root mean squared? error", r"root of the mean squared? error"), 2),
    ("mse", (r"\bmse\b", r"mean squared? error"), 1),
    ("mae", (r"\bmae\b", r"mean absolute error"), 2),
    ("medae", (r"\bmedae\b", r"median absolute error"), 3),
    ("mape", (r"\bmape\b", r"mean absolute percentage error"), 3),
    ("r2", (r"\br2\b", r"\br\^2\b", r"\br~squared\b", r"coefficient of determination", r"\br²"), 2),
    (
        "auc",
        (
            r"\bauc\b",
            r"\bauroc\b",
            r"\broc auc\b",
            r"area under (?:the )?(?:roc|receiver operating|curve)",
            r"\broc curve\b",
            r"\bgini\b",  # normalised Gini = 2 AUC - 1: the same ranking
        ),
        2,
    ),
    (
        "log_loss",
        (r"\blog~loss\b", r"logarithmic loss", r"cross~entropy", r"\bmlogloss\b", r"negative log likelihood"),
        2,
    ),
    (
        "f1_macro",
        (
            r"macro~(?:averaged? )?f~1",
            r"f~1~(?:score~)?\(?macro",
            r"mean f~1",
            r"f~1[^.\n]{0,30}averaged (?:over|across) (?:all )?(?:the )?classes",
        ),
        3,
    ),
    ("f1", (r"\bf~1\b", r"\bf~score\b", r"\bf~measure\b"), 1),
    ("mcc", (r"\bmcc\b", r"matthews correlation"), 3),
    (
        "qwk",
        (
            r"quadratic(?:ally)? weighted (?:cohen'?s? )?kappa",
            r"\bqwk\b",
            r"quadratic kappa",
            r"cohen'?s? kappa",
        ),
        3,
    ),
    ("balanced_accuracy", (r"balanced accuracy",), 3),
    (
        "accuracy",
        (
            r"\baccuracy\b",
            r"percentage of (?:correct|correctly)",
            r"fraction of (?:correct|correctly)",
            r"proportion of correct",
        ),
        1,
    ),
]


def _phrase_regex(alternatives: tuple[str, ...]) -> re.Pattern[str]:
    joined = "|".join(alternatives).replace(" ", r"[\s-]+").replace("~", r"[\s-]?")
    return re.compile(joined, re.IGNORECASE)


_COMPILED = [(name, _phrase_regex(alts), spec) for name, alts, spec in _TEXT_PATTERNS]
# Plain "score" is no cue: it is part of "F1 score" and would pull every F1 mention up.
_CUE = re.compile(r"evaluat|metric|\bscored\b|\bscoring\b|measured|judged|graded|ranked|leaderboard", re.IGNORECASE)
# Sentences end at . ! ? before whitespace or at a blank line; single newlines are only
# markdown wrapping, so a cue word on the line above still counts.
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n\s*\n|^#+ .*$", re.MULTILINE)
_EVAL_HEADING = re.compile(r"^#+\s*(?:evaluation|metric|scoring)", re.IGNORECASE | re.MULTILINE)


def metric_from_text(text: str) -> str | None:
    """Find the metric a Kaggle-style description names; None if it names none.

    Every mention is scored: closeness to a cue word ("evaluated", "metric", "scored") in
    the same sentence, being under an "Evaluation" heading, and specificity (rmsle over
    rmse, macro f1 over f1). A mention fully inside a longer mention of another metric is
    dropped ("mean squared error" inside "root mean squared error").
    """
    if not text:
        return None
    # Evaluation section: from an "## Evaluation"-like heading to the next heading.
    section: tuple[int, int] | None = None
    head = _EVAL_HEADING.search(text)
    if head:
        nxt = re.search(r"^#+\s", text[head.end():], re.MULTILINE)
        section = (head.start(), head.end() + nxt.start() if nxt else len(text))

    hits: list[tuple[int, int, str, int]] = []
    for name, rx, spec in _COMPILED:
        for mt in rx.finditer(text):
            hits.append((mt.start(), mt.end(), name, spec))
    if not hits:
        return None
    # Drop mentions contained in a longer mention of a different metric.
    def inside_longer(h: tuple[int, int, str, int]) -> bool:
        return any(
            o[2] != h[2] and o[0] <= h[0] and h[1] <= o[1] and (o[1] - o[0]) > (h[1] - h[0]) for o in hits
        )

    kept = [h for h in hits if not inside_longer(h)]

    best: tuple[float, int, str] | None = None
    for start, end, name, spec in kept:
        s_from = max((b.end() for b in _SENTENCE_END.finditer(text, 0, start)), default=0)
        after = _SENTENCE_END.search(text, end)
        s_to = after.start() if after else len(text)
        sentence = text[s_from:s_to]
        score = float(spec)
        cues = [m.start() + s_from for m in _CUE.finditer(sentence)]
        if cues:
            dist = min(abs(c - start) for c in cues)
            score += 10.0 + max(0.0, 5.0 - dist / 20.0)
        if section and section[0] <= start < section[1]:
            # Whatever the Evaluation section names outranks any mention elsewhere.
            score += 20.0
        if name in ("rmse", "mse") and _OF_LOGS.search(sentence):
            name = "rmsle"  # "RMSE between the log of ...", "RMSE on log-transformed prices": the error of the logs
        key = (score, -start, name)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


# a squared error taken of logarithms, however a description words it
_OF_LOGS = re.compile(r"\blog(?:arithm)?s?\s+of\b|\b(?:of|on|in|between)\s+(?:the\s+)?(?:natural\s+)?log(?:arithm)?s?\b|"
                      r"\blog[ -]?(?:transformed|scale[ds]?|space|target|values?|prices?)\b|\blog1p\b|\blog\s*\(|\bln\s*\(",
                      re.IGNORECASE)
