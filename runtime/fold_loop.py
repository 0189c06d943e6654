"""The fold loop: the folds, the target's encoding, one fold's fit of an attempt's `Features`
and `Model`, and the loop over folds with its test predictions.

The Harness runs it in a track's kernel for every attempt, and solution.py holds this whole
module as its own text (runtime/solution.py inlines it), so the standalone script fits exactly
as the run fitted: nothing here may import more of iML than runtime/data.py, which solution.py
inlines beside it.
"""

from __future__ import annotations

import itertools
import types
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from runtime.data import label_key, target_columns


class ContractError(Exception):
    """A module broke the contract (shape, range, NaN, columns). Its message goes to debug."""


def load_module(name: str, path: Path) -> types.ModuleType:
    """Execute a module's source into a fresh module object; tracebacks name the real file."""
    source = path.read_text()
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def make_folds(scheme: dict[str, Any], y: np.ndarray, frame: pd.DataFrame, task_type: str) -> np.ndarray:
    """Fold index per training row, from the blueprint's validation scheme."""
    n = len(y)
    k = int(scheme.get("n_folds", 5))
    seed = int(scheme.get("seed", 0))
    kind = scheme.get("kind", "stratified")
    folds = np.full(n, -1, dtype=np.int64)
    if kind == "time":
        # Time-ordered: rows sorted by the time column, cut into k contiguous blocks, so every
        # block is predicted by a model that also saw rows after it. Scored like k-fold; a
        # forward-chaining scheme would leave the first block without predictions.
        order = np.argsort(pd.to_datetime(frame[scheme["time_column"]], errors="coerce", format="mixed", utc=True).values, kind="stable")
        for i, block in enumerate(np.array_split(order, k)):
            folds[block] = i
        return folds
    if kind == "group":
        splitter = GroupKFold(n_splits=k)
        splits = splitter.split(np.zeros(n), y, groups=frame[scheme["group_column"]].values)
    elif y.ndim == 2 and task_type == "multilabel":
        # every label's positives spread over the folds (iterative stratification, Sechidis et al.)
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splits = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), y)
    elif kind == "stratified" and task_type in ("binary", "multiclass"):
        min_count = int(np.bincount(y.astype(int)).min())
        splitter = StratifiedKFold(n_splits=max(2, min(k, min_count)), shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(n), y)
    else:
        splits = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    for i, (_, valid) in enumerate(splits):
        folds[valid] = i
    return folds


def make_fold_sets(scheme: dict[str, Any], y: np.ndarray, frame: pd.DataFrame, task_type: str) -> np.ndarray:
    """(repeats, rows): each repeat's fold index per training row. A repeat cuts a random k-fold
    again with another seed, so every row is predicted once per repeat by models that never saw
    it; a time or group scheme has one way to cut, and one repeat."""
    kind = scheme.get("kind", "stratified")
    repeats = max(1, int(scheme.get("repeats", 1))) if kind in ("kfold", "stratified") else 1
    seed = int(scheme.get("seed", 0))
    return np.stack([make_folds({**scheme, "seed": seed + 1000 * r}, y, frame, task_type) for r in range(repeats)])


