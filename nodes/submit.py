"""submit: the final blend's predictions -> submission.csv (formatted like sample_submission.csv,
validated: runtime/submission_file.py), leaderboard.csv, model.json, solution.py and the report."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import IMLState
from prompts.imports import library_modules
from runtime.blend import exact_weights, member_attempts
from runtime.predict import MANIFEST
from runtime.records import EnsembleResult, TrackResult
from runtime.report import write_report
from runtime.saved_models import MODELS_DIR
from runtime.solution import write_solution
from runtime.submission_file import SUBMISSION, record_submission, write_submission
from runtime.verdict import JUDGED_SOURCES


def submit(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    task, run_dir = state["task"], Path(state["run_dir"])
    path = run_dir / SUBMISSION
    ensemble = state["ensemble"]
    frame = write_submission(task, np.load(ensemble.test_path), path, threshold=ensemble.threshold, power=ensemble.power)
    record_submission(run_dir, runtime.context.events, kind="final", source=f"ensemble ({ensemble.kind})", score=ensemble.score)
    board = leaderboard(state.get("tracks", {}), state["ensemble"])
    pd.DataFrame(board).to_csv(run_dir / "leaderboard.csv", index=False)
    ctx = runtime.context
    ctx.events.emit("submit", path=str(path), rows=len(frame))
    write_companions({**state, "submission_path": str(path), "leaderboard": board}, run_dir, ctx)
    return {"submission_path": str(path), "leaderboard": board}


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
        "stacker": ensemble.stacker,
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
                        ("solution", lambda: write_solution(state, run_dir, library_modules)),
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








def leaderboard(tracks: dict[str, TrackResult], ensemble: EnsembleResult) -> list[dict]:
    """Every attempt, then what the ensemble weighed (the blend, the stacker) and what it chose.
    `kept`: for refine's candidates and the bags, whether they beat what they came from beyond fold
    noise (runtime/verdict.py); for the ensemble's candidates, whether they were used."""
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
                "kept": a.kept if a.source in JUDGED_SOURCES else None,
            })
    for c in ensemble.candidates:
        rows.append({"entry": f"ensemble candidate: {c['entry']}", "source": "ensemble", "status": "ok", "score": c["score"],
                     "fold_std": None, "seconds": None, "best_of_track": False, "kept": c["kept"]})
    rows.append({
        "entry": f"ensemble ({ensemble.kind})",
        "source": ", ".join(f"{k}={v:g}" for k, v in ensemble.weights.items()) or ensemble.reason,
        "status": "ok",
        "score": None if math.isnan(ensemble.score) else ensemble.score,
        "fold_std": None,
        "seconds": None,
        "best_of_track": False,
        "kept": None,
    })
    return rows
