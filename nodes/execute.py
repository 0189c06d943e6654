"""execute: cross-validate the checked modules in the track's kernel.

The harness computes the score and writes result.json; this node reads that file, never
the cell's output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import TrackState
from nodes.track import (
    attempt_dir,
    attempt_params,
    attempt_timeout,
    run_in_kernel,
    take_turn,
)
from runtime.budget import harness_deadline_s
from runtime.records import AttemptResult
from runtime.submission_file import offer_submission

EXECUTION = "execution.json"  # what an execution ran: params and the modules' hash (see finished_on_disk)


def execute(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    take_turn(state, ctx)  # at once after the check; a resumed run can start here
    folder = attempt_dir(state)
    params = attempt_params(state)
    timeout = attempt_timeout(state, ctx)
    fingerprint = execution_fingerprint(folder, params)
    finished = finished_on_disk(folder, fingerprint)
    if finished is not None:  # a resumed run: this very execution ended before the process died
        result = AttemptResult(track=state["plan"].track, attempt=state["attempt"], source=state["source"], params=params,
                               dir=str(folder), member=state.get("member"), **finished)
        ctx.events.emit("attempt", track=result.track, attempt=result.attempt, status=result.status, score=result.score,
                        error=(result.error or "")[:300], duration_s=result.duration_s, reused=True)
        return {"last_error": result.error, "attempts": [result]}
    (folder / EXECUTION).write_text(json.dumps({"sha256": fingerprint, "params": params}, indent=2, default=str))
    ctx.events.emit("cross_validate", track=state["plan"].track, attempt=state["attempt"], source=state["source"],
                    timeout_s=round(timeout, 1))
    prune, continues = state.get("prune"), state.get("continues")
    code = (f"H.run_attempt({str(folder)!r}, json.loads({json.dumps(params)!r}), deadline_s={harness_deadline_s(timeout):.1f}"
            + (f", prune=json.loads({json.dumps(prune)!r})" if prune else "")
            + (f", continues={continues!r}" if continues else "") + ")")
    outcome = run_in_kernel(state, ctx, code, timeout=timeout)
    (folder / "log.txt").write_text(outcome.output + ("\n" + outcome.error if outcome.error else "") + "\n")
    base = dict(track=state["plan"].track, attempt=state["attempt"], source=state["source"], params=params, dir=str(folder),
                duration_s=outcome.duration_s, peak_memory_mb=outcome.peak_memory_mb, member=state.get("member"))
    if outcome.error is None:
        scored = json.loads((folder / "result.json").read_text())
        result = AttemptResult(status=scored["status"], score=scored.get("score"), fold_scores=scored["fold_scores"],
                               resolved_params=scored.get("resolved_params") or {}, error=scored.get("error"),
                               fit_seconds=scored.get("fit_seconds"),
                               refit_s=float((scored.get("full_fit") or {}).get("seconds") or 0.0), **base)
    else:
        result = AttemptResult(status=outcome.status, error=outcome.error, **base)
        (folder / "result.json").write_text(result.model_dump_json(indent=2))
    ctx.events.emit("attempt", track=result.track, attempt=result.attempt, status=result.status, score=result.score,
                    error=(result.error or "")[:300], duration_s=result.duration_s)
    offer_submission(state["task"], Path(state["run_dir"]), result, ctx.events)
    return {"last_error": result.error, "attempts": [result]}


def execution_fingerprint(folder: Path, params: dict) -> str:
    """What an execution runs: the params and the modules' source."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for module in ("features.py", "model.py"):
        path = folder / module
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def finished_on_disk(folder: Path, fingerprint: str) -> dict | None:
    """The outcome of an execution of exactly this code and these params that finished before
    a crash (a resumed run, or refine starting over), when the folder holds one.

    execution.json names what was started; result.json is written last (after oof.npy and
    test.npy), so a result newer than a matching execution.json is that execution's outcome.
    """
    path, started = folder / "result.json", folder / EXECUTION
    if not path.exists() or not started.exists():
        return None
    try:
        if json.loads(started.read_text()).get("sha256") != fingerprint:
            return None
    except (OSError, json.JSONDecodeError):
        return None
    if path.stat().st_mtime < started.stat().st_mtime:
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    status = raw.get("status")
    if status == "ok" and raw.get("score") is not None and (folder / "oof.npy").exists() and (folder / "test.npy").exists():
        return {"status": "ok", "score": raw["score"], "fold_scores": raw.get("fold_scores", []),
                "duration_s": raw.get("duration_s", 0.0), "resolved_params": raw.get("resolved_params") or {}}
    if status == "pruned":
        return {"status": status, "error": raw.get("error"), "fold_scores": raw.get("fold_scores", []),
                "duration_s": raw.get("duration_s", 0.0)}
    if status in ("error", "timeout", "died", "out_of_memory"):
        return {"status": status, "error": raw.get("error"), "duration_s": raw.get("duration_s", 0.0),
                "peak_memory_mb": raw.get("peak_memory_mb")}
    return None
