"""The steps the recipes share, in one place: columns by kind, the number and date matrix, the
scaling of numbers, the log-target rule applied to a target, folds inside a fit, and a model's
class probabilities in the task's order.

The recipes (prompts/recipes) import it in the kernel, and so may generated modules; solution.py
carries it as it carries runtime.params. It imports numpy, pandas and scikit-learn's splitters
only, and nothing of iML but runtime.params.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from runtime.params import learns_log

# the parts a datetime column becomes, in this order ("days": days since 1970-01-01)
DATE_PARTS = ("year", "month", "day", "dayofweek", "hour", "days")
# a categorical with distinct values on more than this share of the training rows is a name or
# a title: its signal is in its words, not its identity
NAME_SHARE = 0.5
CLIP = 5.0  # standardised numbers are clipped to [-CLIP, CLIP]
SKEW_LOG = 2.0  # a non-negative column more skewed than this is read through log1p


# -- columns by kind --------------------------------------------------------------------------


class Columns(NamedTuple):
    """The profile's feature columns by kind (id and constant columns are in none)."""

    numeric: list[str]
    categorical: list[str]
    datetime: list[str]
    text: list[str]
    image: list[str]


def columns_by_kind(profile: dict, names_as_text: bool = False) -> Columns:
    """Column names by kind, in the profile's order. names_as_text: categoricals with a distinct
    value on most training rows (names, titles) count as text, after the text columns."""
    cols = profile["columns"]
    n_train = max(1, int(profile.get("n_train", 1)))
    names = [c["name"] for c in cols if names_as_text and c["kind"] == "categorical" and c["cardinality"] > NAME_SHARE * n_train]
    of = lambda kind: [c["name"] for c in cols if c["kind"] == kind]
    return Columns(numeric=of("numeric"), categorical=[c for c in of("categorical") if c not in names],
                   datetime=of("datetime"), text=of("text") + names, image=of("image"))


# -- numbers, dates, categories, text lengths -------------------------------------------------


def parse_dates(values: pd.Series) -> pd.Series:
    """Timestamps without a time zone; unreadable -> NaT. utc=True: tz-aware ("...Z") and
    mixed-offset stamps parse (to UTC) beside naive ones, which are taken as UTC; without it
    mixed offsets raise and aware stamps cannot be subtracted from naive ones."""
    return pd.to_datetime(values, errors="coerce", format="mixed", utc=True).dt.tz_convert(None)


def date_parts(values: pd.Series, parts: tuple[str, ...] = DATE_PARTS) -> pd.DataFrame:
    """One column per part (of DATE_PARTS), on the rows' index; NaN where the date is missing."""
    when = parse_dates(values)
    every = {
        "year": lambda: when.dt.year, "month": lambda: when.dt.month, "day": lambda: when.dt.day,
        "dayofweek": lambda: when.dt.day_of_week, "hour": lambda: when.dt.hour,
        "days": lambda: (when - pd.Timestamp("1970-01-01")).dt.days,
    }
    return pd.DataFrame({p: every[p]() for p in parts})


def varying_date_parts(X: pd.DataFrame, columns: list[str], parts_of=date_parts) -> dict[str, list[str]]:
    """Per datetime column, the parts (of parts_of(column), date_parts by default) that take more
    than one value on these rows."""
    chosen = {}
    for c in columns:
        parts = parts_of(X[c])
        chosen[c] = [p for p in parts if parts[p].nunique() > 1]
    return chosen


def date_columns(X: pd.DataFrame, chosen: dict[str, list[str]], parts_of=date_parts) -> dict[str, np.ndarray]:
    """`<column>_<part>` as floats for the parts chosen per column (varying_date_parts)."""
    out = {}
    for c, parts in chosen.items():
        values = parts_of(X[c])
        for p in parts:
            out[f"{c}_{p}"] = values[p].to_numpy(dtype=float)
    return out


def number_frame(X: pd.DataFrame, numeric: list[str], datetime: list[str] = (),
                 parts: tuple[str, ...] = ("year", "month", "dayofweek", "days")) -> pd.DataFrame:
    """Numeric columns as floats (unreadable -> NaN), then each datetime column's parts as
    `<column>_<part>`, on X's index: one float block. Columns already numeric are converted
    at once; a frame built column by column kept a block per column, and every later step
    (fill, scale, clip) then went block by block: 784 pixel columns took 3 s a clip."""
    numeric = list(numeric)
    dtypes = X.dtypes
    plain = [c for c in numeric if pd.api.types.is_numeric_dtype(dtypes[c])]
    block = X[plain].to_numpy(dtype=float, na_value=np.nan) if plain else np.empty((len(X), 0))
    frames = [pd.DataFrame(block, columns=plain, index=X.index)]
    rest = {c: pd.to_numeric(X[c], errors="coerce").astype(float) for c in numeric if c not in set(plain)}
    for c in datetime:
        values = date_parts(X[c], parts)
        rest.update({f"{c}_{p}": values[p] for p in parts})
    if rest:
        frames.append(pd.DataFrame(rest, index=X.index))
    out = pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]
    order = numeric + [f"{c}_{p}" for c in datetime for p in parts]
    return pd.DataFrame(out[order].to_numpy(dtype=float), columns=order, index=X.index)


