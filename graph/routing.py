"""Routers of the top-level graph. Typed with Literal so Studio and draw_mermaid() show the
real edges."""

from __future__ import annotations

from typing import Literal

from langgraph.types import Send

from graph.state import IMLState


def fan_out_tracks(state: IMLState) -> list[Send] | Literal["ensemble"]:
    """One Send per planned track; each runs its own subgraph with only what it needs."""
    plans = state["blueprint"].tracks
    if not plans:
        return "ensemble"
    shared = {k: state[k] for k in ("run_dir", "task", "profile", "blueprint")}
    return [Send("track", {**shared, "plan": plan}) for plan in plans]
