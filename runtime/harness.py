"""The harness: loaded once into each track's kernel.

It owns everything around the generated modules — the data (read once per kernel), the
encoded target, the folds (the same for every track), the loop over folds, out-of-fold and
test predictions, and the metric. Generated `Features` / `Model` classes never see a file,
a validation label or a score; the harness computes the score itself and writes it to
`result.json`, so nothing is parsed out of stdout.

Each attempt's modules are executed into fresh module objects, so attempts cannot leak
state into each other while the loaded data is shared.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from runtime.data import feature_columns, label_key, labelled, read_test, read_train, target_columns
from runtime.metrics import get_metric
from runtime.params import REPAIR_PARAMS
from runtime.predict import FULL_MODEL, MODELS_DIR

SAMPLE_ROWS = 300
# an attempt whose first cut is projected to end past this many times its deadline stops early:
# folds vary, and past the deadline the cell's own timeout (1/0.9 of it) kills it with nothing kept
TOO_SLOW = 1.0


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


def to_dense_float(X: Any) -> np.ndarray | None:
    """A numeric float view of a transform's output, or None when it is not numeric."""
    if hasattr(X, "toarray"):  # scipy sparse: check values only
        return np.asarray(X.data, dtype=float)
    if isinstance(X, pd.DataFrame):
        numeric = X.select_dtypes(include=["number", "bool"])
        return numeric.to_numpy(dtype=float) if numeric.shape[1] == X.shape[1] else None
    arr = np.asarray(X)
    return arr.astype(float) if arr.dtype.kind in "biuf" else None


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


def attempt_device() -> str:
    """Where the attempt computed: `cuda:<name>` when it put tensors on a GPU, else `cpu`."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.max_memory_allocated() > 0 else "cpu"


def reset_device_peak() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def drop_folds(attempt_dir: Path, fits) -> None:
    """Remove the kept models of fits whose cut was not finished (their predictions are not used)."""
    for j in fits:
        (attempt_dir / MODELS_DIR / f"fold_{j}.pkl").unlink(missing_ok=True)


def save_fold(attempt_dir: Path, k: int, fitted: list[tuple[Any, Any]]) -> str | None:
    """Keep a fold's fitted (Features, Model) units for `iml predict`; the reason when they cannot be."""
    return save_models(attempt_dir, f"fold_{k}.pkl", fitted)


def save_full(attempt_dir: Path, fitted: list[tuple[Any, Any]]) -> str | None:
    """Keep the fit on all rows beside the folds' (`iml predict` mixes it in as the harness did)."""
    return save_models(attempt_dir, FULL_MODEL, fitted)


def save_models(attempt_dir: Path, name: str, fitted: list[tuple[Any, Any]]) -> str | None:
    import cloudpickle

    folder = attempt_dir / MODELS_DIR
    folder.mkdir(exist_ok=True)
    partial = folder / f".{name}.partial"
    # Streamed to the file: `dumps` held the whole pickle in memory beside the model (an
    # extra-trees forest on 4,500 rows: +50 MB at the attempt's peak). Renamed when complete,
    # so a failure never leaves a pickle that looks whole.
    try:
        with partial.open("wb") as f:
            cloudpickle.dump(fitted, f)
    except Exception as e:  # noqa: BLE001 - an unpicklable model still has its score
        partial.unlink(missing_ok=True)
        return f"{type(e).__name__}: {e}"[:300]
    partial.replace(folder / name)
    return None


