"""generate: write a track's modules. Offline the track's recipe is rendered as it is; with an
LLM, the LLM writes them from a grounded prompt (the recipe as its exemplar), and the recipe
stands in when no usable answer comes."""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.llm import LLMError, ModuleCode, client_for, code_from_answer
from graph.state import TrackState
from nodes.track import attempt_time, register_turn
from prompts import render_member, render_recipe
from prompts.render import generate_messages


def generate(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    """The track's first attempt: its plan's lead member when it has one (nodes/blueprint.py:
    lead_member), else its own modules; after a lead, the track's own modules."""
    track, plan = state["plan"].track, state["plan"]
    register_turn(state, runtime.context)
    attempt = state.get("attempt", 0) + 1
    if plan.lead and not state.get("attempts"):
        runtime.context.events.emit("member", track=track, attempt=attempt, source="member", member=plan.lead, lead=True)
        return {"code": render_member(plan.lead), "source": "member", "member": plan.lead, "attempt": attempt,
                "fell_back": False, "last_error": None}
    client = client_for(runtime.context)
    if client is not None:
        return generate_with_llm(state, runtime.context, client)
    runtime.context.events.emit("generate", track=track, source="recipe")
    return {"code": render_recipe(track), "source": "recipe", "member": None, "attempt": attempt, "fell_back": False,
            "last_error": None}


def generate_with_llm(state: TrackState, ctx: RunContext, client) -> dict:
    track = state["plan"].track
    recipe = render_recipe(track)
    start = {"attempt": state.get("attempt", 0) + 1, "member": None, "fell_back": False, "last_error": None}
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
