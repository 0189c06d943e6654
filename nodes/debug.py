"""debug: repair a failed attempt.

Offline there is no one to repair the code, so the track falls back to the simpler recipe
shared by all tracks; `fell_back` stops the loop if that fails too.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import TrackState
from prompts import FALLBACK, render_recipe


def debug(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    track = state["plan"].track
    runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="fallback")
    return {"code": render_recipe(FALLBACK), "source": "fallback", "fell_back": True, "attempt": state["attempt"] + 1, "last_error": None}
