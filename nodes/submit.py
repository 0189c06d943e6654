"""submit: predictions -> submission.csv formatted like sample_submission.csv, validated,
with leaderboard.csv beside it."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import IMLState
from nodes.report import write_report
from nodes.solution import exact_weights, member_attempts, write_solution
from runtime.data import TaskInputError, read_table, read_test
from runtime.metrics import get_metric
from runtime.predict import MANIFEST, MODELS_DIR
from runtime.records import AttemptResult, EnsembleResult, TaskSpec, TrackResult
from runtime.submission import ids_asked_for, submission_frame
from runtime.verdict import replaces

SUBMISSION = "submission.csv"


class InvalidSubmissionError(RuntimeError):
    """The framework produced a file that breaks the task's format: a bug, never user error."""


def submit(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    task, run_dir = state["task"], Path(state["run_dir"])
    path = run_dir / SUBMISSION
    ensemble = state["ensemble"]
    frame = write_submission(task, np.load(ensemble.test_path), path, threshold=ensemble.threshold, power=ensemble.power)
    record_submission(run_dir, runtime.context, kind="final", source=f"ensemble ({ensemble.kind})", score=ensemble.score)
    board = leaderboard(state.get("tracks", {}), state["ensemble"])
    pd.DataFrame(board).to_csv(run_dir / "leaderboard.csv", index=False)
    ctx = runtime.context
    ctx.events.emit("submit", path=str(path), rows=len(frame))
    write_companions({**state, "submission_path": str(path), "leaderboard": board}, run_dir, ctx)
    return {"submission_path": str(path), "leaderboard": board}


# -- the anytime submission ----------------------------------------------------------------------
#
# From the first scored attempt on, submission.csv always holds a valid file of the best result
# so far, replaced atomically (write_submission), so a run killed or out of time at any moment
# after its first score leaves a valid submission. submission.json says what the file holds;
# submit's final blend replaces it last.

SUBMISSION_RECORD = "submission.json"
_offer_lock = threading.Lock()  # tracks run in threads of one process


def offer_submission(task: TaskSpec, run_dir: Path, attempt: AttemptResult, ctx: RunContext) -> bool:
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
            ctx.events.emit("warning", stage="submission", what="the anytime submission was not written",
                            error=f"{type(e).__name__}: {e}"[:300])
            return False
        record_submission(run_dir, ctx, kind="anytime", source=f"{attempt.track}/attempt_{attempt.attempt}", score=attempt.score)
    return True


def read_submission_record(run_dir: Path) -> dict:
    path = run_dir / SUBMISSION_RECORD
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def record_submission(run_dir: Path, ctx: RunContext, *, kind: str, source: str, score: float | None) -> None:
    score = None if score is None or math.isnan(score) else float(score)
    record = {"kind": kind, "source": source, "score": score, "t": round(time.time(), 3)}
    tmp = run_dir / f".{SUBMISSION_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, run_dir / SUBMISSION_RECORD)
    ctx.events.emit("submission", path=str(run_dir / SUBMISSION), **{k: v for k, v in record.items() if k != "t"})


def write_manifest(state: IMLState, run_dir: Path) -> Path:
    """model.json: the blend `iml predict` applies to new rows (members, exact weights, params),
    and the fitted fold models of every attempt that is not a member are deleted: they were kept
    only until the blend was known."""
    ensemble = state["ensemble"]
    tracks = state.get("tracks", {}) or {}
    members = member_attempts(tracks, ensemble) if ensemble.kind != "baseline" else {}
    weights = exact_weights(ensemble.weights, members, ensemble) if members else {}
    manifest = {
        "kind": ensemble.kind,
        "score": None if math.isnan(ensemble.score) else ensemble.score,
        "threshold": ensemble.threshold,
        "power": ensemble.power,
        "members": [{"name": name, "weight": weights[name], "attempt": str(Path(a.dir).relative_to(run_dir)),
                     "params": a.params} for name, a in members.items()],
        "baseline": np.load(ensemble.test_path)[0].tolist() if ensemble.kind == "baseline" else None,
    }
    path = run_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, default=str))
    keep = {Path(a.dir).resolve() for a in members.values()}
    for track in tracks.values():
        for a in track.attempts:
            folder = Path(a.dir) / MODELS_DIR
            if Path(a.dir).resolve() not in keep and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
    return path


def record_llm_budget(run_dir: Path, ctx: RunContext) -> None:
    """llm.json keeps the run's LLM caps and what was spent, beside the model and server."""
    if ctx.llm is None:
        return
    path = run_dir / "llm.json"
    try:
        kept = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        kept = {}
    kept["budget"] = ctx.llm_budget.public()
    path.write_text(json.dumps(kept, indent=2))


def write_companions(state: IMLState, run_dir: Path, ctx: RunContext) -> None:
    """model.json (for iml predict), solution.py and the report. The submission is already written and valid: a failure here
    is logged as an event and in report.md, and never costs the run its submission."""
    record_llm_budget(run_dir, ctx)
    for name, write in (("model", lambda: write_manifest(state, run_dir)),
                        ("solution", lambda: write_solution(state, run_dir)),
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
