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
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from runtime.data import feature_columns, key_columns, label_key, labelled, read_table
from runtime.metrics import get_metric
from runtime.predict import MODELS_DIR

SAMPLE_ROWS = 300


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
        order = np.argsort(pd.to_datetime(frame[scheme["time_column"]], errors="coerce").values, kind="stable")
        for i, block in enumerate(np.array_split(order, k)):
            folds[block] = i
        return folds
    if kind == "group":
        splitter = GroupKFold(n_splits=k)
        splits = splitter.split(np.zeros(n), y, groups=frame[scheme["group_column"]].values)
    elif kind == "stratified" and task_type != "regression":
        min_count = int(np.bincount(y.astype(int)).min())
        splitter = StratifiedKFold(n_splits=max(2, min(k, min_count)), shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(n), y)
    else:
        splits = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    for i, (_, valid) in enumerate(splits):
        folds[valid] = i
    return folds


def to_dense_float(X: Any) -> np.ndarray | None:
    """A numeric float view of a transform's output, or None when it is not numeric."""
    if hasattr(X, "toarray"):  # scipy sparse: check values only
        return np.asarray(X.data, dtype=float)
    if isinstance(X, pd.DataFrame):
        numeric = X.select_dtypes(include=["number", "bool"])
        return numeric.to_numpy(dtype=float) if numeric.shape[1] == X.shape[1] else None
    arr = np.asarray(X)
    return arr.astype(float) if arr.dtype.kind in "biuf" else None


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
    enc = np.asarray(features_mod.Features(task, profile, dict(params)).encode(rows), dtype=np.float32)
    enc = enc.reshape(-1, 1) if enc.ndim == 1 else enc
    if enc.ndim != 2 or enc.shape[0] != len(rows):
        raise ContractError(f"features.py: Features.encode returned shape {enc.shape} for {len(rows)} rows; expected (rows, dims)")
    return pd.DataFrame(enc, columns=[f"enc_{i}" for i in range(enc.shape[1])])


def save_fold(attempt_dir: Path, k: int, feats: Any, model: Any) -> str | None:
    """Keep a fold's fitted Features and Model for `iml predict`; the reason when they cannot be."""
    import cloudpickle

    folder = attempt_dir / MODELS_DIR
    folder.mkdir(exist_ok=True)
    try:
        payload = cloudpickle.dumps((feats, model))
    except Exception as e:  # noqa: BLE001 - an unpicklable model still has its score
        return f"{type(e).__name__}: {e}"[:300]
    (folder / f"fold_{k}.pkl").write_bytes(payload)
    return None