def number_columns(X: pd.DataFrame, numeric: list[str]) -> dict[str, np.ndarray]:
    """Numeric columns as float arrays (unreadable -> NaN), for a frame built column by column
    (those already numeric converted at once: hundreds of columns one by one cost seconds)."""
    frame = number_frame(X, numeric)
    values = frame.to_numpy()
    return {c: values[:, i] for i, c in enumerate(frame.columns)}


def category_levels(X: pd.DataFrame, columns: list[str]) -> dict[str, pd.Index]:
    """Each column's levels on these rows, as strings (missing values are no level)."""
    return {c: pd.Index(X[c].dropna().astype(str).unique()) for c in columns}


def category_columns(X: pd.DataFrame, levels: dict[str, pd.Index]) -> dict[str, pd.Categorical]:
    """Columns as pandas categories over the fitted levels; unseen and missing -> missing."""
    out = {}
    for c, known in levels.items():
        values = X[c].astype(str)
        out[c] = pd.Categorical(values.where(X[c].notna() & values.isin(known)), categories=known)
    return out


def text_lengths(X: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """`<column>_chars` and `<column>_words` per text column (missing text: 0)."""
    out = {}
    for c in columns:
        text = X[c].fillna("").astype(str)
        out[f"{c}_chars"] = text.str.len().to_numpy(dtype=float)
        out[f"{c}_words"] = text.str.split().str.len().to_numpy(dtype=float)
    return out


# -- scaling numbers --------------------------------------------------------------------------


class NumberScaler:
    """The numeric pipeline fixed at fit time: missing flags, log1p of heavily skewed
    non-negative columns (`log_skewed`), the training median for missing values, then `scale`:
    "standard" (each column to mean 0, spread 1), "global" (all columns by one spread: columns
    in one unit, such as pixels) or None (no scaling), clipped to [-clip, clip] when clip is set.
    The arithmetic is numpy's on the whole matrix: per-column pandas steps cost seconds on
    hundreds of columns."""

    def __init__(self, log_skewed: bool = True, scale: str | None = "standard", clip: float | None = CLIP):
        self.log_skewed, self.scale, self.clip = log_skewed, scale, clip

    def fit(self, num: pd.DataFrame) -> NumberScaler:
        """Learn the flagged and logged columns, medians, means and spreads from training rows."""
        cols = num.columns
        values = num.to_numpy(dtype=float)
        self.flagged = list(cols[np.isnan(values).any(axis=0)]) if values.size else []
        if self.log_skewed and len(cols):
            skewed = (num.min() >= 0) & (num.skew() > SKEW_LOG)
            self.log_cols = list(cols[skewed.to_numpy()])
        else:
            self.log_cols = []
        values = self._logged(values, cols)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns: median 0 below
            medians = np.nan_to_num(np.nanmedian(values, axis=0), nan=0.0) if len(values) else np.zeros(len(cols))
        filled = np.where(np.isnan(values), medians, values)
        mean = filled.mean(axis=0) if len(filled) else np.zeros(len(cols))
        if self.scale == "global":
            overall = float(np.sqrt(((filled - mean) ** 2).mean())) if filled.size else 1.0
            std = np.full(len(cols), overall or 1.0)
        else:
            std = filled.std(axis=0, ddof=1) if len(filled) > 1 else np.ones(len(cols))
            std = np.where((std == 0) | ~np.isfinite(std), 1.0, std)
        self.medians, self.mean, self.std = (pd.Series(v, index=cols) for v in (medians, mean, std))
        return self

    def transform(self, num: pd.DataFrame) -> pd.DataFrame:
        """The numbers logged, filled, scaled and clipped as fitted (same columns)."""
        values = self._logged(num.to_numpy(dtype=float), num.columns)
        values = np.where(np.isnan(values), self.medians.to_numpy(), values)
        if self.scale is not None:
            values = (values - self.mean.to_numpy()) / self.std.to_numpy()
        if self.clip is not None:
            values = np.clip(values, -self.clip, self.clip)
        return pd.DataFrame(values, columns=num.columns, index=num.index)

    def flags(self, num: pd.DataFrame) -> pd.DataFrame:
        """1.0 where a column that missed values in training misses one; those columns only."""
        return num[self.flagged].isna().astype(np.float32)

    def logged(self, num: pd.DataFrame) -> pd.DataFrame:
        """log1p of the fitted skewed columns (negative values clipped to 0 first)."""
        return pd.DataFrame(self._logged(num.to_numpy(dtype=float), num.columns), columns=num.columns, index=num.index)

    def _logged(self, values: np.ndarray, cols: pd.Index) -> np.ndarray:
        """The matrix with log1p of the fitted skewed columns (by name in `cols`), a copy when any."""
        if not self.log_cols:
            return values
        at = cols.get_indexer(self.log_cols)
        values = values.copy()
        values[:, at] = np.log1p(np.clip(values[:, at], 0, None))
        return values


# -- the target -------------------------------------------------------------------------------


def log_target(task: dict, given: bool | None, y: Any, absolute: bool = True) -> bool:
    """Whether a regression fit learns log1p(y): runtime.params.learns_log, the one rule every
    recipe follows (always for RMSLE; for absolute errors on a non-negative, right-skewed target
    unless the model averages, `absolute=False`; `given` overrides). Never for classification."""
    return task["task_type"] == "regression" and learns_log(task.get("metric", ""), given, np.asarray(y, dtype=float),
                                                            absolute)


class TargetScale:
    """A regression target as a model learns it: log1p(y) when `log`, then (standardise) minus
    the training mean, over the training spread. `inverse` maps predictions back."""

    def __init__(self, log: bool, standardise: bool = False):
        self.log, self.standardise = log, standardise
        self.mean, self.std = 0.0, 1.0

    @classmethod
    def fitted(cls, task: dict, given: bool | None, y: Any, standardise: bool = False, absolute: bool = True) -> TargetScale:
        """The scale for this task and training target: log_target's decision (`absolute`: see
        there), y's mean and spread."""
        scale = cls(log_target(task, given, y, absolute), standardise)
        if standardise:
            v = scale.logged(y)
            scale.mean, scale.std = float(v.mean()), float(v.std()) or 1.0
        return scale

    def logged(self, y: Any) -> np.ndarray:
        """y as floats, through log1p (clipped at 0) when the scale logs."""
        y = np.asarray(y, dtype=float)
        return np.log1p(np.clip(y, 0, None)) if self.log else y

    def forward(self, y: Any) -> np.ndarray | None:
        """y on the learnt scale (None stays None: no validation part)."""
        if y is None:
            return None
        v = self.logged(y)
        return (v - self.mean) / self.std if self.standardise else v

    def unstandardised(self, v: Any) -> np.ndarray:
        """Values on the learnt scale back on the logged one (times the spread, plus the mean)."""
        return np.asarray(v) * self.std + self.mean if self.standardise else np.asarray(v)

    def unlogged(self, v: Any) -> np.ndarray:
        """Values on the logged scale back on the target's (expm1 when the scale logs)."""
        return np.expm1(v) if self.log else v

    def inverse(self, pred: Any) -> np.ndarray:
        """Predictions on the learnt scale back on the target's."""
        return self.unlogged(self.unstandardised(pred))


def inner_folds(n: int, y: np.ndarray, k: int, task_type: str, seed: int) -> list:
    """k folds (at least 2, at most n // 2) of a fit's own rows, for out-of-fold features inside
    it: stratified when every class present has k rows, else shuffled plain folds."""
    k = max(2, min(k, n // 2))
    if task_type != "regression":
        counts = np.bincount(np.asarray(y).astype(int))
        if counts[counts > 0].min() >= k:
            return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), y))
    return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))


