"""refine: with the time left, improve the best track, as a loop of graph steps.

    start -> propose -> check (changed code) -> execute -> judge -> propose ... -> finish

Each candidate is a new attempt of the best track (source "refine"), run in the track's own
kernel by the same check and execute nodes as every other attempt, scored by the harness on
the same folds. `judge` keeps it as the new base of its chain only beyond fold noise; every
candidate stays on the leaderboard, and the ensemble may use it as a member. Every step is a
checkpointed graph step: Studio shows each candidate, and a killed refine resumes at the step
it was in, its search state in the graph state and its Optuna study in the run folder, so no
finished candidate runs again.

Offline, a chain searches one base attempt's declared parameters (runtime/params.py): first
each parameter's declared steps from the base, a kept step repeated in its direction (a hill
climb that measured well at small budgets), then Optuna's seeded TPE over the declared ranges,
which learns from every candidate told to the study (the base enqueued first), alternating
with reseeds of the chain's best. A candidate worse than the best on each of its first folds
is pruned there. When a chain runs dry, the best attempt of the track's next model family is
searched. With an LLM, the first chain asks for targeted rewrites of one module first.
"""

from __future__ import annotations

import json
import math
import operator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from langgraph.graph import END, START
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from graph.context import ContextGraph, RunContext
from graph.llm import client_for
from graph.state import (AttemptResult, Blueprint, Candidate, Chain, DataProfile, LLMCall, TaskSpec, TrackPlan,
                         TrackResult, merge_tracks)
from nodes.blueprint import final_reserve_s, plan_data
from nodes.check import check
from nodes.execute import execute
from nodes.track import attempt_dir, summarize_track, write_modules
from runtime.metrics import Metric, get_metric
from runtime.params import Param, Space, space_for

MIN_CANDIDATE_S = 2.0  # what a candidate costs at least (a cell, a fit, writing files)
PRUNE_AFTER_FOLDS = 2  # a candidate is judged on this many folds before it may be pruned
TPE_TRIES = 8  # asks of the sampler for one affordable, new candidate


class RefineInput(TypedDict, total=False):
    run_dir: str
    task: TaskSpec
    profile: DataProfile
    blueprint: Blueprint
    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    refine_bases: list[int]  # the attempts to search from, in order (default: refine_bases())
    refine_given: list[Candidate]  # candidates to try first on the first chain (an outside proposer's)


class RefineOutput(TypedDict):
    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    llm_usage: Annotated[list[LLMCall], operator.add]


class RefineState(RefineInput, total=False):
    track: str
    attempts: list[AttemptResult]  # the track's attempts, refine's candidates appended
    bases: list[int]
    chain: Chain | None
    champion: int | None  # the track's best after refine
    candidate: Candidate | None
    verdict: str | None  # check's error for a changed-code candidate
    tried: int
    kept: int
    stopped: str
    llm_usage: Annotated[list[LLMCall], operator.add]


# -- the nodes ------------------------------------------------------------------------------------