def release_memory() -> None:
    """Hand the heap an attempt freed back to the system. glibc keeps freed pages for reuse;
    after an extra-trees forest that is ~120 MB the next attempts, and the run's peak, carry."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): their allocators differ
        pass


def model_full_fit_params(fitted: list[tuple[Any, Any]]) -> list[dict[str, Any]] | None:
    """Each unit's `Model.full_fit_params()`: what a fit without a validation part needs beyond
    the attempt's params (the rounds early stopping chose). None when a Model does not say: a
    model that needs a validation part cannot be fitted without one."""
    out = []
    for _, model in fitted:
        if isinstance(model, ConstantUnit):
            continue
        method = getattr(model, "full_fit_params", None)
        if method is None:
            return None
        given = method()
        if not isinstance(given, dict):
            raise ContractError(f"model.py: Model.full_fit_params returned {type(given).__name__}, expected a dict")
        out.append(given)
    return out


def mean_params(per_fit: list[dict[str, Any]]) -> dict[str, Any]:
    """One params dict from the fold fits': numbers averaged (integers rounded), others the first fit's."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for d in per_fit for k in d):
        values = [d[key] for d in per_fit if key in d]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and all(isinstance(v, int) for v in values):
            merged[key] = int(round(float(np.mean(values))))
        elif numeric:
            merged[key] = float(np.mean(values))
        else:
            merged[key] = values[0]
    return merged


def with_full_fit(folds_pred: np.ndarray, full_pred: np.ndarray) -> np.ndarray:
    """Test predictions from the fold models' mean and the fit on all rows, half each: the fit on
    all rows has the rows a fold's model lacks, the folds' mean the variance a bag removes."""
    return (folds_pred + full_pred) / 2


def fold_fits(features_mod: types.ModuleType, model_mod: types.ModuleType, task: dict[str, Any], profile: dict[str, Any],
              params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, folds: np.ndarray,
              at_once: int = 1):
    """Each fold's fit on the other folds (the held-out fold passed for early stopping), repeat
    after repeat (`folds`: one assignment, or one per repeat): (j, the held-out rows, the fitted
    Features and Model, validation predictions, test predictions), in order; j counts the fits.

    at_once > 1: that many folds fit side by side in threads (modules that declare it safe, see
    `folds_at_once`), each yielded as soon as it and those before it are done. A consumer that
    stops early leaves at most at_once - 1 running folds to end in the background; none starts."""
    cuts = [(assignment != k, assignment == k) for assignment in np.atleast_2d(folds) for k in range(int(assignment.max()) + 1)]

    def fit(tr: np.ndarray, va: np.ndarray) -> tuple:
        fitted, (pred_va, pred_test) = fit_fold(features_mod, model_mod, task, profile, params, X[tr], y[tr], X[va],
                                                y[va], [X_test])
        return va, fitted, pred_va, pred_test

    if at_once <= 1:
        for j, (tr, va) in enumerate(cuts):
            yield (j, *fit(tr, va))
        return
    # imported here: solution.py inlines this function under its own imports, one fold at a time
    import itertools
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="iml-fold")
    try:
        waiting = iter(enumerate(cuts))
        running = deque((j, pool.submit(fit, tr, va)) for j, (tr, va) in itertools.islice(waiting, at_once))
        while running:
            j, future = running.popleft()
            done = future.result()
            for k, (tr, va) in itertools.islice(waiting, 1):  # the next fold starts while this one is consumed
                running.append((k, pool.submit(fit, tr, va)))
            yield (j, *done)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


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


