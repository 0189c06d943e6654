"""The graph as Studio and the checkpointer see it: every loop is a subgraph whose steps are nodes."""

from __future__ import annotations

from graph.builder import build_graph


def test_refine_and_the_tracks_show_their_inner_steps():
    nodes = set(build_graph().compile().get_graph(xray=True).nodes)
    assert {"refine:start", "refine:propose", "refine:check", "refine:execute", "refine:judge", "refine:finish"} <= nodes
    assert {"track:generate", "track:check", "track:execute", "track:debug", "track:finish"} <= nodes
    assert {"analyze", "profile", "blueprint", "ensemble", "submit"} <= nodes


def test_refine_loops_from_judge_back_to_propose():
    graph = build_graph().compile().get_graph(xray=True)
    edges = {(e.source, e.target) for e in graph.edges}
    assert ("refine:judge", "refine:propose") in edges
    assert ("refine:propose", "refine:execute") in edges and ("refine:propose", "refine:check") in edges
    assert ("refine:check", "refine:judge") in edges  # a rewrite that fails its check is judged, not executed
