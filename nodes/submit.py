"""submit: predictions -> submission.csv formatted like sample_submission.csv, validated,
with leaderboard.csv beside it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import EnsembleResult, IMLState, TaskSpec, TrackResult
from nodes.report import write_report
from nodes.solution import write_solution
from runtime.data import TaskInputError, label_key, read_table


class InvalidSubmissionError(RuntimeError):
    """The framework produced a file that breaks the task's format: a bug, never user error."""


def submit(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    task, run_dir = state["task"], Path(state["run_dir"])
    frame = format_submission(task, np.load(state["ensemble"].test_path))
    path = run_dir / "submission.csv"
    frame.to_csv(path, index=False)
    problems = validate_submission(task, path)
    if problems:
        raise InvalidSubmissionError("submission.csv breaks the task's format: " + "; ".join(problems))
    board = leaderboard(state.get("tracks", {}), state["ensemble"])
    pd.DataFrame(board).to_csv(run_dir / "leaderboard.csv", index=False)
    ctx = runtime.context
    ctx.events.emit("submit", path=str(path), rows=len(frame))
    write_companions({**state, "submission_path": str(path), "leaderboard": board}, run_dir, ctx)
    return {"submission_path": str(path), "leaderboard": board}


def write_companions(state: IMLState, run_dir: Path, ctx: RunContext) -> None:
    """solution.py and the report. The submission is already written and valid: a failure here
    is logged as an event and in report.md, and never costs the run its submission."""
    for name, write in (("solution", lambda: write_solution(state, run_dir)),
                        ("report", lambda: write_report(state, run_dir, used_s=ctx.elapsed_s()))):
        try:
            written = write()
        except Exception as e:  # noqa: BLE001 - reported, never raised past a valid submission
            message = f"{type(e).__name__}: {e}"
            ctx.events.emit("warning", stage="submit", what=f"{name} not written", error=message[:500])
            with (run_dir / "report.md").open("a") as f:
                f.write(f"\n\n> {name} could not be written: {message}\n")
        else:
            paths = written if isinstance(written, tuple) else (written,)
            ctx.events.emit(name, paths=[str(p) for p in paths])


def format_submission(task: TaskSpec, test_pred: np.ndarray) -> pd.DataFrame:
    task_dir = Path(task.task_dir)
    test = read_table(task_dir / task.test_file, "test file")
    ids = test[task.id_column].to_numpy() if task.id_column else np.arange(len(test))
    value_cols = [c for c in task.submission_columns if c != task.id_column]
    if task.task_type == "regression":
        values = {value_cols[0]: test_pred}
    elif task.submission_format == "proba_cols":
        probs = test_pred if test_pred.ndim == 2 else np.column_stack([1 - test_pred, test_pred])
        values = {label: probs[:, i] for i, label in enumerate(task.classes)}
    elif task.submission_format == "proba":
        values = {value_cols[0]: test_pred if test_pred.ndim == 1 else test_pred[:, 1]}
    else:
        codes = test_pred.argmax(axis=1) if test_pred.ndim == 2 else (test_pred >= 0.5).astype(int)
        labels = np.array(task.classes, dtype=object)[codes]
        values = {value_cols[0]: _restore_label_type(labels, task)}
    frame = pd.DataFrame({**({task.id_column: ids} if task.id_column else {}), **values})
    if task.sample_submission_file and task.id_column:
        sample = read_table(task_dir / task.sample_submission_file, "sample submission")
        order = sample[task.id_column]
        if set(order) == set(frame[task.id_column]) and len(order) == len(frame):
            frame = frame.set_index(task.id_column).loc[order.to_numpy()].reset_index()
    return frame[task.submission_columns]


def _restore_label_type(labels: np.ndarray, task: TaskSpec) -> np.ndarray:
    """Labels go out with the train file's type: 1 stays 1, not '1' or 1.0."""
    train_y = pd.read_csv(Path(task.task_dir) / task.train_file, usecols=[task.target])[task.target].dropna()
    by_key = {label_key(v): v for v in train_y.drop_duplicates()}
    return np.array([by_key.get(label, label) for label in labels], dtype=object)


def validate_submission(task: TaskSpec, path: str | Path) -> list[str]:
    """Every way the file breaks the task's format, one line each; empty when valid."""
    try:
        sub = read_table(path, "submission")
    except TaskInputError as e:
        return [str(e)]
    problems: list[str] = []
    expected = task.submission_columns
    if list(sub.columns) != expected:
        missing = [c for c in expected if c not in sub.columns]
        extra = [c for c in sub.columns if c not in expected]
        detail = "; ".join(p for p in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if p)
        problems.append(f"columns are {list(sub.columns)}, expected {expected}" + (f" ({detail})" if detail else " (order differs)"))
    test = read_table(Path(task.task_dir) / task.test_file, "test file")
    if len(sub) != len(test):
        problems.append(f"{len(sub)} rows, expected {len(test)} (one per test row)")
    if task.id_column and task.id_column in sub.columns:
        ids, want = sub[task.id_column].map(label_key), set(test[task.id_column].map(label_key))
        if ids.duplicated().any():
            problems.append(f"{int(ids.duplicated().sum())} duplicated ids in '{task.id_column}'")
        missing_ids = want - set(ids)
        if missing_ids:
            problems.append(f"{len(missing_ids)} test ids missing, e.g. {sorted(missing_ids)[:3]}")
        unknown = set(ids) - want
        if unknown:
            problems.append(f"{len(unknown)} ids not in the test file, e.g. {sorted(unknown)[:3]}")
    value_cols = [c for c in expected if c != task.id_column and c in sub.columns]
    for c in value_cols:
        n_missing = int(sub[c].isna().sum())
        if n_missing:
            problems.append(f"column '{c}' has {n_missing} missing values")
    if task.submission_format in ("proba", "proba_cols") and value_cols:
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
        unknown_labels = set(sub[value_cols[0]].dropna().map(label_key)) - set(task.classes)
        if unknown_labels:
            problems.append(f"labels {sorted(unknown_labels)[:5]} are not among the classes {task.classes}")
    elif task.task_type == "regression" and value_cols:
        values = pd.to_numeric(sub[value_cols[0]], errors="coerce")
        if values.isna().sum() > sub[value_cols[0]].isna().sum():
            problems.append(f"column '{value_cols[0]}' holds values that are not numbers")
    return problems


def leaderboard(tracks: dict[str, TrackResult], ensemble: EnsembleResult) -> list[dict]:
    rows = []
    for name, track in tracks.items():
        for a in track.attempts:
            folds = [s for s in a.fold_scores if not math.isnan(s)]
            rows.append({
                "entry": f"{name}/attempt_{a.attempt}",
                "source": a.source,
                "status": a.status,
                "score": a.score,
                "fold_std": float(np.std(folds)) if folds else None,
                "seconds": round(a.duration_s, 1),
                "best_of_track": a.attempt == track.best_attempt,
            })
    rows.append({
        "entry": f"ensemble ({ensemble.kind})",
        "source": ", ".join(f"{k}={v:g}" for k, v in ensemble.weights.items()) or ensemble.reason,
        "status": "ok",
        "score": None if math.isnan(ensemble.score) else ensemble.score,
        "fold_std": None,
        "seconds": None,
        "best_of_track": False,
    })
    return rows
