"""ensemble: weights over the tracks' out-of-fold predictions (runtime/blend.py computes them).

Where a track's kernel is still running after refine (a single-track plan keeps it), the blend
and the report's column association are computed there, in one cell: the kernel has sklearn
loaded, and the framework's process then never imports it (~1 s and ~60 MB). Otherwise, or when
that cell fails, the same functions run here.
"""

from __future__ import annotations

import json
from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import IMLState
from runtime.blend import ENSEMBLE_JSON, blend, read_blend
from runtime.kernel import KernelSession
from runtime.records import DataProfile, EnsembleResult, TaskSpec, TrackResult

FINAL_CELL_TIMEOUT_S = 60.0  # a blend of 25 steps over a few members: well under a second on 50k rows

FINAL_CELL = """\
from runtime.blend import blend_to_file as _iml_blend
from runtime.association import association_to_file as _iml_association
_iml_blend({task!r}, {tracks!r}, {run_dir!r})
try:
    _iml_association({task!r}, {profile!r}, {run_dir!r})
except Exception:
    pass  # the report computes it itself, and says so if it fails there too
del _iml_blend, _iml_association
"""


def ensemble(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    run_dir = Path(state["run_dir"])
    tracks = state.get("tracks", {})
    result, where = None, "framework"
    kernel = ctx.idle_kernel()
    if kernel is not None:
        result, where = blend_in_kernel(kernel, state["task"], tracks, state.get("profile"), run_dir)
    ctx.close()  # no kernel computes after the ensemble: free their memory before submit and the outputs
    if result is None:
        result = blend(state["task"], tracks, run_dir)
    ctx.events.emit("ensemble", kind=result.kind, weights=result.weights, score=result.score, where=where)
    return {"ensemble": result}


def blend_in_kernel(kernel: KernelSession, task: TaskSpec, tracks: dict[str, TrackResult], profile: DataProfile | None,
                    run_dir: Path) -> tuple[EnsembleResult | None, str]:
    """The blend computed by the kernel's FINAL_CELL (None when the cell did not produce one),
    and where it was computed, with why not in the kernel."""
    out = run_dir / ENSEMBLE_JSON
    out.unlink(missing_ok=True)  # never read a file an earlier session left
    code = FINAL_CELL.format(task=task.model_dump_json(),
                             tracks=json.dumps({name: t.model_dump(mode="json") for name, t in tracks.items()}),
                             profile=profile.model_dump_json() if profile is not None else "null", run_dir=str(run_dir))
    done = kernel.execute(code, timeout=FINAL_CELL_TIMEOUT_S)
    if not done.ok or not out.exists():
        why = f"{done.error_name}: {done.error_value}" if done.error_name else done.status
        return None, f"framework (the kernel's cell failed: {why[:200]})"
    try:
        return read_blend(run_dir), "kernel"
    except (OSError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        return None, f"framework (the kernel's {ENSEMBLE_JSON} did not read back: {type(e).__name__}: {str(e)[:200]})"
