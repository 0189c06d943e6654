"""submission.csv on disk: formatted like the task's sample submission, validated against the
task, and replaced atomically, so whoever reads it sees a whole, valid file.

`iml validate` and the bench check files with `validate_submission`; the run writes with
`write_submission` (submit's final blend) and, from the first scored attempt on, with
`offer_submission` (the anytime submission).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from runtime.data import TaskInputError, read_table, read_test
from runtime.metrics import get_metric
from runtime.records import AttemptResult, TaskSpec
from runtime.verdict import replaces
from runtime.submission import ids_asked_for, submission_frame

SUBMISSION = "submission.csv"


class InvalidSubmissionError(RuntimeError):
    """The framework produced a file that breaks the task's format: a bug, never user error."""


class Events(Protocol):
    """Where the run's events go (graph.context.EventLog): one record per call."""

    def emit(self, event: str, **data: Any) -> None: ...


def format_submission(task: TaskSpec, test_pred: np.ndarray, threshold: float = 0.5, power: float = 1.0) -> pd.DataFrame:
    """Predictions in the sample submission's format: its columns, its row order, the ids and
    class labels as the exact strings the task's files hold."""
    return submission_frame(task.model_dump(), test_pred, threshold=threshold, power=power)


def write_submission(task: TaskSpec, test_pred: np.ndarray, path: Path, threshold: float = 0.5,
                     power: float = 1.0) -> pd.DataFrame:
    """Format, write to a temporary file, validate, then move into place: whoever reads `path`
    (a user, or the run killed at any moment) sees the previous valid file or the new one."""
    frame = format_submission(task, test_pred, threshold, power)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    problems = validate_submission(task, tmp)
    if problems:
        tmp.unlink(missing_ok=True)
        raise InvalidSubmissionError(f"{path.name} breaks the task's format: " + "; ".join(problems))
    os.replace(tmp, path)
    return frame


def validate_submission(task: TaskSpec, path: str | Path) -> list[str]:
    """Every way the file breaks the task's format, one line each; empty when valid."""
    expected = task.submission_columns
    label_cols = [c for c in expected if c != task.id_column and c not in task.passthrough_columns] \
        if task.submission_format == "label" and task.task_type != "regression" else []
    try:
        sub = read_table(path, "submission", keys=([task.id_column] if task.id_column else []) + label_cols)
    except TaskInputError as e:
        return [str(e)]
    problems: list[str] = []
    if list(sub.columns) != expected:
        missing = [c for c in expected if c not in sub.columns]
        extra = [c for c in sub.columns if c not in expected]
        detail = "; ".join(p for p in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if p)
        problems.append(f"columns are {list(sub.columns)}, expected {expected}" + (f" ({detail})" if detail else " (order differs)"))
    test = read_test(task.model_dump(), columns=[task.id_column] if task.id_column else None)
    # the rows the task asks for: the test file's, or those of them its sample submission lists
    asked = ids_asked_for(task.model_dump(), test[task.id_column]) if task.id_column else None
    some = asked is not None and len(asked) < len(test)
    if len(sub) != (len(asked) if some else len(test)):
        problems.append(f"{len(sub)} rows, expected {len(asked) if some else len(test)} (one per "
                        f"{'id the sample submission lists' if some else 'test row'})")
    if task.id_column and task.id_column in sub.columns:
        # exact strings on both sides: an id written 123 where the task says 000123 is not its id
        ids = sub[task.id_column].astype(str)
        want = set((asked if some else test[task.id_column]).astype(str))
        if ids.duplicated().any():
            problems.append(f"{int(ids.duplicated().sum())} duplicated ids in '{task.id_column}'")
        missing_ids = want - set(ids)
        if missing_ids:
            problems.append(f"{len(missing_ids)} test ids missing, e.g. {sorted(missing_ids)[:3]}")
        unknown = set(ids) - want
        if unknown:
            problems.append(f"{len(unknown)} ids not in the {'sample submission' if some else 'test file'}, "
                            f"e.g. {sorted(unknown)[:3]}")
    value_cols = [c for c in expected if c != task.id_column and c in sub.columns and c not in task.passthrough_columns]
    for c in value_cols:
        n_missing = int(sub[c].isna().sum())
        if n_missing:
            problems.append(f"column '{c}' has {n_missing} missing values")
    if task.submission_format == "columns" and value_cols:
        values = sub[value_cols].apply(pd.to_numeric, errors="coerce")
        bad = [c for c in value_cols if values[c].isna().sum() > sub[c].isna().sum()]
        if bad:
            problems.append(f"columns {bad} hold values that are not numbers")
        elif task.task_type == "multilabel" and ((values < 0) | (values > 1)).any().any():
            problems.append("label probabilities must lie in [0, 1]")
    elif task.submission_format in ("proba", "proba_cols") and value_cols:
        probs = sub[value_cols].apply(pd.to_numeric, errors="coerce")
        if probs.isna().any().any() and not sub[value_cols].isna().any().any():
            problems.append("probability columns hold values that are not numbers")
        elif ((probs < 0) | (probs > 1)).any().any():
            problems.append("probabilities must lie in [0, 1]")
        if task.submission_format == "proba_cols" and len(value_cols) > 1:
            sums = probs.sum(axis=1)
            if not np.allclose(sums, 1.0, atol=1e-3):
                problems.append(f"each row's class probabilities must sum to 1 (they range {sums.min():.3g}..{sums.max():.3g})")
    elif task.task_type != "regression" and value_cols:
        unknown_labels = set(sub[value_cols[0]].astype(str)) - set(task.classes)
        if unknown_labels:
            problems.append(f"labels {sorted(unknown_labels)[:5]} are not among the classes {task.classes}")
    elif task.task_type == "regression" and value_cols:
        values = pd.to_numeric(sub[value_cols[0]], errors="coerce")
        if values.isna().sum() > sub[value_cols[0]].isna().sum():
            problems.append(f"column '{value_cols[0]}' holds values that are not numbers")
    return problems