class Harness:
    def __init__(self, run_dir: str | Path):
        run_dir = Path(run_dir)
        self.run_dir = run_dir
        self.task: dict[str, Any] = json.loads((run_dir / "task.json").read_text())
        self.profile: dict[str, Any] = json.loads((run_dir / "profile.json").read_text())
        self.scheme: dict[str, Any] = json.loads((run_dir / "blueprint.json").read_text())["validation"]
        task_dir = Path(self.task["task_dir"])
        keys = key_columns(self.task)
        train = read_table(task_dir / self.task["train_file"], "train file", keys=keys)
        test = read_table(task_dir / self.task["test_file"], "test file", keys=keys)
        target, id_col = self.task["target"], self.task["id_column"]
        train = labelled(train, target)
        features = feature_columns(self.task, train.columns)
        self.X = train[features]
        self.X_test = test[features]
        self.test_ids = test[id_col].to_numpy() if id_col and id_col in test.columns else np.arange(len(test))
        self.y = self._encode_target(train[target])
        self.folds = make_folds(self.scheme, self.y, train, self.task["task_type"])
        self.metric = get_metric(self.task["metric"])
        self.n_folds = int(self.folds.max()) + 1
        self._encoded: dict[str, pd.DataFrame] = {}
        # The ensemble and the report read these on the host, without a kernel.
        np.save(run_dir / "y.npy", self.y)
        np.save(run_dir / "folds.npy", self.folds)

    def _encode_target(self, target: pd.Series) -> np.ndarray:
        if self.task["task_type"] == "regression":
            return target.astype(float).to_numpy()
        index = {label: i for i, label in enumerate(self.task["classes"])}
        codes = target.map(lambda v: index.get(label_key(v), -1)).to_numpy()
        if (codes < 0).any():
            unknown = sorted({label_key(v) for v in target[codes < 0]})[:5]
            raise ValueError(f"target values {unknown} are not among the task's classes {self.task['classes']}")
        return codes.astype(np.int64)

    @property
    def n_classes(self) -> int:
        return len(self.task["classes"]) if self.task["task_type"] != "regression" else 0

    # -- attempts -------------------------------------------------------------------------

    def run_attempt(self, attempt_dir: str | Path, params: dict[str, Any], deadline_s: float | None = None) -> dict:
        """Cross-validate one attempt's modules; write result.json, oof.npy, test.npy."""
        attempt_dir = Path(attempt_dir)
        started = time.time()
        features_mod = load_module("features", attempt_dir / "features.py")
        model_mod = load_module("model", attempt_dir / "model.py")
        X, X_test = self._with_encoding(features_mod, params)
        oof = self._empty_pred(len(self.y))
        test_pred = self._empty_pred(len(X_test))
        fold_scores: list[float] = []
        unsaved: str | None = None
        for k in range(self.n_folds):
            if deadline_s is not None and time.time() - started > deadline_s and k > 0:
                raise TimeoutError(f"time share ran out after {k} of {self.n_folds} folds ({deadline_s:.0f} s)")
            tr, va = self.folds != k, self.folds == k
            feats = features_mod.Features(self.task, self.profile, dict(params))
            feats.fit(X[tr].reset_index(drop=True), self.y[tr])
            Xtr = feats.transform(X[tr].reset_index(drop=True))
            Xva = feats.transform(X[va].reset_index(drop=True))
            Xte = feats.transform(X_test)
            model = model_mod.Model(self.task, dict(params))
            model.fit(Xtr, self.y[tr], Xva, self.y[va])
            oof[va] = self._checked_predict(model, Xva, int(va.sum()))
            test_pred += self._checked_predict(model, Xte, len(X_test)) / self.n_folds
            fold_scores.append(float(self.metric.score(self.y[va], oof[va])))
            unsaved = unsaved or save_fold(attempt_dir, k, feats, model)
        score = float(self.metric.score(self.y, oof))
        np.save(attempt_dir / "oof.npy", oof)
        np.save(attempt_dir / "test.npy", test_pred)
        result = {
            "status": "ok",
            "score": score,
            "fold_scores": fold_scores,
            "metric": self.metric.name,
            "duration_s": round(time.time() - started, 3),
            "models_saved": unsaved is None,
            **({"models_not_saved": unsaved} if unsaved else {}),
        }
        (attempt_dir / "result.json").write_text(json.dumps(result, indent=2))
        return result

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
        feats = features_mod.Features(self.task, self.profile, dict(params))
        feats.fit(X.iloc[:cut], y[:cut])
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
            model = model_mod.Model(self.task, dict(params))
            model.fit(Ftr, y[:cut], Fva, y[cut:])
            try:
                preds.append(self._checked_predict(model, Fte, n_test))
            except ContractError as e:
                return [str(e)]
        if not np.allclose(preds[0], preds[1], rtol=1e-4, atol=1e-6, equal_nan=True):
            problems.append("model.py: Model is not deterministic: two fits with the same params gave different predictions; fix the random seed")
        return problems

    # -- internals ------------------------------------------------------------------------

    def _empty_pred(self, n: int) -> np.ndarray:
        if self.task["task_type"] == "multiclass":
            return np.zeros((n, self.n_classes))
        return np.zeros(n)

    def _checked_predict(self, model: Any, X: Any, rows: int) -> np.ndarray:
        kind = self.task["task_type"]
        pred = contract_prediction(kind, model.predict(X))
        expected = (rows, self.n_classes) if kind == "multiclass" else (rows,)
        if pred.shape != expected:
            what = {"multiclass": "(rows, n_classes) class probabilities", "binary": "(rows,) probability of the positive class", "regression": "(rows,) values"}[kind]
            raise ContractError(f"model.py: Model.predict returned shape {pred.shape}, expected {expected}: {what}")
        if np.isnan(pred).any():
            raise ContractError(f"model.py: Model.predict returned {int(np.isnan(pred).sum())} NaN values")
        if not np.isfinite(pred).all():
            raise ContractError("model.py: Model.predict returned infinite values")
        if kind != "regression" and (pred.min() < -1e-6 or pred.max() > 1 + 1e-6):
            raise ContractError(f"model.py: Model.predict returned probabilities outside [0, 1] (min {pred.min():.3g}, max {pred.max():.3g})")
        if kind == "multiclass":
            sums = pred.sum(axis=1)
            if not np.allclose(sums, 1.0, atol=1e-3):
                raise ContractError(f"model.py: Model.predict rows must sum to 1; they range {sums.min():.3g}..{sums.max():.3g}")
        return pred

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
        used = {k: v for k, v in params.items() if not source or f'"{k}"' in source or f"'{k}'" in source}
        key = hashlib.sha1((inspect.getsource(encode) + json.dumps(used, sort_keys=True, default=str)).encode()).hexdigest()[:16]
        if sample is not None and key not in self._encoded and not (self.run_dir / "cache" / f"encode_{key}.npy").exists():
            # The check needs only its sample: encode those rows (minutes less on long texts), cache nothing.
            rows = pd.concat([X, X_test], ignore_index=True)
            enc = encode_rows(features_mod, self.task, self.profile, params, rows)
            return (pd.concat([X, enc.iloc[:len(X)].set_axis(X.index)], axis=1),
                    pd.concat([X_test, enc.iloc[len(X):].set_axis(X_test.index)], axis=1))
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
        enc = self._encoded[key]
        n = len(self.X)
        train_enc = enc.iloc[:n].set_axis(self.X.index)
        test_enc = enc.iloc[n:].set_axis(self.X_test.index)
        X = pd.concat([X, train_enc.loc[X.index]], axis=1)
        X_test = pd.concat([X_test, test_enc.loc[X_test.index]], axis=1)
        return X, X_test

