"""The track subgraph's shared pieces: where an attempt lives, how it runs in the track's
kernel, the routers, and `finish`, which hands the track's best attempt to the parent graph."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from langgraph.runtime import Runtime

from graph.context import RunContext, kernel_threads
from graph.state import TrackState
from runtime import budget
from runtime.kernel import KernelStartError
from runtime.metrics import get_metric
from runtime.params import SPACES
from runtime.records import AttemptResult, TrackResult
from runtime.verdict import best_standing

ATTEMPT_RECORD = "attempt.json"  # an attempt as the framework recorded it (refine reads its chains' attempts back)


def record_attempt(result: AttemptResult) -> None:
    Path(result.dir, ATTEMPT_RECORD).write_text(result.model_dump_json(indent=2))


def load_attempt(run_dir: str, track: str, number: int) -> AttemptResult | None:
    path = Path(run_dir) / "tracks" / track / f"attempt_{number}" / ATTEMPT_RECORD
    try:
        return AttemptResult.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def attempt_dir(state: TrackState) -> Path:
    folder = Path(state["run_dir"]) / "tracks" / state["plan"].track / f"attempt_{state['attempt']}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def attempt_params(state: TrackState) -> dict:
    """The plan's params, with the offline debug's repairs (drop_columns, coerce_columns) on top;
    a member's own params (and the repairs) when the attempt runs a member recipe."""
    member, plan = state.get("member"), state["plan"]
    if not member:
        base = plan.params
    elif member in plan.members:
        base = plan.members[member]
    else:  # a member tried because time was left: its recipe's defaults, with the run's seed
        base = {"seed": plan.params["seed"]} if "seed" in SPACES[member] and "seed" in plan.params else {}
    return {**base, **(state.get("repairs") or {})}


def members_left(state: TrackState, run_left_s: float = float("inf")) -> list[str]:
    """The plan's members not tried yet; then those it had no room for, each while the track's
    share and the run (`run_left_s`, its final reserve kept) still have the seconds it needs:
    the track's own attempts ran faster than estimated."""
    plan = state["plan"]
    attempts = state.get("attempts", [])
    tried = {a.member for a in attempts if a.source == "member"}
    planned = [m for m in plan.members if m not in tried]
    if planned:
        return planned if budget.member_may_start(run_left_s) else []  # the run's clock: past it, no member starts
    share_left = budget.share_left_s(plan, state["blueprint"], attempts)
    return [m for m, need in plan.members_if_time.items()
            if m not in tried and m not in plan.members and budget.member_may_start(run_left_s, need, share_left)]


def run_left_s(state: TrackState, ctx: RunContext) -> float:
    """Seconds the run has left before its final reserve (ensemble, submit, outputs)."""
    return budget.run_left_s(ctx.remaining_s(), state["blueprint"], state["profile"], ctx.settings)