def join_encoded(X: pd.DataFrame, X_test: pd.DataFrame, enc: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw columns plus `Features.encode`'s, whose rows are the train rows then the test rows."""
    n = len(X)
    return (pd.concat([X, enc.iloc[:n].set_axis(X.index)], axis=1),
            pd.concat([X_test, enc.iloc[n:n + len(X_test)].set_axis(X_test.index)], axis=1))


def resolved_params(fitted: list[tuple[Any, Any]]) -> dict[str, Any]:
    """The settings the first fit's Features and Model used (recipes record them as `resolved`):
    what refine moves from, data-aware defaults included."""
    feats, model = fitted[0]
    out = {**(getattr(feats, "resolved", None) or {}), **(getattr(model, "resolved", None) or {})}
    return {k: v for k, v in out.items() if v is None or isinstance(v, (bool, int, float, str, list))}


def clearly_worse(metric, fold_scores: list[float], prune: dict[str, Any]) -> bool:
    """Whether the folds so far put an attempt below the best on each, by more than the margin."""
    k = len(fold_scores)
    best = list(prune.get("best") or [])
    if k < int(prune.get("after", 2)) or len(best) < k:
        return False
    gains = [metric.gain(a, b) for a, b in zip(fold_scores, best[:k])]
    if not all(np.isfinite(gains)):
        return False
    return max(gains) < 0 and -float(np.mean(gains)) > float(prune.get("margin", 0.0))


class Harness:
    def __init__(self, run_dir: str | Path):
        run_dir = Path(run_dir)
        self.run_dir = run_dir
        self.task: dict[str, Any] = json.loads((run_dir / "task.json").read_text())
        self.profile: dict[str, Any] = json.loads((run_dir / "profile.json").read_text())
        self.scheme: dict[str, Any] = json.loads((run_dir / "blueprint.json").read_text())["validation"]
        train = read_train(self.task)
        test = read_test(self.task)
        id_col = self.task["id_column"]
        train = labelled(train, target_columns(self.task))
        features = feature_columns(self.task, train.columns)
        self.X = train[features]
        self.X_test = test[features]
        self.test_ids = test[id_col].to_numpy() if id_col and id_col in test.columns else np.arange(len(test))
        self.y = encode_target(train, self.task)
        self.fold_sets = make_fold_sets(self.scheme, self.y, train, self.task["task_type"])
        self.folds = self.fold_sets[0]  # the first repeat's: what the ensemble's fold-by-fold checks split by
        self.metric = get_metric(self.task["metric"])
        self.n_folds = int(self.folds.max()) + 1
        self.n_fits = len(self.fold_sets) * self.n_folds
        self._encoded: dict[str, pd.DataFrame] = {}
        # The ensemble and the report read these on the host, without a kernel.
        np.save(run_dir / "y.npy", self.y)
        np.save(run_dir / "folds.npy", self.folds)

    def _cuts_note(self) -> str:
        return f" ({len(self.fold_sets)} cuts of {self.n_folds})" if len(self.fold_sets) > 1 else ""

    @property
    def n_classes(self) -> int:
        return len(self.task["classes"]) if self.task["task_type"] != "regression" else 0

    # -- attempts -------------------------------------------------------------------------

    def run_attempt(self, attempt_dir: str | Path, params: dict[str, Any], deadline_s: float | None = None,
                    prune: dict[str, Any] | None = None) -> dict:
        """Cross-validate one attempt's modules; write result.json, oof.npy, test.npy.

        `prune` (refine's candidates): {"after": k, "best": the current best's fold scores,
        "margin": m}. From fold k on, an attempt worse than the best on every fold so far, by
        more than m on average, stops there: result.json says "pruned" with its fold scores."""
        try:
            return self._run_attempt(Path(attempt_dir), params, deadline_s, prune)
        finally:
            release_memory()

    def _run_attempt(self, attempt_dir: Path, params: dict[str, Any], deadline_s: float | None,
                     prune: dict[str, Any] | None) -> dict:
        started = time.time()
        reset_device_peak()
        features_mod = load_module("features", attempt_dir / "features.py")
        model_mod = load_module("model", attempt_dir / "model.py")
        X, X_test = self._with_encoding(features_mod, params)
        folds_started = time.time()
        # each cut predicts every row once; a cut counts when all its folds are done
        oof, test_pred = empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(X_test))
        cut_oof, cut_test = empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(X_test))
        cuts = 0
        fold_scores: list[float] = []
        unsaved: str | None = None
        resolved: dict[str, Any] = {}
        full_fit_params: list[dict[str, Any]] | None = [] if self.scheme.get("refit") else None
        full_fit_failed = ""
        at_once = min(folds_at_once(model_mod, self.task, self.profile, params, len(X) * (self.n_folds - 1) // self.n_folds),
                      self.n_fits)
        for j, va, fitted, pred_va, pred_test in fold_fits(features_mod, model_mod, self.task, self.profile, params, X,
                                                           self.y, X_test, self.fold_sets, at_once):
            completes_cut = (j + 1) % self.n_folds == 0  # past the deadline, a cut this fold completes still counts
            if deadline_s is not None and time.time() - started > deadline_s and j > 0 and not completes_cut:
                if cuts:  # the cuts done are a whole out-of-fold prediction: score those, drop the rest
                    drop_folds(attempt_dir, range(cuts * self.n_folds, j))
                    fold_scores = fold_scores[:cuts * self.n_folds]
                    break
                return self._too_slow(attempt_dir, started, folds_started, j + 1, deadline_s, resolved, at_once)
            if deadline_s is not None and not cuts and j + 1 < self.n_folds:
                # The first cut's end, projected from its folds so far: an attempt that cannot
                # finish it stops now, and its measured speed lets debug plan a retry that fits.
                # folds fitted side by side: those running beside this one are about as far along
                per_fit = (time.time() - folds_started) / min(j + at_once, self.n_fits)
                if folds_started - started + per_fit * self.n_folds > TOO_SLOW * deadline_s:
                    return self._too_slow(attempt_dir, started, folds_started, j + 1, deadline_s, resolved or resolved_params(fitted),
                                          at_once)
            resolved = resolved or resolved_params(fitted)
            cut_oof[va] = pred_va
            cut_test += pred_test / self.n_folds
            fold_scores.append(float(self.metric.score(self.y[va], pred_va)))
            unsaved = unsaved or save_fold(attempt_dir, j, fitted)
            if full_fit_params is not None and not full_fit_failed:
                try:
                    given = model_full_fit_params(fitted)
                except Exception as e:  # noqa: BLE001 - the folds stand without a fit on all rows
                    full_fit_failed = f"the fit on all rows failed: full_fit_params: {type(e).__name__}: {e}"[:300]
                else:
                    full_fit_params = None if given is None else full_fit_params + given
            if prune and j + 1 < self.n_fits and clearly_worse(self.metric, fold_scores, prune):
                result = {"status": "pruned", "fold_scores": fold_scores, "metric": self.metric.name,
                          "duration_s": round(time.time() - started, 3), "resolved_params": resolved,
                          "error": f"pruned after {j + 1} of {self.n_fits} folds{self._cuts_note()}: worse than the best on each"}
                (attempt_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
                return result
            if (j + 1) % self.n_folds == 0:
                oof, test_pred, cuts = oof + cut_oof, test_pred + cut_test, cuts + 1
                cut_oof, cut_test = empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(X_test))
        fitted = None  # the last fold's models: not alive beside the fit on all rows
        oof, test_pred = oof / cuts, test_pred / cuts
        score = float(self.metric.score(self.y, oof))
        full_fit = None
        if self.scheme.get("refit"):
            full_fit = ({"skipped": full_fit_failed} if full_fit_failed
                        else self._full_fit_plan(full_fit_params, score, fold_scores, started, deadline_s, prune))
            if "params" in full_fit:
                fit_started = time.time()
                try:
                    fitted, (full_test,) = fit_fold(features_mod, model_mod, self.task, self.profile,
                                                    {**params, **full_fit["params"]}, X, self.y, None, None, [X_test])
                except Exception as e:  # noqa: BLE001 - the folds' predictions stand without it
                    full_fit = {"skipped": f"the fit on all rows failed: {type(e).__name__}: {e}"[:300]}
                else:
                    test_pred = with_full_fit(test_pred, full_test)
                    full_fit["seconds"] = round(time.time() - fit_started, 3)
                    unsaved = unsaved or save_full(attempt_dir, fitted)
        np.save(attempt_dir / "oof.npy", oof)
        np.save(attempt_dir / "test.npy", test_pred)
        result = {
            "status": "ok",
            "score": score,
            "fold_scores": fold_scores,
            "cuts": cuts,
            "metric": self.metric.name,
            "duration_s": round(time.time() - started, 3),
            "device": attempt_device(),
            "models_saved": unsaved is None,
            "resolved_params": resolved,
            **({"full_fit": full_fit} if full_fit is not None else {}),
            **({"models_not_saved": unsaved} if unsaved else {}),
        }
        (attempt_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def _too_slow(self, attempt_dir: Path, started: float, folds_started: float, fits: int, deadline_s: float,
                  resolved: dict[str, Any], at_once: int = 1) -> dict:
        """The result of an attempt stopped before its first cut could end: status "timeout",
        with `fit_seconds`, what one fit took here (folds side by side: the wall time per fold)."""
        drop_folds(attempt_dir, range(fits))
        per_fit = (time.time() - folds_started) / min(fits + at_once - 1, self.n_fits)
        needs = folds_started - started + per_fit * self.n_folds
        result = {"status": "timeout", "fold_scores": [], "metric": self.metric.name,
                  "duration_s": round(time.time() - started, 3), "resolved_params": resolved,
                  "fit_seconds": round(per_fit, 3),
                  "error": (f"too slow for its time: {fits} of {self.n_folds} folds took {time.time() - folds_started:.1f} s, so the "
                            f"first cut needs ~{needs:.1f} s and the attempt has {deadline_s:.1f} s; stopped there")}
        (attempt_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def _full_fit_plan(self, per_fit: list[dict[str, Any]] | None, score: float, fold_scores: list[float],
                       started: float, deadline_s: float | None, prune: dict[str, Any] | None) -> dict[str, Any]:
        """{"params": ...} for the fit on all rows, or {"skipped": why not}."""
        if per_fit is None:
            return {"skipped": "the Model defines no full_fit_params: it may need a validation part"}
        if prune:  # a refine candidate: only one that beats what it moved from is worth the fit
            best = prune.get("score")
            ours, theirs = (score, best) if best is not None else (float(np.mean(fold_scores)), float(np.mean(prune["best"])))
            if not self.metric.better(ours, theirs):
                return {"skipped": "a refine candidate no better than the attempt it moved from"}
        elapsed = time.time() - started
        # all rows cost about a fold's fit times k / (k - 1)
        need = elapsed / max(1, len(fold_scores)) * self.n_folds / max(1, self.n_folds - 1)
        if deadline_s is not None and elapsed + need > deadline_s:
            return {"skipped": f"no time: it needs ~{need:.1f} s, {max(0.0, deadline_s - elapsed):.1f} s left of the attempt's"}
        return {"params": mean_params(per_fit)}

    def check_attempt(self, attempt_dir: str | Path, params: dict[str, Any]) -> list[str]:
        """The dynamic interface check: run the modules on a small sample; list what breaks.

        The list is written to check.json too, which is what the framework reads.
        """
        attempt_dir = Path(attempt_dir)
        problems = self._sample_problems(attempt_dir, params)
        (attempt_dir / "check.json").write_text(json.dumps({"problems": problems}, indent=2))
        return problems

    def _sample_problems(self, attempt_dir: Path, params: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        features_mod = load_module("features", attempt_dir / "features.py")
        model_mod = load_module("model", attempt_dir / "model.py")
        rng = np.random.RandomState(0)
        n = min(SAMPLE_ROWS, len(self.y))
        idx = np.sort(rng.choice(len(self.y), n, replace=False))
        n_test = min(SAMPLE_ROWS // 3, len(self.X_test))
        X_all, X_test_all = self._with_encoding(features_mod, params, sample=(idx, np.arange(n_test)))
        X, y = X_all.reset_index(drop=True), self.y[idx]
        X_test = X_test_all.reset_index(drop=True)
        cut = int(n * 0.75)
        unit, j = unit_tasks(self.task, model_mod)[0]  # the features' checks on the first target's fit
        profile, (X, X_test) = repaired(self.profile, params, [X, X_test])
        feats = features_mod.Features(unit, profile, dict(params))
        feats.fit(X.iloc[:cut], y[:cut] if j is None else y[:cut, j])
        Ftr, Fva, Fte = (feats.transform(part) for part in (X.iloc[:cut], X.iloc[cut:], X_test))
        for label, out, rows in (("train", Ftr, cut), ("valid", Fva, n - cut), ("test", Fte, n_test)):
            if out.shape[0] != rows:
                problems.append(f"features.py: Features.transform returned {out.shape[0]} rows for {rows} {label} rows; it must keep the row count and order")
        if isinstance(Ftr, pd.DataFrame) and isinstance(Fte, pd.DataFrame) and list(Ftr.columns) != list(Fte.columns):
            problems.append("features.py: Features.transform gives different columns for train and test; fit must fix the column set")
        elif Ftr.shape[1] != Fte.shape[1]:
            problems.append(f"features.py: Features.transform gives {Ftr.shape[1]} columns for train and {Fte.shape[1]} for test")
        dense = to_dense_float(Ftr)
        if dense is not None and not np.isfinite(dense[~np.isnan(dense)]).all():
            problems.append("features.py: Features.transform output contains inf values")
        if problems:
            return problems
        preds = []
        for _ in range(2):  # twice: a fixed seed must give the same predictions
            try:
                _, (_, pred_test) = fit_fold(features_mod, model_mod, self.task, self.profile, params, X.iloc[:cut], y[:cut],
                                             X.iloc[cut:], y[cut:], [X_test])
            except ContractError as e:
                return [str(e)]
            preds.append(pred_test)
        if not np.allclose(preds[0], preds[1], rtol=1e-4, atol=1e-6, equal_nan=True):
            problems.append("model.py: Model is not deterministic: two fits with the same params gave different predictions; fix the random seed")
        return problems

    # -- internals ------------------------------------------------------------------------

    def _with_encoding(self, features_mod: types.ModuleType, params: dict, sample: tuple | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Raw columns plus the cached output of `Features.encode`, when the module has one.

        encode is row-wise and label-free, so it runs once on train + test and is cached by
        the source of the encode method and its params, across folds and attempts.
        """
        X, X_test = self.X, self.X_test
        if sample is not None:
            X, X_test = X.iloc[sample[0]], X_test.iloc[sample[1]]
        encode = getattr(features_mod.Features, "encode", None)
        if encode is None:
            return X, X_test
        # Keyed by the params the features module can read (its source names them), so a
        # model-only change (refine moving the head's C) reuses the embeddings.
        source = Path(features_mod.__file__).read_text() if getattr(features_mod, "__file__", None) else ""
        used = {k: v for k, v in params.items() if not source or f'"{k}"' in source or f"'{k}'" in source
                or k in REPAIR_PARAMS}
        key = hashlib.sha1((inspect.getsource(encode) + json.dumps(used, sort_keys=True, default=str)).encode()).hexdigest()[:16]
        if sample is not None and key not in self._encoded and not (self.run_dir / "cache" / f"encode_{key}.npy").exists():
            # The check needs only its sample: encode those rows (minutes less on long texts), cache nothing.
            rows = pd.concat([X, X_test], ignore_index=True)
            return join_encoded(X, X_test, encode_rows(features_mod, self.task, self.profile, params, rows))
        if key not in self._encoded:
            cache = self.run_dir / "cache" / f"encode_{key}.npy"
            if cache.exists():
                enc = np.load(cache)
            else:
                both = pd.concat([self.X, self.X_test], ignore_index=True)
                enc = encode_rows(features_mod, self.task, self.profile, params, both).to_numpy()
                cache.parent.mkdir(exist_ok=True)
                np.save(cache, enc)
            self._encoded[key] = pd.DataFrame(enc, columns=[f"enc_{i}" for i in range(enc.shape[1])])
        full, full_test = join_encoded(self.X, self.X_test, self._encoded[key])
        return full.loc[X.index], full_test.loc[X_test.index]

