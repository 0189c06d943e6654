"""Predictions -> the sample submission's format. One function, used by `submit`, by
`iml predict`, and inlined into solution.py from this source, so the three cannot disagree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from runtime.data import label_key, read_header, read_table, read_test, target_columns


def sharpened(pred: np.ndarray, power: float, task_type: str) -> np.ndarray:
    """Probabilities at temperature 1 / `power` (above 1 sharper, below softer): a multiclass
    row renormalised over its classes, a binary or multilabel column against its complement.
    The order of a row's classes never changes, so labels and AUC stay as they were."""
    if power == 1.0 or task_type not in ("binary", "multiclass", "multilabel"):
        return pred
    p = np.clip(np.asarray(pred, dtype=float), 1e-15, 1 - 1e-15)
    if task_type == "multiclass" and p.ndim == 2:
        logp = power * np.log(p)
        e = np.exp(logp - logp.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    a, b = p ** power, (1 - p) ** power
    return a / (a + b)


def submission_frame(task: dict, test_pred: np.ndarray, rows: pd.DataFrame | None = None,
                     threshold: float = 0.5, power: float = 1.0) -> pd.DataFrame:
    """The submission's columns and rows for `test_pred` (the harness's prediction form).

    threshold: a binary task's labels are the positive class where its probability reaches it.
    power: the probabilities' calibration (`sharpened`), fitted out of fold where log loss scores.
    rows: the predicted rows' id (exact strings) and the columns the submission copies from them;
    default the task's test file, whose rows are then those the sample submission lists, in its
    order (`ids_asked_for`)."""
    test_pred = sharpened(test_pred, power, task["task_type"])
    id_col = task.get("id_column")
    copied = list(task.get("passthrough_columns") or [])
    own_test = rows is None
    if rows is None:
        rows = read_test(task, columns=([id_col] if id_col else []) + copied or None, keys=copied)
    ids = rows[id_col].map(lambda v: v if isinstance(v, str) else label_key(v)).to_numpy() if id_col else np.arange(len(rows))
    value_cols = [c for c in task["submission_columns"] if c != id_col and c not in copied]
    if task["submission_format"] == "columns":  # several targets: one column each, as the sample orders them
        values = {c: test_pred[:, j] for j, c in enumerate(value_cols)}
    elif task["task_type"] == "regression":
        values = {value_cols[0]: test_pred}
    elif task["submission_format"] == "proba_cols":
        probs = test_pred if test_pred.ndim == 2 else np.column_stack([1 - test_pred, test_pred])
        values = {label: probs[:, i] for i, label in enumerate(task["classes"])}
    elif task["submission_format"] == "proba":
        values = {value_cols[0]: test_pred if test_pred.ndim == 1 else test_pred[:, 1]}
    else:
        # class labels as the exact strings of the train file ("01" stays "01", True stays True)
        codes = test_pred.argmax(axis=1) if test_pred.ndim == 2 else (test_pred >= threshold).astype(int)
        values = {value_cols[0]: np.array(task["classes"], dtype=object)[codes]}
    frame = pd.DataFrame({**({id_col: ids} if id_col else {}), **values})
    for c in copied:  # as the rows hold them
        frame[c] = rows[c].to_numpy()
    order = ids_asked_for(task, frame[id_col]) if own_test and id_col else None
    if order is not None:
        frame = frame.set_index(id_col).loc[order.to_numpy()].reset_index()
    return frame[task["submission_columns"]]


def ids_asked_for(task: dict, test_ids: pd.Series) -> pd.Series | None:
    """The ids the submission lists, in its order: the sample submission's, when it lists each of
    them once and every one is a test id (the test's ids in another order, or the test rows the
    task asks for: a test file may hold rows that are not scored). None: the test file's rows, in
    its order (no id column or no sample submission). analyze refuses a sample submission with ids
    the test file lacks or with repeated ids, and warns when it lists only some of the test rows."""
    sample_file, id_col = task.get("sample_submission_file"), task.get("id_column")
    path = Path(task["task_dir"]) / sample_file if sample_file else None
    if not id_col or path is None or not path.exists() or id_col not in read_header(path, "sample submission"):
        return None
    order = read_table(path, "sample submission", keys=[id_col], columns=[id_col])[id_col]
    if order.duplicated().any() or not set(order) <= set(test_ids):
        return None
    return order


def baseline_prediction(train: pd.DataFrame, task: dict, n_test: int) -> np.ndarray:
    """A constant for every test row from the training targets (rows with every target): each
    target's mean (its median for MAE), or the class shares. When no track scored, this keeps
    the promise of a valid submission."""
    if task["task_type"] in ("multilabel", "multitarget") or task.get("one_hot"):
        values = train[target_columns(task)].astype(float)
        if task["task_type"] == "multilabel":
            values = (values >= 0.5).astype(float)
        return np.tile(values.mean().to_numpy(), (n_test, 1))
    y = train[task["target"]]
    if task["task_type"] == "regression":
        value = float(y.median() if task["metric"] in ("mae", "medae") else y.astype(float).mean())
        return np.full(n_test, value)
    shares = y.map(label_key).value_counts(normalize=True)
    probs = np.array([shares.get(c, 0.0) for c in task["classes"]])
    return np.tile(probs[1], n_test) if task["task_type"] == "binary" else np.tile(probs, (n_test, 1))
