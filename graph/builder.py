"""The iML graph: nodes and edges, nothing else.

    START -> analyze -> profile -> blueprint -> track (one per plan, via Send) -> refine -> ensemble -> submit -> END
    track: generate -> check -> execute -> finish, with debug looping back to check on failure
    refine: start -> propose -> check (changed code) -> execute -> judge -> propose ... -> finish
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from graph.context import ContextGraph, RunContext, Settings
from graph.routing import fan_out_tracks
from graph.state import IMLState, TrackOutput, TrackState
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.check import check
from nodes.debug import debug
from nodes.ensemble import ensemble
from nodes.execute import execute
from nodes.generate import generate
from nodes.profile import profile
from nodes.refine import build_refine_graph
from nodes.submit import submit
from nodes.track import (
    after_check,
    after_execute,
    ends_turn_on_error,
    finish,
    next_member,
)


def build_track_graph() -> StateGraph:
    g = ContextGraph(TrackState, context_schema=RunContext, output_schema=TrackOutput)
    for name, node in (("generate", generate), ("check", check), ("execute", execute), ("debug", debug),
                       ("next_member", next_member), ("finish", finish)):
        g.add_node(name, ends_turn_on_error(node))
    g.add_edge(START, "generate")
    g.add_edge("generate", "check")
    g.add_conditional_edges("check", after_check)
    g.add_conditional_edges("execute", after_execute)
    g.add_edge("debug", "check")
    g.add_edge("next_member", "check")
    g.add_edge("finish", END)
    return g


def build_graph() -> StateGraph:
    g = ContextGraph(IMLState, context_schema=RunContext)
    g.add_node("analyze", analyze)
    g.add_node("profile", profile)
    g.add_node("blueprint", blueprint)
    g.add_node("track", build_track_graph().compile())
    g.add_node("refine", build_refine_graph().compile())
    g.add_node("ensemble", ensemble)
    g.add_node("submit", submit)
    g.add_edge(START, "analyze")
    g.add_edge("analyze", "profile")
    g.add_edge("profile", "blueprint")
    g.add_conditional_edges("blueprint", fan_out_tracks, ["track", "ensemble"])
    g.add_edge("track", "refine")
    g.add_edge("refine", "ensemble")
    g.add_edge("ensemble", "submit")
    g.add_edge("submit", END)
    return g


# What `langgraph dev` serves (langgraph.json): compiled without a checkpointer, as the API
# server brings its own.
graph = build_graph().compile()
# The server builds the context from the run's `context` field through this schema: Studio shows
# Settings as a form, and the nodes make their RunContext from it (graph.context.ContextGraph).
graph.context_schema = Settings