def attempt_scheme(scheme: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The validation scheme one attempt's folds follow: the run's, cut `params["cuts"]` times when
    the attempt asks for its own number of cuts (a bag of the best models at a long budget). Its
    first cuts are the run's, so its predictions compare with every other attempt's fold by fold."""
    cuts = params.get("cuts")
    return {**scheme, "repeats": int(cuts)} if cuts else scheme


MULTI = ("multilabel", "multitarget")


def encode_target(train: pd.DataFrame, task: dict[str, Any]) -> np.ndarray:
    """The harness's y: values (n,), class codes 0..k-1 (n,), or (n, t) for several targets."""
    kind = task["task_type"]
    if task.get("one_hot"):
        return train[task["classes"]].astype(float).to_numpy().argmax(axis=1).astype(np.int64)
    if kind == "multitarget":
        return train[target_columns(task)].astype(float).to_numpy()
    if kind == "multilabel":  # probabilities in train count as the label they lean to
        return (train[target_columns(task)].astype(float).to_numpy() >= 0.5).astype(np.int64)
    target = train[task["target"]]
    if kind == "regression":
        return target.astype(float).to_numpy()
    index = {label: i for i, label in enumerate(task["classes"])}
    codes = target.map(lambda v: index.get(label_key(v), -1)).to_numpy()
    if (codes < 0).any():
        unknown = sorted({label_key(v) for v in target[codes < 0]})[:5]
        raise ValueError(f"target values {unknown} are not among the task's classes {task['classes']}")
    return codes.astype(np.int64)


def unit_tasks(task: dict[str, Any], model_mod: types.ModuleType) -> list[tuple[dict[str, Any], int | None]]:
    """What one fit is: the whole task, or, for several targets and a Model without
    `multi_output = True`, one binary / regression task per target column (index j of y)."""
    if task["task_type"] not in MULTI or getattr(model_mod.Model, "multi_output", False):
        return [(task, None)]
    kind = "binary" if task["task_type"] == "multilabel" else "regression"
    return [({**task, "task_type": kind, "target": col, "targets": [col], "classes": ["0", "1"] if kind == "binary" else [],
              "metric": task["column_metric"], "submission_format": "proba" if kind == "binary" else "label"}, j)
            for j, col in enumerate(target_columns(task))]


class ConstantUnit:
    """A label column with one class in a fold's training rows: nothing to learn, so its share."""

    def __init__(self, y: np.ndarray):
        self.value = float(np.mean(y))

    def transform(self, X: Any) -> Any:
        return X

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.value)


def repaired(profile: dict[str, Any], params: dict[str, Any], frames: list) -> tuple[dict[str, Any], list]:
    """The params' repairs of columns (the offline debug's, or a plan's): `drop_columns` leave the
    frames and the profile; `coerce_columns` ({column: kind}) give a column another kind, so the
    modules treat it another way (timestamps that do not parse read as categories)."""
    drop = set(params.get("drop_columns") or [])
    coerce = dict(params.get("coerce_columns") or {})
    if not drop and not coerce:
        return profile, frames
    columns = [{**c, "kind": coerce.get(c["name"], c["kind"])} for c in profile["columns"] if c["name"] not in drop]
    frames = [f if f is None else f.drop(columns=[c for c in drop if c in f.columns]) for f in frames]
    return {**profile, "columns": columns}, frames


def fit_fold(features_mod: types.ModuleType, model_mod: types.ModuleType, task: dict[str, Any], profile: dict[str, Any],
             params: dict[str, Any], X_tr: pd.DataFrame, y_tr: np.ndarray, X_va: pd.DataFrame | None,
             y_va: np.ndarray | None, others: list[pd.DataFrame]) -> tuple[list[tuple[Any, Any]], list[np.ndarray]]:
    """Fit Features and Model on one fold's training rows; predict the validation rows (when
    given) and each frame of `others`. Several targets: one fit per target column, their
    predictions side by side. Returns the fitted (Features, Model) per unit and the predictions."""
    profile, (X_tr, X_va, *others) = repaired(profile, params, [X_tr, X_va, *others])
    limit = params.get("max_train_rows")
    if limit and len(X_tr) > int(limit):  # a seeded sample of the fold's training rows; every row is still predicted
        keep = np.sort(np.random.RandomState(int(params.get("seed", 0))).choice(len(X_tr), int(limit), replace=False))
        X_tr, y_tr = X_tr.iloc[keep], y_tr[keep]
    fitted, columns = [], []
    units = unit_tasks(task, model_mod)
    for unit, j in units:
        yu_tr = y_tr if j is None else y_tr[:, j]
        yu_va = None if y_va is None else (y_va if j is None else y_va[:, j])
        if unit["task_type"] == "binary" and j is not None and len(np.unique(yu_tr)) < 2:
            const = ConstantUnit(yu_tr)
            fitted.append((const, const))
            columns.append([const.predict(X) for X in ([X_va] if X_va is not None else []) + others])
            continue
        feats = features_mod.Features(unit, profile, dict(params))
        feats.fit(X_tr.reset_index(drop=True), yu_tr)
        F_tr = feats.transform(X_tr.reset_index(drop=True))
        F_va = feats.transform(X_va.reset_index(drop=True)) if X_va is not None else None
        model = model_mod.Model(unit, dict(params))
        model.fit(F_tr, yu_tr, F_va, yu_va)
        preds = [checked_prediction(unit, model.predict(F_va), len(X_va))] if X_va is not None else []
        preds += [checked_prediction(unit, model.predict(feats.transform(X)), len(X)) for X in others]
        fitted.append((feats, model))
        columns.append(preds)
    if units[0][1] is None:  # one fit of the whole task: its predictions as they are
        return fitted, columns[0]
    return fitted, [np.column_stack([c[i] for c in columns]) for i in range(len(columns[0]))]


