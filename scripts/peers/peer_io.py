"""What every peer runner shares: reading the bench's spec and data, writing predictions.

Runs inside a peer's own venv (AutoGluon pins its own pandas), so it imports nothing from
iml: the bench writes the task as iml read it (`spec.json`) with the target already encoded
in iml's class order (`y.npy`), and turns the predictions a runner writes (`pred.npy`, in
the model contract's form) into a submission with iml's own formatter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def load(argv: list[str] | None = None) -> tuple[dict, pd.DataFrame, np.ndarray, pd.DataFrame, Path]:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir", type=Path, help="folder with spec.json and y.npy; pred.npy is written here")
    args = parser.parse_args(argv)
    spec = json.loads((args.work_dir / "spec.json").read_text())
    train = pd.read_csv(spec["train"], low_memory=False)
    test = pd.read_csv(spec["test"], low_memory=False)
    targets = spec.get("targets") or [spec["target"]]
    train = train.dropna(subset=targets).reset_index(drop=True)
    drop = [c for c in (*targets, spec["id_column"]) if c]
    X = train.drop(columns=[c for c in drop if c in train.columns])
    X_test = test.drop(columns=[c for c in drop if c in test.columns])[list(X.columns)]
    y = np.load(args.work_dir / "y.npy", allow_pickle=False)
    if len(y) != len(X):
        raise SystemExit(f"y.npy has {len(y)} rows, train has {len(X)}")
    spec["started"] = time.time()
    return spec, X, y, X_test, args.work_dir


def to_contract(spec: dict, proba: np.ndarray | None = None, labels: np.ndarray | None = None,
                values: np.ndarray | None = None) -> np.ndarray:
    """Predictions in the contract's form. Label-scored tasks get the peer's own labels (its
    decision threshold, not 0.5 on its probabilities), as 0/1 or one-hot rows."""
    kind, k = spec["task_type"], len(spec["classes"])
    if kind in ("regression", "multitarget"):
        return np.asarray(values, dtype=float)
    if kind == "multilabel":  # (n, labels) probability of each label
        return np.asarray(proba, dtype=float)
    if spec["submission_format"] == "label" and labels is not None:
        codes = np.asarray(labels).astype(int)
        return codes.astype(float) if kind == "binary" else np.eye(k)[codes]
    proba = np.asarray(proba, dtype=float)
    if kind == "binary":
        return proba[:, 1] if proba.ndim == 2 else proba
    return proba / proba.sum(axis=1, keepdims=True)


def proba_in_order(frame_or_array, columns, k: int) -> np.ndarray:
    """Probability columns placed at their class codes 0..k-1 (a class never seen gets 0)."""
    values = np.asarray(frame_or_array, dtype=float)
    out = np.zeros((values.shape[0], k))
    for j, c in enumerate(columns):
        out[:, int(c)] = values[:, j]
    return out


def save(work_dir: Path, pred: np.ndarray, info: dict | None = None) -> None:
    np.save(work_dir / "pred.npy", np.asarray(pred, dtype=float))
    (work_dir / "peer.json").write_text(json.dumps(info or {}, indent=2, default=str))


def as_categories(X: pd.DataFrame, X_test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Object columns as pandas categories with one category set for train and test."""
    X, X_test = X.copy(), X_test.copy()
    for c in X.columns:
        if X[c].dtype == object or str(X[c].dtype) in ("string", "str", "category", "bool"):
            cats = pd.Index(pd.concat([X[c], X_test[c]]).dropna().astype(str).unique())
            X[c] = pd.Categorical(X[c].astype(str).where(X[c].notna()), categories=cats)
            X_test[c] = pd.Categorical(X_test[c].astype(str).where(X_test[c].notna()), categories=cats)
    return X, X_test
