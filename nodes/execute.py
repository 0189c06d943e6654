"""execute: cross-validate the checked modules in the track's kernel.

The harness computes the score and writes result.json; this node reads that file, never
the cell's output.
"""

from __future__ import annotations

import json

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import AttemptResult, TrackState
from nodes.track import attempt_dir, attempt_params, attempt_timeout, run_in_kernel


def execute(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    folder = attempt_dir(state)
    params = attempt_params(state)
    timeout = attempt_timeout(state, ctx)
    code = f"H.run_attempt({str(folder)!r}, json.loads({json.dumps(params)!r}), deadline_s={timeout * 0.9:.1f})"
    outcome = run_in_kernel(state, ctx, code, timeout=timeout)
    (folder / "log.txt").write_text(outcome.output + ("\n" + outcome.error if outcome.error else "") + "\n")
    base = dict(track=state["plan"].track, attempt=state["attempt"], source=state["source"], params=params, dir=str(folder),
                duration_s=outcome.duration_s, peak_memory_mb=outcome.peak_memory_mb)
    if outcome.error is None:
        scored = json.loads((folder / "result.json").read_text())
        result = AttemptResult(status="ok", score=scored["score"], fold_scores=scored["fold_scores"], **base)
    else:
        result = AttemptResult(status=outcome.status, error=outcome.error, **base)
        (folder / "result.json").write_text(result.model_dump_json(indent=2))
    ctx.events.emit("attempt", track=result.track, attempt=result.attempt, status=result.status, score=result.score,
                    error=(result.error or "")[:300], duration_s=result.duration_s)
    return {"last_error": result.error, "attempts": [result]}