# -- the anytime submission ----------------------------------------------------------------------
#
# From the first scored attempt on, submission.csv always holds a valid file of the best result
# so far, replaced atomically (write_submission), so a run killed or out of time at any moment
# after its first score leaves a valid submission. submission.json says what the file holds;
# submit's final blend replaces it last.

SUBMISSION_RECORD = "submission.json"
_offer_lock = threading.Lock()  # tracks run in threads of one process


def offer_submission(task: TaskSpec, run_dir: Path, attempt: AttemptResult, events: Events) -> bool:
    """Write the attempt's test predictions as submission.csv when it becomes the best result so
    far (runtime/verdict.py: it stands, and scores better than what the file holds; never after
    the final blend). A failure here costs the attempt nothing: it is a warning."""
    metric = get_metric(task.metric)
    with _offer_lock:
        held = read_submission_record(run_dir)
        if held.get("kind") == "final" or not replaces(metric, attempt, held.get("score")):
            return False
        try:
            write_submission(task, np.load(Path(attempt.dir) / "test.npy"), run_dir / SUBMISSION)
        except Exception as e:  # noqa: BLE001 - the run goes on; the final submit writes the file again
            events.emit("warning", stage="submission", what="the anytime submission was not written",
                        error=f"{type(e).__name__}: {e}"[:300])
            return False
        record_submission(run_dir, events, kind="anytime", source=f"{attempt.track}/attempt_{attempt.attempt}", score=attempt.score)
    return True


def read_submission_record(run_dir: Path) -> dict:
    path = run_dir / SUBMISSION_RECORD
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def record_submission(run_dir: Path, events: Events, *, kind: str, source: str, score: float | None) -> None:
    score = None if score is None or math.isnan(score) else float(score)
    record = {"kind": kind, "source": source, "score": score, "t": round(time.time(), 3)}
    tmp = run_dir / f".{SUBMISSION_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, run_dir / SUBMISSION_RECORD)
    events.emit("submission", path=str(run_dir / SUBMISSION), **{k: v for k, v in record.items() if k != "t"})