def next_member(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    """The next member recipe of the track's zoo, as the next attempt."""
    from prompts import render_member

    # the clock moved since the router's look: never fail here for lack of a fitting one
    name = (members_left(state, run_left_s(state, runtime.context)) or members_left(state))[0]
    runtime.context.events.emit("member", track=state["plan"].track, attempt=state["attempt"] + 1, source="member", member=name)
    return {"code": render_member(name), "source": "member", "member": name, "attempt": state["attempt"] + 1,
            "last_error": None}


def register_turn(state: TrackState, ctx: RunContext) -> None:
    """The track will compute in this session: the tracks behind it in the plan wait for it."""
    turn = _turn_of(state)
    if turn is not None:
        ctx.turns.register(*turn)


def take_turn(state: TrackState, ctx: RunContext) -> None:
    """Before the track's first cell (graph.turns): wait, holding no kernel, while the tracks ahead
    of it compute, at most until they have had their planned seconds. At once after that."""
    turn = _turn_of(state)
    if turn is None:
        return
    track, place, planned_s = turn
    ahead = ctx.turns.waits_for(track)
    if ahead:  # the live progress shows the track waiting, not checking
        ctx.events.emit("turn", track=track, waits_for=ahead)
    waited = ctx.turns.start(track, place, planned_s)
    if ahead or waited >= 1.0:
        ctx.events.emit("turn", track=track, waited_s=round(waited, 1))


def _turn_of(state: TrackState) -> tuple[str, int, float] | None:
    """The track's name, place in the plan and planned seconds; None for a track the plan does
    not hold (nodes run on their own, as tests do), which neither waits nor is waited for."""
    plan, blueprint = state["plan"], state["blueprint"]
    names = [p.track for p in blueprint.tracks]
    if plan.track not in names:
        return None
    return plan.track, names.index(plan.track), budget.share_s(plan, blueprint)


def ends_turn_on_error(node):
    """A track node that raises ends the track's turn, so the tracks behind it do not wait for it."""
    @functools.wraps(node)
    def run(state, runtime):
        try:
            return node(state, runtime)
        except BaseException:
            runtime.context.turns.finish(state["plan"].track)
            raise

    return run


def write_modules(folder: Path, code: dict[str, str]) -> None:
    for module, source in code.items():
        (folder / f"{module}.py").write_text(source)


def attempt_time(state: TrackState, ctx: RunContext) -> budget.AttemptTime:
    """The attempt's seconds and what they mean for a fold (runtime/budget.py): what the prompts
    say of time, and what the check's prediction is held against."""
    return budget.attempt_time(ctx.settings, ctx.remaining_s(), state["task"], state["profile"], state["blueprint"],
                               state["plan"], state.get("attempts", []), cores=kernel_threads(ctx.settings),
                               gpu=ctx.gpu_available(state["run_dir"]), slots=ctx.slots.n, member=state.get("member"),
                               needs_s=state.get("needs_s"))


def attempt_timeout(state: TrackState, ctx: RunContext, check: bool = False) -> float:
    """The seconds the attempt's cell (its check with `check`) may run: runtime/budget.py's rule,
    on what the track's state and the run's clock say."""
    return budget.attempt_timeout_s(ctx.settings, ctx.remaining_s(), state["task"], state["profile"], state["blueprint"],
                                    state["plan"], state.get("attempts", []), member=state.get("member"),
                                    needs_s=state.get("needs_s"), check=check)


@dataclass
class KernelOutcome:
    status: Literal["ok", "error", "timeout", "died", "out_of_memory"]
    error: str | None
    output: str
    duration_s: float
    peak_memory_mb: float | None


def run_in_kernel(state: TrackState, ctx: RunContext, code: str, timeout: float) -> KernelOutcome:
    """Run one cell in the track's kernel, taking an execution slot while it computes.

    The kernel is started inside the slot: tracks waiting their turn hold no kernel, so no more
    kernels load the data (and torch) at once than may compute at once.
    """
    data = state["blueprint"].data
    with ctx.slots.hold():
        try:
            kernel = ctx.kernel(state["plan"].track, state["run_dir"])
        except KernelStartError as e:
            return KernelOutcome("error", f"the track's kernel did not start: {e}", "", 0.0, None)
        if data is not None and data.memory_limit_mb:  # the plan's: past it the kernel is stopped, not the machine
            kernel.memory_limit_mb = min(filter(None, [data.memory_limit_mb, ctx.settings.kernel_memory_mb]))
        result = kernel.execute("import json\n" + code, timeout=timeout)
    error = None
    if result.status == "error":
        error = f"{result.error_name}: {result.error_value}"
        if result.traceback:
            error += "\n" + result.traceback
    elif result.status == "timeout":
        limit = ("a member's limit: a few times its estimate, its check at most "
                 f"{budget.member_check_deadline_s(state['blueprint']):.0f} s, never past the run's final reserve") if state.get("member") \
            else "the track's share of the time budget"
        error = f"timed out after {timeout:.0f} s ({limit})"
    elif result.status == "died":
        error = "the kernel died (a crash in native code, or the process exited); it was restarted"
        if "SIGKILL" in (result.error_value or "") and result.peak_memory_mb:
            # the system's out-of-memory killer sends SIGKILL: say what the kernel held when it died
            error = out_of_memory_error(f"the kernel was killed (SIGKILL) holding {result.peak_memory_mb:,.0f} MB at its "
                                        "peak: the system may have run out of memory", state)
    elif result.status == "out_of_memory":
        error = out_of_memory_error(result.error_value, state)
    return KernelOutcome(result.status, error, result.output, result.duration_s, result.peak_memory_mb)


def out_of_memory_error(what: str | None, state: TrackState) -> str:
    """A kernel stopped for its memory, said as that, with what the plan expected and what to change."""
    data = state["blueprint"].data
    said = f"out of memory: {what or 'the kernel ran out of its memory limit'} (the kernel was restarted)"
    if data is not None:
        expected = f"~{data.memory_mb:,.0f} MB" if data.memory_mb else "no measured figure"
        said += (f"; the plan expected {expected} for {data.rows:,} of {data.n_rows:,} rows (limit "
                 f"{data.memory_limit_mb or 0:,.0f} MB)")
    return (said + "; the retry fits on fewer rows; to avoid it, give the run more memory (free some, or --memory-mb) "
            "or fewer rows per fit (--max-fit-rows)")


def after_check(state: TrackState, runtime: Runtime[RunContext]) -> Literal["execute", "debug", "finish", "next_member",
                                                                            "generate"]:
    return "execute" if state.get("last_error") is None else after_failure(state, runtime)


def after_execute(state: TrackState, runtime: Runtime[RunContext]) -> Literal["finish", "debug", "next_member", "generate"]:
    return after_success(state, runtime) if state.get("last_error") is None else after_failure(state, runtime)


def after_success(state: TrackState, runtime: Runtime[RunContext]) -> Literal["finish", "next_member", "generate"]:
    left = run_left_s(state, runtime.context)
    if own_recipe_due(state, left):
        return "generate"
    return "next_member" if members_left(state, left) else "finish"


def own_recipe_due(state: TrackState, run_left: float = float("inf")) -> bool:
    """After the plan's lead member: the track's own recipe has not run, and the run has time for
    it, or the lead failed (the recipe is the track's next chance of a score)."""
    attempts = state.get("attempts", [])
    if not state["plan"].lead or any(a.source != "member" for a in attempts):
        return False
    return budget.member_may_start(run_left) or not any(a.status == "ok" for a in attempts)


def after_failure(state: TrackState, runtime: Runtime[RunContext]) -> Literal["debug", "finish", "next_member", "generate"]:
    # A member that fails is skipped (the track already has its own scored attempt, or a lead
    # member failed and the track's own recipe runs next); debug repairs the track's own code
    # while attempts are left and falls back to the recipe after, unless the track has a score
    # and the run no time left for a repair; once the fallback itself has failed there is
    # nothing left to try.
    if state.get("source") == "member":
        return after_success(state, runtime)
    scored = any(a.status == "ok" for a in state.get("attempts", []))
    if scored and not budget.member_may_start(run_left_s(state, runtime.context)):
        return after_success(state, runtime)
    return "finish" if state.get("fell_back") else "debug"


def finish(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    track = state["plan"].track
    attempts = state.get("attempts", [])
    result = summarize_track(track, attempts, get_metric(state["task"].metric))
    # A finished track's kernel only holds memory while other tracks compute; refine starts the
    # best track's again. The only track keeps its kernel: refine searches it next, and a restart
    # (kernel, imports, data) is seconds that a small budget does not have.
    if len(state["blueprint"].tracks) > 1:
        runtime.context.close_kernel(track)
    runtime.context.turns.finish(track)
    runtime.context.events.emit("track", track=track, status=result.status, score=result.score, attempts=len(attempts))
    return {"tracks": {track: result}}


def summarize_track(track: str, attempts: list[AttemptResult], metric) -> TrackResult:
    """The track's result: its best standing attempt (runtime/verdict.py), or why it has none."""
    best = best_standing(metric, attempts)
    if best is None:
        last = attempts[-1].error if attempts else "no attempt ran"
        return TrackResult(track=track, status="failed", reason=(last or "")[:500], attempts=attempts)
    return TrackResult(track=track, status="ok", best_attempt=best.attempt, score=best.score, attempts=attempts)
