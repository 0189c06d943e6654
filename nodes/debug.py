"""debug: repair a failed attempt.

With an LLM, the LLM gets the failing modules, the error with its traceback and the earlier
attempts, and returns repaired modules (source "debug"), up to `max_debug_attempts` repairs.
After that, or when the LLM gives no usable answer, the track falls back to its own recipe
(when the recipe has not failed already), then to the simpler recipe shared by all tracks.
Offline there is no one to repair the code, and the track's code is its recipe, so it falls
back to the shared recipe at once. `fell_back` stops the loop if that fails too.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.llm import LLMError, ModuleCode, client_for
from graph.state import TrackState
from nodes.generate import code_from_answer
from prompts import FALLBACK, render_recipe
from prompts.render import debug_messages


def debug(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    track = state["plan"].track
    llm_update: dict = {}
    client = client_for(runtime.context)
    if client is not None:
        repaired = repair_with_llm(state, runtime.context, client)
        if "code" in repaired:
            return repaired
        llm_update = repaired  # no repair (limit reached, time spent, or no usable answer): fall back
        tried = {a.source for a in state.get("attempts", [])}
        if not tried & {"recipe", "fallback"}:
            # The LLM's code failed, not the recipe: the track's own recipe is the stronger fallback.
            runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="fallback", recipe=track)
            return {"code": render_recipe(track), "source": "fallback", "fell_back": False, "attempt": state["attempt"] + 1,
                    "last_error": None, **llm_update}
    runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="fallback")
    return {"code": render_recipe(FALLBACK), "source": "fallback", "fell_back": True, "attempt": state["attempt"] + 1, "last_error": None,
            **llm_update}


def llm_repairs(state: TrackState) -> int:
    return sum(1 for a in state.get("attempts", []) if a.source == "debug")


def repair_with_llm(state: TrackState, ctx: RunContext, client) -> dict:
    """The next attempt's update with the LLM's repaired modules, or {"llm_usage": ...} (maybe
    empty) when the track should fall back instead."""
    track = state["plan"].track
    if llm_repairs(state) >= ctx.settings.max_debug_attempts:
        ctx.events.emit("debug_llm", track=track, gave_up=f"{ctx.settings.max_debug_attempts} LLM repairs failed")
        return {}
    if ctx.remaining_s() <= 0:
        ctx.events.emit("debug_llm", track=track, gave_up="the time budget is spent")
        return {}
    attempts = state.get("attempts", [])
    last = attempts[-1] if attempts else None
    error = state.get("last_error") or (last.error if last else None) or "unknown error"
    log = Path(last.dir, "log.txt") if last is not None and last.status != "check_failed" else None
    if log is not None and log.exists():
        output = log.read_text(errors="replace").strip()
        if output and output not in error:
            error += "\n\nOutput of the attempt (its end):\n" + output[-2000:]
    try:
        answer = client.ask(ModuleCode, debug_messages(state["task"], state["profile"], state["plan"], state["code"], error,
                                                       attempts, attempt=state["attempt"], status=last.status if last else "failed"),
                            role="debug", node="debug", track=track, events=ctx.events)
    except LLMError as e:
        ctx.events.emit("debug_llm", track=track, gave_up=f"LLM: {str(e)[:200]}")
        return {"llm_usage": e.calls}
    code, notes = code_from_answer(answer.value, state["code"])
    ctx.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="debug", notes=notes[:300])
    return {"code": code, "source": "debug", "fell_back": False, "attempt": state["attempt"] + 1, "last_error": None,
            "llm_usage": answer.calls}
