"""generate: write a track's modules. Offline the track's recipe is rendered as it is; with an
LLM, the LLM writes them from a grounded prompt (the recipe as its exemplar), and the recipe
stands in when no usable answer comes."""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.llm import LLMError, ModuleCode, client_for, code_from_answer
from graph.state import TrackState
from nodes.track import attempt_time, register_turn
from prompts import render_recipe
from prompts.render import generate_messages


def generate(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    track = state["plan"].track
    register_turn(state, runtime.context)
    client = client_for(runtime.context)
    if client is not None:
        return generate_with_llm(state, runtime.context, client)
    runtime.context.events.emit("generate", track=track, source="recipe")
    return {"code": render_recipe(track), "source": "recipe", "attempt": 1, "fell_back": False, "last_error": None}


def generate_with_llm(state: TrackState, ctx: RunContext, client) -> dict:
    track = state["plan"].track
    recipe = render_recipe(track)
    start = {"attempt": 1, "fell_back": False, "last_error": None}
    try:
        answer = client.ask(ModuleCode, generate_messages(state["task"], state["profile"], state["plan"], state.get("attempts", []),
                                                          time=attempt_time(state, ctx)),
                            role="generate", node="generate", track=track, events=ctx.events)
    except LLMError as e:
        ctx.events.emit("generate", track=track, source="recipe", why=f"LLM: {str(e)[:200]}")
        return {"code": recipe, "source": "recipe", "llm_usage": e.calls, **start}
    code, notes = code_from_answer(answer.value, recipe)
    ctx.events.emit("generate", track=track, source="llm", notes=notes[:300])
    return {"code": code, "source": "llm", "llm_usage": answer.calls, **start}