# -- class probabilities ----------------------------------------------------------------------


def in_class_order(proba: np.ndarray, model_classes: Any, n_classes: int) -> np.ndarray:
    """(n, n_classes): a model's predict_proba columns placed at the class codes it knows. A rare
    class can be absent from a fold's training part; its column stays 0."""
    out = np.zeros((proba.shape[0], n_classes))
    out[:, np.asarray(model_classes).astype(int)] = proba
    return out


def class_probabilities(model: Any, X: Any, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities of a fitted scikit-learn-style classifier, in the task's order."""
    return in_class_order(model.predict_proba(X), model.classes_, n_classes)


def as_prediction(task_type: str, proba: np.ndarray) -> np.ndarray:
    """What predict returns for classification: binary -> (n,) P(class 1); multiclass -> (n, k)."""
    return proba[:, 1] if task_type == "binary" else proba


# -- the skeleton of a model ------------------------------------------------------------------


class TaskModel:
    """What every Model keeps of its arguments: the task, the params, the task type (`kind`) and
    the number of classes (`k`; 0 for regression)."""

    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.kind = task["task_type"]
        self.k = len(task.get("classes") or [])


class EstimatorModel(TaskModel):
    """The skeleton of a Model around one scikit-learn-style estimator, `self.model`: a subclass
    writes `fit` (setting self.model, and for regression self.target, a TargetScale) and may
    change `probabilities`; `predict` maps regression back through self.target and gives
    classification probabilities in the task's class order, as the contract wants them."""

    def __init__(self, task: dict, params: dict):
        super().__init__(task, params)
        self.target: TargetScale | None = None

    def full_fit_params(self) -> dict:
        """Params for one more fit on all rows: {} when fit uses no validation part (the same fit)."""
        return {}

    def probabilities(self, X: Any) -> np.ndarray:
        """(n, k) class probabilities in the task's order."""
        return class_probabilities(self.model, X, self.k)

    def predict(self, X: Any) -> np.ndarray:
        """Regression: values on the target's scale; binary: (n,) P(class 1); multiclass: (n, k)."""
        if self.kind == "regression":
            pred = self.model.predict(X)
            return self.target.inverse(pred) if self.target is not None else pred
        return as_prediction(self.kind, self.probabilities(X))