def fold_fits(features_mod: types.ModuleType, model_mod: types.ModuleType, task: dict[str, Any], profile: dict[str, Any],
              params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, folds: np.ndarray,
              at_once: int = 1, first_cut: int = 0):
    """Each fold's fit on the other folds (the held-out fold passed for early stopping), repeat
    after repeat (`folds`: one assignment, or one per repeat): (j, the held-out rows, the fitted
    Features and Model, validation predictions, test predictions), in order; j counts the fits.

    at_once > 1: that many folds fit side by side in threads (modules that declare it safe, see
    `folds_at_once`), each yielded as soon as it and those before it are done. A consumer that
    stops early leaves at most at_once - 1 running folds to end in the background; none starts.

    first_cut: the number of the first cut in `folds` (a bag that continues the cuts another
    attempt made fits from there on): a cut's seed is moved by its number (`cut_params`)."""
    cuts = [(assignment != k, assignment == k, first_cut + r) for r, assignment in enumerate(np.atleast_2d(folds))
            for k in range(int(assignment.max()) + 1)]

    def fit(tr: np.ndarray, va: np.ndarray, r: int) -> tuple:
        cut = cut_params(params, r)
        rows = training_rows(tr, cut)
        fitted, (pred_va, pred_test) = fit_fold(features_mod, model_mod, task, profile, cut, X.iloc[rows], y[rows], X[va],
                                                y[va], [X_test])
        return va, fitted, pred_va, pred_test

    if at_once <= 1:
        for j, (tr, va, r) in enumerate(cuts):
            yield (j, *fit(tr, va, r))
        return
    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="iml-fold")
    try:
        waiting = iter(enumerate(cuts))
        running = deque((j, pool.submit(fit, tr, va, r)) for j, (tr, va, r) in itertools.islice(waiting, at_once))
        while running:
            j, future = running.popleft()
            done = future.result()
            for k, (tr, va, r) in itertools.islice(waiting, 1):  # the next fold starts while this one is consumed
                running.append((k, pool.submit(fit, tr, va, r)))
            yield (j, *done)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def training_rows(mask: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The positions a fold's fit trains on: the fold's training rows, or the seeded sample of them
    `max_train_rows` asks for (the very rows `fit_fold` would draw), taken before they are copied:
    a large table's fold is never held whole beside its sample."""
    positions = np.flatnonzero(mask)
    limit = params.get("max_train_rows")
    if limit and len(positions) > int(limit):
        keep = np.sort(np.random.RandomState(int(params.get("seed", 0))).choice(len(positions), int(limit), replace=False))
        positions = positions[keep]
    return positions


def cut_params(params: dict[str, Any], cut: int) -> dict[str, Any]:
    """The params cut `cut` of the folds fits with: an attempt that asks for it (`seed_per_cut`, a
    bag of several cuts) moves its integer seed by the cut, so its cuts differ by the model's own
    randomness (bagging, column sampling) as well as by their rows; the first cut is the attempt's own."""
    seed = params.get("seed")
    if cut and params.get("seed_per_cut") and isinstance(seed, int) and not isinstance(seed, bool):
        return {**params, "seed": seed + cut}
    return params


def folds_at_once(model_mod: types.ModuleType, task: dict[str, Any], profile: dict[str, Any], params: dict[str, Any],
                  n_rows: int) -> int:
    """How many folds the harness fits side by side: the model module's optional
    `concurrent_folds(task, profile, params, n_rows) -> int` (a module whose fits use one thread
    each and share no state says how many of the kernel's threads its folds may take), else 1."""
    rule = getattr(model_mod, "concurrent_folds", None)
    if not callable(rule):
        return 1
    try:
        return max(1, int(rule(task, profile, dict(params), int(n_rows))))
    except Exception:  # noqa: BLE001 - a broken rule costs speed, not the attempt
        return 1


def checked_prediction(task: dict[str, Any], pred: Any, rows: int) -> np.ndarray:
    """Predictions in the contract's form, or ContractError saying what is wrong with them."""
    kind = task["task_type"]
    pred = contract_prediction(kind, pred)
    n_classes = len(task.get("classes") or [])
    t = len(target_columns(task))
    expected = (rows, n_classes) if kind == "multiclass" else (rows, t) if kind in MULTI else (rows,)
    if pred.shape != expected:
        what = {"multiclass": "(rows, n_classes) class probabilities", "binary": "(rows,) probability of the positive class",
                "regression": "(rows,) values", "multilabel": "(rows, labels) probability of each label",
                "multitarget": "(rows, targets) values"}[kind]
        raise ContractError(f"model.py: Model.predict returned shape {pred.shape}, expected {expected}: {what}")
    if np.isnan(pred).any():
        raise ContractError(f"model.py: Model.predict returned {int(np.isnan(pred).sum())} NaN values")
    if not np.isfinite(pred).all():
        raise ContractError("model.py: Model.predict returned infinite values")
    if kind not in ("regression", "multitarget") and (pred.min() < -1e-6 or pred.max() > 1 + 1e-6):
        raise ContractError(f"model.py: Model.predict returned probabilities outside [0, 1] (min {pred.min():.3g}, max {pred.max():.3g})")
    if kind == "multiclass":
        sums = pred.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-3):
            raise ContractError(f"model.py: Model.predict rows must sum to 1; they range {sums.min():.3g}..{sums.max():.3g}")
    return pred