def start(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """The best track, the attempts to search from, and the first chain."""
    ctx = runtime.context
    metric = get_metric(state["task"].metric)
    best = best_track(state.get("tracks") or {}, metric)
    if best is None or best.best is None or plan_of(state, best.track) is None:
        ctx.events.emit("refine", skipped="no track produced a score")
        return {"track": "", "chain": None}
    bases = state.get("refine_bases") or [a.attempt for a in refine_bases(best, metric)]
    attempts = list(best.attempts)
    first = attempt_by_number(attempts, bases[0])
    chain = new_chain(state, first, ctx)
    return {"track": best.track, "attempts": attempts, "bases": bases, "chain": chain, "champion": best.best.attempt,
            "tried": 0, "kept": 0, "stopped": "time"}


def propose(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """The next candidate of the current chain, or the next chain's first, while time lasts."""
    ctx = runtime.context
    chain, attempts, stopped = state["chain"], state["attempts"], state.get("stopped", "time")
    left = ctx.remaining_s() - reserve_s(state, ctx)
    calls: list[LLMCall] = []
    given = state.get("refine_given")
    while chain is not None:
        current, base = attempt_by_number(attempts, chain.current), attempt_by_number(attempts, chain.base)
        # durations swing with the machine's load: plan with the slower of the base and the
        # chain's best, so the last candidate does not overrun the budget
        typical = max(MIN_CANDIDATE_S, current.duration_s or 0.0, base.duration_s or 0.0)
        if left < typical * 0.8:
            return {"chain": chain.model_copy(update={"stopped": "time"}), "candidate": None, "stopped": "time",
                    "llm_usage": calls}
        cand = None
        if chain.tried >= ctx.settings.refine_max_candidates:
            chain = chain.model_copy(update={"stopped": "candidates"})
        elif given is not None and chain.base == state["bases"][0]:
            # an outside proposer's candidates are all the first chain tries
            cand, given = (given[0] if given else None), given[1:]
        else:
            cand, chain, asked = next_candidate(state, ctx, chain, typical, left)
            calls += asked
        if cand is not None:
            cand = cand.model_copy(update={"attempt": max(a.attempt for a in attempts) + 1, "timeout_s": left})
            update = {"chain": chain, "candidate": cand, "verdict": None, "llm_usage": calls}
            if cand.code is None:  # unchanged code: straight to execute, which needs the modules there
                write_modules(attempt_dir(track_inputs({**state, **update}, cand)), chain.code)
            return {**update, **({"refine_given": given} if given is not None else {})}
        stopped = chain.stopped or "nothing left to try"
        chain = next_chain({**state, "refine_given": given}, chain, ctx)
    return {"chain": None, "candidate": None, "stopped": stopped, "llm_usage": calls}


def check_candidate(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """A rewritten module goes through the track's check: static rules, then the sample run."""
    update = check(track_inputs(state, state["candidate"]), runtime)
    failed = update.get("attempts") or []
    return {"verdict": update.get("last_error"), **({"attempts": [*state["attempts"], failed[0]]} if failed else {})}


def execute_candidate(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """Cross-validate the candidate with the track's execute node; pruned when clearly worse."""
    cand = state["candidate"]
    prune = prune_rule(state) if cand.kind in ("move", "tpe", "reseed") else None
    update = execute(track_inputs(state, cand, prune=prune), runtime)
    return {"attempts": [*state["attempts"], update["attempts"][0]]}


def judge(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """Keep the candidate as its chain's best only beyond fold noise; tell the study."""
    ctx = runtime.context
    metric = get_metric(state["task"].metric)
    cand, chain, attempts = state["candidate"], state["chain"], list(state["attempts"])
    result = attempts[-1]
    result = result.model_copy(update={"member": chain.member})  # the family it refines
    attempts[-1] = result
    current = attempt_by_number(attempts, chain.current)
    improved = result.status == "ok" and result.score is not None and beyond_fold_noise(metric, result, current)
    tell_study(state, chain, cand, result)
    chain = learn(chain, cand, result, current, improved)
    ctx.events.emit("refine", track=state["track"], attempt=result.attempt, change=cand.note, status=result.status,
                    score=result.score, best=current.score, kept=improved, duration_s=result.duration_s,
                    base=chain.base)
    champion = state["champion"]
    if improved and (chain.base == state["bases"][0] or beyond_fold_noise(metric, result, attempt_by_number(attempts, champion))):
        champion = result.attempt  # another family's candidate becomes the track's best only beyond noise
    return {"attempts": attempts, "chain": chain, "candidate": None, "champion": champion,
            "tried": state["tried"] + 1, "kept": state["kept"] + int(improved)}


def finish(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """The track's result with refine's candidates, and why refine stopped."""
    ctx = runtime.context
    # No kernel computes after refine: free their memory before ensemble and submit (a later
    # use, e.g. a resumed run, starts them again).
    ctx.close()
    name = state.get("track")
    if not name:
        return {}
    reserve = reserve_s(state, ctx)
    if state.get("tried", 0) == 0:
        ctx.events.emit("refine", track=name, skipped=f"no candidate fits the {max(0.0, ctx.remaining_s() - reserve):.0f} s left")
        return {}
    metric = get_metric(state["task"].metric)
    track = state["tracks"][name]
    result = summarize_track(name, state["attempts"], metric)
    champion = attempt_by_number(state["attempts"], state["champion"])
    if champion.score is not None and result.best_attempt != champion.attempt:
        # a candidate that scored higher only within fold noise is not the track's best
        result = result.model_copy(update={"best_attempt": champion.attempt, "score": champion.score})
    left = max(0.0, ctx.remaining_s() - reserve)
    ctx.events.emit("refine_done", track=name, tried=state["tried"], kept=state["kept"], base_score=track.score,
                    best_score=result.score, stopped=state.get("stopped", "time") if left > MIN_CANDIDATE_S else "time",
                    left_s=round(left, 1))
    return {"tracks": {name: result}}


def after_start(state: RefineState) -> Literal["propose", "finish"]:
    return "propose" if state.get("chain") is not None else "finish"


def after_propose(state: RefineState) -> Literal["check", "execute", "finish"]:
    cand = state.get("candidate")
    if cand is None:
        return "finish"
    return "check" if cand.code is not None else "execute"


def after_check(state: RefineState) -> Literal["execute", "judge"]:
    return "execute" if state.get("verdict") is None else "judge"


def build_refine_graph() -> ContextGraph:
    g = ContextGraph(RefineState, context_schema=RunContext, input_schema=RefineInput, output_schema=RefineOutput)
    g.add_node("start", start)
    g.add_node("propose", propose)
    g.add_node("check", check_candidate)
    g.add_node("execute", execute_candidate)
    g.add_node("judge", judge)
    g.add_node("finish", finish)
    g.add_edge(START, "start")
    g.add_conditional_edges("start", after_start)
    g.add_conditional_edges("propose", after_propose)
    g.add_conditional_edges("check", after_check)
    g.add_edge("execute", "judge")
    g.add_edge("judge", "propose")
    g.add_edge("finish", END)
    return g


# -- what the nodes share -----------------------------------------------------------------------


def reserve_s(state: RefineState, ctx: RunContext) -> float:
    return final_reserve_s(state["blueprint"].budget_s, ctx.settings)


def plan_of(state: RefineState, track: str) -> TrackPlan | None:
    return next((p for p in state["blueprint"].tracks if p.track == track), None)


def attempt_by_number(attempts: list[AttemptResult], number: int) -> AttemptResult:
    return next(a for a in attempts if a.attempt == number)


def track_inputs(state: RefineState, cand: Candidate, prune: dict | None = None) -> dict[str, Any]:
    """What the track's check and execute nodes read, for one candidate: its share of the
    budget is the time refine had left when it was proposed, so execute's deadline is refine's."""
    plan = plan_of(state, state["track"])
    budget = max(state["blueprint"].budget_s, 1.0)
    cand_plan = plan.model_copy(update={"params": cand.params, "time_share": cand.timeout_s / budget})
    chain = state["chain"]
    return {"run_dir": state["run_dir"], "task": state["task"], "profile": state["profile"],
            "blueprint": state["blueprint"], "plan": cand_plan, "code": cand.code or chain.code, "source": "refine",
            "attempt": cand.attempt, "attempts": [], "last_error": None, "prune": prune}


def prune_rule(state: RefineState) -> dict | None:
    """Stop a candidate after its first folds when it is worse than the chain's best on each,
    by more than half the spread of the best's fold scores (the harness applies it)."""
    best = attempt_by_number(state["attempts"], state["chain"].current)
    folds = [s for s in best.fold_scores if s is not None and math.isfinite(s)]
    if len(folds) <= PRUNE_AFTER_FOLDS:
        return None
    return {"after": PRUNE_AFTER_FOLDS, "best": folds, "margin": 0.5 * float(np.std(folds))}


def best_track(tracks: dict[str, TrackResult], metric: Metric) -> TrackResult | None:
    return metric.best([t for t in tracks.values() if t.status == "ok"], key=lambda t: t.score)


def refine_bases(track: TrackResult, metric: Metric) -> list[AttemptResult]:
    """The track's best attempt, then the best scored attempt of each other model family
    (`member`; the track's own recipe and its repairs are one family), best first."""
    best_of: dict[str | None, AttemptResult] = {}
    for a in metric.ranked([a for a in track.attempts if a.status == "ok"], key=lambda a: a.score):
        best_of.setdefault(a.member, a)
    first = track.best
    others = [a for a in best_of.values() if first is None or a.member != first.member]
    return ([first] if first is not None else []) + others


def read_modules(folder: Path) -> dict[str, str]:
    return {m: (folder / f"{m}.py").read_text() for m in ("features", "model")}


def beyond_fold_noise(metric: Metric, candidate: AttemptResult, current: AttemptResult) -> bool:
    """Whether the candidate is better than the current best by more than fold noise: better
    out of fold, and its fold-by-fold gain (the same folds for both) has a mean above its
    standard error. On a few hundred rows a 60-candidate search otherwise keeps whichever
    candidate the folds happened to favour."""
    if not metric.better(candidate.score, current.score):
        return False
    a, b = np.asarray(candidate.fold_scores, dtype=float), np.asarray(current.fold_scores, dtype=float)
    if len(a) != len(b) or len(a) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return True
    gain = np.asarray([metric.gain(x, y) for x, y in zip(a, b)])
    return bool(gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain)))


# -- the search of one chain ---------------------------------------------------------------------


def searched_params(space: Space, params: dict[str, Any]) -> list[Param]:
    """The declared searchable params whose current value is a number (a default the recipe
    decides at fit time, like the pretrained head's C, is known once the base has run)."""
    return [p for p in space.searched() if isinstance(params.get(p.name), (int, float))
            and not isinstance(params.get(p.name), bool)]


def new_chain(state: RefineState, base: AttemptResult, ctx: RunContext) -> Chain:
    """A chain from `base`: its params made explicit (what it ran with, defaults included)."""
    space = space_for(state["track"] if state.get("track") else base.track, base.member)
    data = plan_data(state["task"], state["profile"], state["blueprint"].validation.n_folds)
    known = {**space.defaults(data), **base.resolved_params, **base.params}
    params = dict(base.params)
    for p in space.searched():
        if isinstance(known.get(p.name), (int, float)) and not isinstance(known.get(p.name), bool):
            params[p.name] = known[p.name]
    moves = searched_params(space, params)
    chain = Chain(base=base.attempt, member=base.member, current=base.attempt, params=params,
                  code=read_modules(Path(base.dir)), pending=first_pass(moves),
                  seen=[_key(params), _key(base.params)],
                  reseed=isinstance(params.get("seed"), int) and not isinstance(params.get("seed"), bool),
                  study=f"{base.track}-attempt_{base.attempt}")
    study = open_study(state["run_dir"], base.track, chain.study, state["task"].metric, seed=ctx.settings.seed)
    if not study.trials and base.score is not None:
        # the base is scored already: enqueued first and told its score, not run again
        dists = distributions(moves)
        study.enqueue_trial({p.name: params[p.name] for p in moves if _inside(p, params[p.name])})
        trial = study.ask(dists)
        study.tell(trial, base.score)
    return chain


def first_pass(moves: list[Param]) -> list[tuple[str, int]]:
    """Each searched parameter's declared steps from the base, most promising parameter first."""
    return [(p.name, i) for p in moves for i in range(len(p.steps))]


def next_chain(state: RefineState, done: Chain, ctx: RunContext) -> Chain | None:
    bases = state["bases"]
    i = bases.index(done.base) + 1
    if i >= len(bases):
        return None
    return new_chain(state, attempt_by_number(state["attempts"], bases[i]), ctx)


def next_candidate(state: RefineState, ctx: RunContext, chain: Chain, typical: float,
                   left: float) -> tuple[Candidate | None, Chain, list[LLMCall]]:
    """The chain's next candidate that fits the time left: an LLM rewrite (first chain, with an
    LLM), a declared step, then TPE and reseeds in turn; None when nothing is left."""
    calls: list[LLMCall] = []
    client = client_for(ctx)
    if client is not None and chain.base == state["bases"][0]:
        while not chain.llm_given_up and chain.llm_asked < ctx.settings.refine_llm_rewrites:
            cand, chain, asked = ask_rewrite(client, state, ctx, chain)
            calls += asked
            if cand is not None:
                return cand, chain, calls
    space = space_for(state["track"], chain.member)
    fits = lambda c: max(MIN_CANDIDATE_S, typical * c.cost) * 1.25 <= left  # noqa: E731
    seen = set(chain.seen)
    while chain.pending:
        name, step = chain.pending[0]
        chain = chain.model_copy(update={"pending": chain.pending[1:]})
        p = space[name]
        value = p.moved(chain.params[name], p.steps[step])
        if value is None:
            continue
        cand = Candidate(params={**chain.params, name: value}, note=f"{name} {chain.params[name]} -> {value}", kind="move",
                         move=name, step=step, cost=p.relative_cost(value, chain.params[name]))
        if _key(cand.params) in seen or not fits(cand):
            continue  # too slow for the time left; a cheaper one may fit
        return cand, seen_with(chain, cand), calls
    makers = (reseeded, sampled) if chain.turn % 2 == 0 else (sampled, reseeded)
    chain = chain.model_copy(update={"turn": chain.turn + 1})
    for make in makers:
        cand, chain = make(state, ctx, chain, space, fits)
        if cand is not None:
            return cand, seen_with(chain, cand), calls
    return None, chain, calls


def seen_with(chain: Chain, cand: Candidate) -> Chain:
    return chain.model_copy(update={"seen": [*chain.seen, _key(cand.params)]})


def reseeded(state: RefineState, ctx: RunContext, chain: Chain, space: Space, fits) -> tuple[Candidate | None, Chain]:
    """The chain's best with another seed: rarely kept, but its predictions differ by the
    randomness of bagging and column sampling alone, which the ensemble averages out."""
    while chain.reseed and chain.reseeds < ctx.settings.refine_max_reseeds:
        chain = chain.model_copy(update={"reseeds": chain.reseeds + 1})
        seed = int(chain.params["seed"]) + 1000 * chain.reseeds
        cand = Candidate(params={**chain.params, "seed": seed}, note=f"seed {chain.params['seed']} -> {seed}", kind="reseed")
        if _key(cand.params) not in chain.seen:
            return cand, chain
    return None, chain


def sampled(state: RefineState, ctx: RunContext, chain: Chain, space: Space, fits) -> tuple[Candidate | None, Chain]:
    """Optuna's TPE, over the declared ranges, from everything told to the chain's study."""
    import optuna

    moves = searched_params(space, chain.params)
    if not moves:
        return None, chain
    study = open_study(state["run_dir"], state["track"], chain.study, state["task"].metric,
                       seed=ctx.settings.seed + chain.tried)
    dists = distributions(moves)
    for _ in range(TPE_TRIES):
        trial = study.ask(dists)
        params = {**chain.params, **trial.params}
        changed = [p for p in moves if params[p.name] != chain.params[p.name]]
        cost = float(np.prod([p.relative_cost(params[p.name], chain.params[p.name]) for p in changed])) if changed else 1.0
        cand = Candidate(params=params, kind="tpe", trial=trial.number, cost=cost,
                         note="tpe: " + ", ".join(f"{p.name} {chain.params[p.name]} -> {params[p.name]}" for p in changed))
        if changed and _key(params) not in chain.seen and fits(cand):
            return cand, chain
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # nothing new, or too slow: not run
    return None, chain


def learn(chain: Chain, cand: Candidate, result: AttemptResult, current: AttemptResult, kept: bool) -> Chain:
    """The chain after a candidate: a kept one is the new base, its step tried again in the
    same direction (the move's other steps dropped); a reseed that scores exactly as its base
    fold by fold shows modules that ignore the seed, so no other seed will differ either."""
    update: dict[str, Any] = {"tried": chain.tried + 1}
    if cand.kind == "reseed" and result.status == "ok" and result.fold_scores and result.fold_scores == current.fold_scores:
        update["reseed"] = False
    if kept:
        update.update(current=result.attempt, params=dict(cand.params), kept=chain.kept + 1)
        if cand.code is not None:
            update["code"] = dict(cand.code)
        if cand.move is not None:
            pending = [(m, i) for m, i in chain.pending if m != cand.move]
            update["pending"] = [(cand.move, cand.step), *pending]
    return chain.model_copy(update=update)


# -- the study in the run folder ----------------------------------------------------------------


def study_path(run_dir: str, track: str) -> Path:
    return Path(run_dir) / "tracks" / track / "refine_study.jsonl"


def open_study(run_dir: str, track: str, name: str, metric_name: str, seed: int):
    """The chain's Optuna study, stored in the run folder (a journal file, so a resumed run
    loads every trial told before the kill)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = study_path(run_dir, track)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    direction = "maximize" if get_metric(metric_name).greater_is_better else "minimize"
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    return optuna.create_study(study_name=name, storage=storage, direction=direction, sampler=sampler, load_if_exists=True)


def distributions(params: list[Param]) -> dict[str, Any]:
    from optuna.distributions import FloatDistribution, IntDistribution

    return {p.name: IntDistribution(int(p.low), int(p.high), log=p.log) if p.kind is int
            else FloatDistribution(float(p.low), float(p.high), log=p.log) for p in params}


def tell_study(state: RefineState, chain: Chain, cand: Candidate, result: AttemptResult) -> None:
    """Every candidate's outcome goes to the chain's study, so TPE learns from the declared
    steps and reseeds too (a pruned or failed one as such)."""
    import optuna
    from optuna.trial import TrialState

    study = open_study(state["run_dir"], state["track"], chain.study, state["task"].metric, seed=0)
    ok = result.status == "ok" and result.score is not None and math.isfinite(result.score)
    status = TrialState.COMPLETE if ok else TrialState.PRUNED if result.status == "pruned" else TrialState.FAIL
    if cand.trial is not None:
        study.tell(cand.trial, result.score if ok else None, state=status)
        return
    moves = searched_params(space_for(state["track"], chain.member), cand.params)
    inside = [p for p in moves if _inside(p, cand.params[p.name])]
    study.add_trial(optuna.trial.create_trial(
        params={p.name: cand.params[p.name] for p in inside}, distributions=distributions(inside),
        value=result.score if ok else None, state=status, user_attrs={"attempt": result.attempt, "kind": cand.kind}))


def _inside(p: Param, value: Any) -> bool:
    return p.low <= value <= p.high


def _key(params: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in params.items()))


# -- with an LLM: targeted rewrites of one module, before the parameter search --------------------


def ask_rewrite(client, state: RefineState, ctx: RunContext, chain: Chain) -> tuple[Candidate | None, Chain, list[LLMCall]]:
    """One request for a rewrite of one module of the chain's best code (model.py first, then
    features.py, alternating); a usable answer is a Candidate with `code`, checked before it
    runs. A failed request ends the rewrites; the parameter search goes on without them."""
    from graph.llm import LLMError, ModuleRewrite, strip_fences
    from prompts.render import refine_messages

    focus = ("model", "features")[chain.llm_asked % 2]
    chain = chain.model_copy(update={"llm_asked": chain.llm_asked + 1})
    plan = plan_of(state, state["track"])
    current = attempt_by_number(state["attempts"], chain.current)
    try:
        answer = client.ask(
            ModuleRewrite,
            refine_messages(state["task"], state["profile"], plan, chain.code, current.score, params=chain.params,
                            attempts=state["attempts"], focus=focus),
            role="refine", node="refine", track=state["track"], events=ctx.events)
    except LLMError as e:
        ctx.events.emit("refine_llm", track=state["track"], gave_up=str(e)[:200])
        return None, chain.model_copy(update={"llm_given_up": True}), list(e.calls)
    rewrite = answer.value
    source = strip_fences(rewrite.code)
    code = {**chain.code, rewrite.module: source}
    key = json.dumps(sorted(code.items()))
    if not source.strip() or source == chain.code.get(rewrite.module) or key in chain.seen:
        ctx.events.emit("refine_llm", track=state["track"], skipped=f"no new change to {rewrite.module}.py")
        return None, chain, list(answer.calls)
    note = f"LLM rewrite of {rewrite.module}.py: {rewrite.notes.strip()[:150] or 'no notes'}"
    chain = chain.model_copy(update={"seen": [*chain.seen, key]})
    return Candidate(params=dict(chain.params), note=note, code=code, kind="llm"), chain, list(answer.calls)

