"""Typed state of an iML run: the graph's states, the subgraphs' too, and their reducers.

Everything here is serialisable (pydantic models, paths as strings, numbers), because the
checkpointer stores it. The records the states hold (TaskSpec, DataProfile, Blueprint, results)
live in runtime/records.py; kernels, clients and locks live in `graph.context.RunContext`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from runtime.records import (
    AttemptResult,
    AttemptSource,
    Blueprint,
    DataProfile,
    EnsembleResult,
    LLMCall,
    TaskSpec,
    TrackPlan,
    TrackResult,
)

# -- refine's search (nodes/refine.py): checkpointed with the run's state -----------------------


class Candidate(BaseModel):
    """One thing to try: the chain's best modules with `params`, or `code` when a module was
    rewritten. `cost` is its expected duration relative to the chain's best."""

    params: dict[str, Any]
    note: str
    code: dict[str, str] | None = None
    cost: float = 1.0
    kind: Literal["move", "tpe", "reseed", "llm", "given", "bag"] = "given"
    move: str | None = None  # the parameter a move changes
    base: int | None = None  # a bag: the attempt it bags, whose modules it runs (runtime/budget.py's bags)
    step: int = 0
    trial: int | None = None  # the study's trial number (TPE)
    attempt: int = 0
    timeout_s: float = 0.0


class Chain(BaseModel):
    """The search from one base attempt: where it stands and what it has left. Small on purpose:
    every step of refine checkpoints it, so what grows with the candidates (their results, what
    was tried) lives in the run folder (attempt.json, the study), not here."""

    base: int
    member: str | None = None
    current: int  # the attempt the chain stands on (its best so far)
    params: dict[str, Any]
    code_dir: str  # the attempt folder whose modules are the chain's code (a kept rewrite moves it)
    pending: list[tuple[str, int]] = Field(default_factory=list)  # declared steps still to try: (param, step)
    reseed: bool = True
    reseeds: int = 0
    turn: int = 0
    tried: int = 0
    kept: int = 0
    llm_asked: int = 0
    llm_given_up: bool = False
    study: str = ""
    stopped: str | None = None  # why the chain ended: "time", "candidates", "nothing left to try"


def merge_tracks(left: dict[str, TrackResult], right: dict[str, TrackResult]) -> dict[str, TrackResult]:
    """Parallel track branches each write their own key; a later write for a track wins."""
    return {**(left or {}), **(right or {})}


class IMLState(TypedDict, total=False):
    task_dir: str
    run_dir: str
    task: TaskSpec
    profile: DataProfile
    blueprint: Blueprint
    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    ensemble: EnsembleResult
    submission_path: str
    leaderboard: list[dict[str, Any]]
    llm_usage: Annotated[list[LLMCall], operator.add]  # every LLM request of the run, in order


class TrackState(TypedDict, total=False):
    """State of one track's subgraph (generate -> check -> execute -> debug)."""

    run_dir: str
    task: TaskSpec
    profile: DataProfile
    blueprint: Blueprint
    plan: TrackPlan
    code: dict[str, str]  # module name ("features", "model") -> source
    source: AttemptSource
    attempt: int
    last_error: str | None
    fell_back: bool
    # the offline debug's repairs, merged into the plan's params: drop_columns, coerce_columns,
    # and a too slow attempt's cheaper params
    repairs: dict[str, Any]
    # what a too slow attempt's retry needs at the speed measured: its timeout is at least this
    # while the track has no score (a retry that ends beats one more that cannot)
    needs_s: float | None
    member: str | None  # the member recipe the current attempt runs (None: the track's own code)
    attempts: Annotated[list[AttemptResult], operator.add]
    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    llm_usage: Annotated[list[LLMCall], operator.add]


class TrackOutput(TypedDict):
    """A track hands only its result back, so parallel tracks never write the same key."""

    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    llm_usage: Annotated[list[LLMCall], operator.add]  # the track's own LLM calls, added to the run's


# -- refine's subgraph (nodes/refine.py) --------------------------------------------------------


class RefineInput(TypedDict, total=False):
    run_dir: str
    tracks: dict[str, TrackResult]  # read by start, then emptied: the parent merges refine's result into its own
    refine_bases: list[int]  # the attempts to search from, in order (default: refine_bases())
    refine_given: list[Candidate]  # candidates to try first on the first chain (an outside proposer's)


class RefineOutput(TypedDict):
    tracks: dict[str, TrackResult]
    llm_usage: Annotated[list[LLMCall], operator.add]


class RefineState(RefineInput, total=False):
    """Small on purpose: each step checkpoints all of it. Task, profile and blueprint are read
    from the run folder; attempts from their attempt.json; what was tried from the study."""

    track: str
    own: list[int]  # the track's attempts before refine
    bases: list[int]
    first_candidate: int
    next_attempt: int
    chain: Chain | None
    champion: int  # the track's best after refine
    candidate: Candidate | None
    result: AttemptResult | None  # the candidate's outcome, for judge
    tried: int
    kept: int
    stopped: str
    # a long budget's bags, after the search: the families bagged (or passed over), how many ran, how many were kept
    bagged: list[str]
    bags_done: bool
    bags: int
    bags_kept: int
    llm_usage: Annotated[list[LLMCall], operator.add]
