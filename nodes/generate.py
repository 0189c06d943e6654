"""generate: write a track's modules. Offline the track's recipe is rendered as it is."""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import TrackState
from prompts import render_recipe


def generate(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    track = state["plan"].track
    runtime.context.events.emit("generate", track=track, source="recipe")
    return {"code": render_recipe(track), "source": "recipe", "attempt": 1, "fell_back": False, "last_error": None}