def empty_prediction(task: dict[str, Any], n: int) -> np.ndarray:
    if task["task_type"] == "multiclass":
        return np.zeros((n, len(task["classes"])))
    if task["task_type"] in MULTI:
        return np.zeros((n, len(target_columns(task))))
    return np.zeros(n)


def contract_prediction(task_type: str, pred: Any) -> np.ndarray:
    """A model's predictions in the contract's form: binary (n,) P(positive), regression (n,)."""
    pred = np.asarray(pred, dtype=float)
    if task_type == "binary" and pred.ndim == 2 and pred.shape[1] == 2:
        pred = pred[:, 1]
    if task_type == "regression" and pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    return pred


def encode_rows(features_mod: types.ModuleType, task: dict, profile: dict, params: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """`Features.encode` over these rows, as columns enc_0..enc_d (the harness caches it)."""
    profile, (rows,) = repaired(profile, params, [rows])
    enc = np.asarray(features_mod.Features(task, profile, dict(params)).encode(rows), dtype=np.float32)
    enc = enc.reshape(-1, 1) if enc.ndim == 1 else enc
    if enc.ndim != 2 or enc.shape[0] != len(rows):
        raise ContractError(f"features.py: Features.encode returned shape {enc.shape} for {len(rows)} rows; expected (rows, dims)")
    return pd.DataFrame(enc, columns=[f"enc_{i}" for i in range(enc.shape[1])])


def join_encoded(X: pd.DataFrame, X_test: pd.DataFrame, enc: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw columns plus `Features.encode`'s, whose rows are the train rows then the test rows."""
    n = len(X)
    return (pd.concat([X, enc.iloc[:n].set_axis(X.index)], axis=1),
            pd.concat([X_test, enc.iloc[n:n + len(X_test)].set_axis(X_test.index)], axis=1))


def with_full_fit(folds_pred: np.ndarray, full_pred: np.ndarray) -> np.ndarray:
    """Test predictions from the fold models' mean and the fit on all rows, half each: the fit on
    all rows has the rows a fold's model lacks, the folds' mean the variance a bag removes."""
    return (folds_pred + full_pred) / 2
