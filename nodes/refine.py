"""refine: with the time left, improve the best track, as a loop of graph steps.

    start -> propose -> check (changed code) -> execute -> judge -> propose ... -> finish

Each candidate is a new attempt of the best track (source "refine"), run in the track's own
kernel by the same check and execute nodes as every other attempt, scored by the harness on
the same folds. `judge` keeps it as the new base of its chain only beyond fold noise, and only a
kept candidate can be the track's best, or the submission (runtime/verdict.py); every candidate
stays on the leaderboard, and the ensemble may use it as a member. Every step is a
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

At a long budget the blueprint plans bags (runtime/budget.py): the search stops with what they
need left, and the best standing attempt of each of the best model families runs again with its
folds cut several times, a seed per cut (source "bag"), through the same propose -> execute ->
judge steps. judge keeps a bag only when its out-of-fold predictions, averaged over its cuts, beat
the attempt it bags beyond fold noise on the same folds.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from langgraph.graph import END, START
from langgraph.runtime import Runtime

from graph.context import ContextGraph, RunContext
from graph.llm import client_for
from graph.state import Candidate, Chain, RefineInput, RefineOutput, RefineState
from nodes.check import check
from nodes.execute import execute
from runtime.submission_file import offer_submission
from nodes.track import (
    ATTEMPT_RECORD,
    attempt_dir,
    attempt_time,
    load_attempt,
    record_attempt,
    summarize_track,
    write_modules,
)
from runtime import budget
from runtime.blend import hill_climb
from runtime.costs import plan_data, planned_profile
from runtime.metrics import Metric, get_metric
from runtime.params import Param, Space, space_for
from runtime.records import (
    AttemptResult,
    Blueprint,
    DataProfile,
    LLMCall,
    TaskSpec,
    TrackPlan,
    TrackResult,
)
from runtime.verdict import best_standing, best_track, beyond_fold_noise, predictions_beyond_fold_noise, stands

MIN_CANDIDATE_S = 0.5  # what a candidate costs at least (a cell, a fit, writing files: ~0.1 s beyond its folds)
PRUNE_AFTER_FOLDS = 2  # a candidate is judged on this many folds before it may be pruned
TPE_TRIES = 8  # asks of the sampler for one affordable, new candidate


# -- the nodes ------------------------------------------------------------------------------------


def start(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """The best track, the attempts to search from, and the first chain."""
    ctx = runtime.context
    task, _, blueprint = run_inputs(state["run_dir"])
    metric = get_metric(task.metric)
    best = best_track(metric, state.get("tracks") or {})
    if best is None or best.best is None or plan_of(blueprint, best.track) is None:
        ctx.events.emit("refine", skipped="no track produced a score")
        return {"tracks": {}, "track": "", "chain": None}
    for a in best.attempts:
        record_attempt(a)
    bases = state.get("refine_bases") or [a.attempt for a in refine_bases(best, metric)]
    number = max(a.attempt for a in best.attempts) + 1
    update = {"tracks": {}, "track": best.track, "own": [a.attempt for a in best.attempts], "bases": bases,
              "first_candidate": number, "next_attempt": number, "champion": best.best.attempt, "tried": 0, "kept": 0,
              "stopped": "time", "bagged": [], "bags": 0, "bags_kept": 0}
    update["chain"] = new_chain({**state, **update}, find_attempt(state["run_dir"], best.track, bases[0]), ctx)
    return update


def candidate_seconds(attempt: AttemptResult) -> float:
    """What a candidate moved from this attempt costs: its folds, without its fit on all rows."""
    return max(0.0, (attempt.duration_s or 0.0) - attempt.refit_s)


def propose(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """The next candidate of the current chain, or the next chain's first, while the search's time
    lasts; then, at a long budget, the next bag; once the bags are done, the search again with what
    they left; None when nothing is left."""
    ctx = runtime.context
    left = run_left_s(state, ctx)
    bagging = bool(state.get("bagged")) and not state.get("bags_done")
    update: dict = {"chain": state["chain"], "stopped": state.get("stopped", "time"), "llm_usage": []}
    if not bagging:
        # the search leaves the bags what they need (none once they are done, or below a long budget)
        reserve = 0.0 if state.get("bags_done") else bags_need_s(state)
        update = search_step(state, ctx, left, left - reserve)
        if update.get("candidate") is not None or state.get("bags_done"):
            return update
    cand, bagged = next_bag(state, left)
    if cand is not None:
        cand = cand.model_copy(update={"attempt": state["next_attempt"], "timeout_s": left})
        bag = {**update, "candidate": cand, "result": None, "next_attempt": state["next_attempt"] + 1, "bagged": bagged}
        write_modules(attempt_dir(track_inputs({**state, **bag}, cand)), read_modules(Path(cand_code_dir(state, cand))))
        return bag
    done = {**update, "bagged": bagged, "bags_done": True}
    if _bags_planned(state):  # the bags are done: the search goes on with the time they left
        resumed = search_step({**state, **done}, ctx, left, left)
        return {**resumed, "bagged": bagged, "bags_done": True, "llm_usage": update["llm_usage"] + resumed["llm_usage"]}
    return {**done, "chain": None, "candidate": None}


def search_step(state: RefineState, ctx: RunContext, left: float, search_left: float) -> dict:
    """The search's next candidate, started only while `search_left` has time for it (and given
    `left` as its timeout: one that overruns takes from the bags' cuts, where a stopped one would
    be lost whole); or none, with the chain where it stopped and why."""
    chain, stopped = state["chain"], state.get("stopped", "time")
    calls: list[LLMCall] = []
    given = state.get("refine_given")
    while chain is not None:
        current, base = chain_attempt(state, chain.current), chain_attempt(state, chain.base)
        # durations swing with the machine's load: plan with the slower of the base and the
        # chain's best, so the last candidate does not overrun the budget. Their fits on all rows
        # are not counted: a candidate gets one only when it wins and its deadline leaves room
        # (a 10 s run on diamonds_mae left 2.4 s unused, its 2.6 s folds priced at 3.4 s).
        typical = max(MIN_CANDIDATE_S, candidate_seconds(current), candidate_seconds(base))
        if search_left < typical * 0.8:
            return {"chain": chain.model_copy(update={"stopped": "time"}), "candidate": None, "stopped": "time",
                    "llm_usage": calls}
        cand = None
        if chain.tried >= ctx.settings.refine_max_candidates:
            chain = chain.model_copy(update={"stopped": "candidates"})
        elif given is not None and chain.base == state["bases"][0]:
            # an outside proposer's candidates are all the first chain tries
            cand, given = (given[0] if given else None), given[1:]
        else:
            cand, chain, asked = next_candidate(state, ctx, chain, typical, search_left)
            calls += asked
        if cand is not None:
            # the time left now: an LLM's rewrite took seconds of it to write (a slow server, all of them)
            left = run_left_s(state, ctx)
            if left < typical * 0.8:
                return {"chain": chain.model_copy(update={"stopped": "time"}), "candidate": None, "stopped": "time",
                        "llm_usage": calls}
            cand = cand.model_copy(update={"attempt": state["next_attempt"], "timeout_s": left})
            update = {"chain": chain, "candidate": cand, "result": None, "next_attempt": state["next_attempt"] + 1,
                      "llm_usage": calls, **({"refine_given": given} if given is not None else {})}
            if cand.code is None:  # unchanged code: straight to execute, which needs the modules there
                write_modules(attempt_dir(track_inputs({**state, **update}, cand)), read_modules(Path(chain.code_dir)))
            return update
        stopped = chain.stopped or "nothing left to try"
        chain = next_chain(state, chain, ctx)
    return {"chain": None, "candidate": None, "stopped": stopped, "llm_usage": calls}


def _bags_planned(state: RefineState) -> bool:
    return run_inputs(state["run_dir"])[2].bagging is not None


def check_candidate(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """A rewritten module goes through the track's check: static rules, then the sample run."""
    update = check(track_inputs(state, state["candidate"]), runtime)
    failed = update.get("attempts") or []
    return {"result": failed[0] if failed else None}


def after_check(state: RefineState) -> Literal["execute", "judge"]:
    return "judge" if state.get("result") is not None else "execute"


def execute_candidate(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """Cross-validate the candidate with the track's execute node; pruned when clearly worse."""
    cand = state["candidate"]
    prune = prune_rule(state) if cand.kind in ("move", "tpe", "reseed") else None
    update = execute(track_inputs(state, cand, prune=prune), runtime)
    return {"result": update["attempts"][0]}


def judge(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """Keep the candidate as its chain's new base only beyond fold noise, tell the study, and say
    where it stands: a kept candidate that scores best is the track's best (runtime/verdict.py),
    and the anytime submission's."""
    ctx = runtime.context
    task, _, blueprint = run_inputs(state["run_dir"])
    metric = get_metric(task.metric)
    cand, chain = state["candidate"], state["chain"]
    if cand.kind == "bag":
        return judge_bag(state, ctx, task, metric)
    current = chain_attempt(state, chain.current)
    result = state["result"]
    kept = result.status == "ok" and beyond_fold_noise(metric, result, current, blueprint.validation.n_folds)
    result = result.model_copy(update={"member": chain.member, "kept": kept})  # the family it refines
    record_attempt(result)
    tell_study(state, chain, cand, result)
    chain = learn(chain, cand, result, current, kept)
    best = best_standing(metric, [chain_attempt(state, state["champion"]), result])
    ctx.events.emit("refine", track=state["track"], attempt=result.attempt, change=cand.note, status=result.status,
                    score=result.score, kept=kept, against=current.score, duration_s=result.duration_s, base=chain.base,
                    within_noise=not kept and result.status == "ok" and metric.better(result.score, current.score),
                    best=best.score, best_attempt=best.attempt)
    offer_submission(task, Path(state["run_dir"]), result, ctx.events)
    return {"chain": chain, "candidate": None, "result": None, "champion": best.attempt,
            "tried": state["tried"] + 1, "kept": state["kept"] + int(kept)}


def judge_bag(state: RefineState, ctx: RunContext, task: TaskSpec, metric: Metric) -> dict:
    """A bag is kept when its out-of-fold predictions (averaged over its cuts) beat those of the
    attempt it bags beyond fold noise, both scored on the run's folds (runtime/verdict.py); a kept
    bag stands as a result of its family, and may be the track's best and the submission."""
    cand, result = state["candidate"], state["result"]
    base = chain_attempt(state, cand.base)
    kept = result.status == "ok" and bag_beats(state["run_dir"], metric, result, base)
    result = result.model_copy(update={"member": base.member, "kept": kept})
    record_attempt(result)
    best = best_standing(metric, [chain_attempt(state, state["champion"]), result])
    ctx.events.emit("refine", track=state["track"], attempt=result.attempt, change=cand.note, status=result.status,
                    score=result.score, kept=kept, against=base.score, duration_s=result.duration_s, base=base.attempt,
                    within_noise=not kept and result.status == "ok" and metric.better(result.score, base.score),
                    best=best.score, best_attempt=best.attempt, bag=True)
    offer_submission(task, Path(state["run_dir"]), result, ctx.events)
    return {"candidate": None, "result": None, "champion": best.attempt, "bags": state.get("bags", 0) + 1,
            "bags_kept": state.get("bags_kept", 0) + int(kept)}


def finish(state: RefineState, runtime: Runtime[RunContext]) -> dict:
    """The track's result with refine's candidates, and why refine stopped."""
    ctx = runtime.context
    # The kernels stay for the ensemble, which computes in one of them and then closes them all.
    name = state.get("track")
    if not name:
        return {}
    left = max(0.0, run_left_s(state, ctx))
    if state.get("tried", 0) == 0 and not state.get("bags"):
        ctx.events.emit("refine", track=name, skipped=f"no candidate fits the {left:.0f} s left")
        return {}
    task, _, _ = run_inputs(state["run_dir"])
    metric = get_metric(task.metric)
    numbers = [*state["own"], *range(state["first_candidate"], state["next_attempt"])]
    attempts = [a for a in (load_attempt(state["run_dir"], name, n) for n in numbers) if a is not None]
    own = [a for a in attempts if a.attempt in state["own"]]
    result = summarize_track(name, attempts, metric)  # a candidate refine did not keep is not the track's best
    before = summarize_track(name, own, metric)
    ctx.events.emit("refine_done", track=name, tried=state["tried"], kept=state["kept"], base_score=before.score,
                    best_score=result.score, stopped=state.get("stopped", "time") if left > MIN_CANDIDATE_S else "time",
                    left_s=round(left, 1), bags=state.get("bags", 0), bags_kept=state.get("bags_kept", 0))
    return {"tracks": {name: result}}


def after_start(state: RefineState) -> Literal["propose", "finish"]:
    return "propose" if state.get("chain") is not None else "finish"


def after_propose(state: RefineState) -> Literal["check", "execute", "finish"]:
    cand = state.get("candidate")
    if cand is None:
        return "finish"
    return "check" if cand.code is not None else "execute"


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


def run_inputs(run_dir: str) -> tuple[TaskSpec, DataProfile, Blueprint]:
    """The task, profile and blueprint as the run wrote them (the harness reads the same files)."""
    folder = Path(run_dir)
    stamp = tuple((folder / f).stat().st_mtime_ns for f in ("task.json", "profile.json", "blueprint.json"))
    return _run_inputs(str(folder), stamp)


@lru_cache(maxsize=8)
def _run_inputs(run_dir: str, stamp: tuple) -> tuple[TaskSpec, DataProfile, Blueprint]:
    folder = Path(run_dir)
    return (TaskSpec.model_validate_json((folder / "task.json").read_text()),
            DataProfile.model_validate_json((folder / "profile.json").read_text()),
            Blueprint.model_validate_json((folder / "blueprint.json").read_text()))


def run_left_s(state: RefineState, ctx: RunContext) -> float:
    """Seconds the run has left before its final reserve: refine's, and its candidates' timeout."""
    _, profile, blueprint = run_inputs(state["run_dir"])
    return budget.run_left_s(ctx.remaining_s(), blueprint, profile, ctx.settings)


def plan_of(blueprint: Blueprint, track: str) -> TrackPlan | None:
    return next((p for p in blueprint.tracks if p.track == track), None)


def find_attempt(run_dir: str, track: str, number: int) -> AttemptResult:
    found = load_attempt(run_dir, track, number)
    if found is None:
        raise FileNotFoundError(f"attempt {number} of track {track} has no {ATTEMPT_RECORD} in {run_dir}")
    return found


def chain_attempt(state: RefineState, number: int) -> AttemptResult:
    return find_attempt(state["run_dir"], state["track"], number)


def cand_code_dir(state: RefineState, cand: Candidate) -> str:
    """The folder whose modules a candidate with unchanged code runs: the attempt a bag bags, else its chain's."""
    return chain_attempt(state, cand.base).dir if cand.kind == "bag" else state["chain"].code_dir


def track_inputs(state: RefineState, cand: Candidate, prune: dict | None = None) -> dict[str, Any]:
    """What the track's check and execute nodes read, for one candidate: its share of the
    budget is the time refine had left when it was proposed, so execute's deadline is refine's."""
    inputs = candidate_inputs(state, cand.params, cand.timeout_s)
    code = cand.code or read_modules(Path(cand_code_dir(state, cand)))
    return {**inputs, "code": code, "source": "bag" if cand.kind == "bag" else "refine", "attempt": cand.attempt,
            "last_error": None, "prune": prune,
            # a bag fits only the cuts beyond those of the attempt it bags, whose it takes over
            "continues": cand_code_dir(state, cand) if cand.kind == "bag" else None}


def candidate_inputs(state: RefineState, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The track state a candidate with these params runs in, on `timeout_s` of refine's time."""
    task, profile, blueprint = run_inputs(state["run_dir"])
    plan = plan_of(blueprint, state["track"])
    cand_plan = plan.model_copy(update={"params": params, "time_share": budget.share_of(timeout_s, blueprint)})
    return {"run_dir": state["run_dir"], "task": task, "profile": profile, "blueprint": blueprint, "plan": cand_plan,
            "attempts": []}


def prune_rule(state: RefineState) -> dict | None:
    """Stop a candidate after its first folds when it is worse than the chain's best on each,
    by more than half the spread of the best's fold scores (the harness applies it)."""
    best = chain_attempt(state, state["chain"].current)
    folds = [s for s in best.fold_scores if s is not None and math.isfinite(s)]
    if len(folds) <= PRUNE_AFTER_FOLDS:
        return None
    # `score`: a candidate that does not beat it is not fitted again on all rows either
    return {"after": PRUNE_AFTER_FOLDS, "best": folds, "margin": 0.5 * float(np.std(folds)), "score": best.score}


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


# -- a long budget's bags -------------------------------------------------------------------------


def track_attempts(state: RefineState) -> list[AttemptResult]:
    """The track's attempts so far: its own, then refine's candidates and bags."""
    numbers = [*state["own"], *range(state["first_candidate"], state["next_attempt"])]
    return [a for a in (load_attempt(state["run_dir"], state["track"], n) for n in numbers) if a is not None]


def family(attempt: AttemptResult) -> str:
    """The model family an attempt belongs to: its member recipe, or the track's own ("own")."""
    return attempt.member or "own"


def bag_bases(state: RefineState) -> list[AttemptResult]:
    """The best standing attempt of each model family the ensemble would use, best first, not
    bagged yet (bags themselves left out): what the next bags would bag. The best family always;
    another only when a blend of the families' best attempts gives it weight: a 5-minute run spent
    a bag on extra-trees, 2.4 MAE behind LightGBM and in no blend, that its search lacked."""
    task, _, _ = run_inputs(state["run_dir"])
    metric = get_metric(task.metric)
    best: dict[str, AttemptResult] = {}
    standing = [a for a in track_attempts(state) if stands(a) and a.source != "bag" and (Path(a.dir) / "oof.npy").exists()]
    for a in metric.ranked(standing, key=lambda a: a.score):
        best.setdefault(family(a), a)
    used = blended_families(state["run_dir"], task.metric, tuple((name, a.dir) for name, a in best.items()))
    done = set(state.get("bagged") or [])
    return [a for name, a in best.items() if name in used and name not in done]


@lru_cache(maxsize=8)
def blended_families(run_dir: str, metric_name: str, bests: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """The families (name, folder of its best attempt; the best first) a blend of their out-of-fold
    predictions gives weight (runtime/blend.py's hill climbing); the first always."""
    if len(bests) < 2:
        return frozenset(name for name, _ in bests)
    y = np.load(Path(run_dir) / "y.npy")
    oof = {name: np.load(Path(folder) / "oof.npy") for name, folder in bests}
    return frozenset(hill_climb(oof, y, get_metric(metric_name), bests[0][0])) | {bests[0][0]}


def bags_need_s(state: RefineState) -> float:
    """What the planned bags need of the time left (runtime/budget.py); 0 without a plan for them."""
    _, _, blueprint = run_inputs(state["run_dir"])
    if blueprint.bagging is None:
        return 0.0
    return budget.bag_need_s(bag_bases(state), blueprint.validation.n_folds, blueprint.bagging)


def next_bag(state: RefineState, left: float) -> tuple[Candidate | None, list[str]]:
    """The next family's bag that fits the time left, best family first, at most the plan's number
    of families; and the families bagged or passed over so far."""
    _, _, blueprint = run_inputs(state["run_dir"])
    plan, bagged = blueprint.bagging, list(state.get("bagged") or [])
    if plan is None:
        return None, bagged
    for base in bag_bases(state)[:max(0, plan.families - len(bagged))]:
        bagged.append(family(base))
        cuts = budget.bag_cuts_that_fit(base, blueprint.validation.n_folds, plan.cuts, left)
        if cuts:
            params = {**base.params, "cuts": cuts, "seed_per_cut": True}
            note = f"bag of attempt {base.attempt} ({family(base)}): its folds cut {cuts} times, a seed per cut"
            return Candidate(params=params, note=note, kind="bag", base=base.attempt), bagged
    return None, bagged


def bag_beats(run_dir: str, metric: Metric, bag: AttemptResult, base: AttemptResult) -> bool:
    """Whether the bag's out-of-fold predictions beat its base's beyond fold noise, on the run's folds."""
    folder = Path(run_dir)
    y, folds = np.load(folder / "y.npy"), np.load(folder / "folds.npy")
    oof = [np.load(Path(a.dir) / "oof.npy") for a in (bag, base)]
    return predictions_beyond_fold_noise(metric, y, folds, *oof)


# -- the search of one chain ---------------------------------------------------------------------


def searched_params(space: Space, params: dict[str, Any]) -> list[Param]:
    """The declared searchable params whose current value is a number (a default the recipe
    decides at fit time, like the pretrained head's C, is known once the base has run)."""
    return [p for p in space.searched() if isinstance(params.get(p.name), (int, float))
            and not isinstance(params.get(p.name), bool)]


def new_chain(state: RefineState, base: AttemptResult, ctx: RunContext) -> Chain:
    """A chain from `base`: its params made explicit (what it ran with, defaults included), and its
    study in the run folder with the base enqueued first and told the score it already has."""
    task, profile, blueprint = run_inputs(state["run_dir"])
    space = space_for(state["track"], base.member)
    planned = planned_profile(profile, budget.scored_rows(blueprint, profile))  # a large table: the rows the plan uses
    known = {**space.defaults(plan_data(task, planned, blueprint.validation.n_folds)), **base.resolved_params, **base.params}
    # only what the modules read: code that is not the recipe's (an LLM's) may ignore a declared name
    source = "\n".join(read_modules(Path(base.dir)).values())
    params = dict(base.params)
    for p in space.searched():
        read = p.name in base.resolved_params or f'"{p.name}"' in source or f"'{p.name}'" in source
        if read and isinstance(known.get(p.name), (int, float)) and not isinstance(known.get(p.name), bool):
            params[p.name] = known[p.name]
    moves = searched_params(space, params)
    chain = Chain(base=base.attempt, member=base.member, current=base.attempt, params=params, code_dir=base.dir,
                  pending=first_pass(moves), reseed=isinstance(params.get("seed"), int) and not isinstance(params.get("seed"), bool),
                  study=f"{state['track']}-attempt_{base.attempt}")
    study = open_study(state["run_dir"], state["track"], chain.study, task.metric, seed=ctx.settings.seed)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial({p.name: params[p.name] for p in moves if _inside(p, params[p.name])},
                            user_attrs={"key": _key(params), "attempt": base.attempt, "kind": "base"})
        trial = study.ask(distributions([p for p in moves if _inside(p, params[p.name])]))
        ok = base.score is not None and math.isfinite(base.score)
        study.tell(trial, base.score if ok else None, state=None if ok else _trial_state("FAIL"))
    return chain


def first_pass(moves: list[Param]) -> list[tuple[str, int]]:
    """Each searched parameter's declared steps from the base, most promising parameter first."""
    return [(p.name, i) for p in moves for i in range(len(p.steps))]


def next_chain(state: RefineState, done: Chain, ctx: RunContext) -> Chain | None:
    bases = state["bases"]
    i = bases.index(done.base) + 1
    if i >= len(bases):
        return None
    return new_chain(state, chain_attempt(state, bases[i]), ctx)


def next_candidate(state: RefineState, ctx: RunContext, chain: Chain, typical: float,
                   left: float) -> tuple[Candidate | None, Chain, list[LLMCall]]:
    """The chain's next candidate that fits the time left: an LLM rewrite (first chain, with an
    LLM), a declared step, then TPE and reseeds in turn; None when nothing is left. What was
    tried already is read from the chain's study, so no candidate runs twice."""
    calls: list[LLMCall] = []
    client = client_for(ctx)
    # TPE's seed moves with the chain's candidates, so a resumed run asks what a fresh one would
    study = open_study(state["run_dir"], state["track"], chain.study, run_inputs(state["run_dir"])[0].metric,
                       seed=ctx.settings.seed + chain.tried)
    seen = {t.user_attrs.get("key") for t in study.get_trials(deepcopy=False)}
    if client is not None and chain.base == state["bases"][0]:
        while not chain.llm_given_up and chain.llm_asked < ctx.settings.refine_llm_rewrites:
            cand, chain, asked = ask_rewrite(client, state, ctx, chain, seen)
            calls += asked
            if cand is not None:
                return cand, chain, calls
    space = space_for(state["track"], chain.member)
    fits = lambda c: max(MIN_CANDIDATE_S, typical * c.cost) * 1.25 <= left  # noqa: E731
    too_slow: list[tuple[str, int]] = []  # kept for later: a long run's search resumes after its bags
    while chain.pending:
        name, step = chain.pending[0]
        chain = chain.model_copy(update={"pending": chain.pending[1:]})
        p = space[name]
        value = p.moved(chain.params[name], p.steps[step])
        if value is None:
            continue
        cand = Candidate(params={**chain.params, name: value}, note=f"{name} {chain.params[name]} -> {value}", kind="move",
                         move=name, step=step, cost=p.relative_cost(value, chain.params[name]))
        if _key(cand.params) in seen:
            continue
        if not fits(cand):
            too_slow.append((name, step))  # too slow for the time left; a cheaper one may fit
            continue
        return cand, chain.model_copy(update={"pending": chain.pending + too_slow}), calls
    chain = chain.model_copy(update={"pending": too_slow})
    makers = (reseeded, sampled) if chain.turn % 2 == 0 else (sampled, reseeded)
    chain = chain.model_copy(update={"turn": chain.turn + 1})
    for make in makers:
        cand, chain = make(study, seen, ctx, chain, space, fits)
        if cand is not None:
            return cand, chain, calls
    return None, chain, calls


def reseeded(study, seen: set[str], ctx: RunContext, chain: Chain, space: Space, fits) -> tuple[Candidate | None, Chain]:
    """The chain's best with another seed: rarely kept, but its predictions differ by the
    randomness of bagging and column sampling alone, which the ensemble averages out."""
    while chain.reseed and chain.reseeds < ctx.settings.refine_max_reseeds:
        chain = chain.model_copy(update={"reseeds": chain.reseeds + 1})
        seed = int(chain.params["seed"]) + 1000 * chain.reseeds
        cand = Candidate(params={**chain.params, "seed": seed}, note=f"seed {chain.params['seed']} -> {seed}", kind="reseed")
        if _key(cand.params) not in seen:
            return cand, chain
    return None, chain


def sampled(study, seen: set[str], ctx: RunContext, chain: Chain, space: Space, fits) -> tuple[Candidate | None, Chain]:
    """Optuna's TPE, over the declared ranges, from everything told to the chain's study."""
    moves = searched_params(space, chain.params)
    if not moves:
        return None, chain
    dists = distributions(moves)
    for _ in range(TPE_TRIES):
        trial = study.ask(dists)
        params = {**chain.params, **trial.params}
        changed = [p for p in moves if params[p.name] != chain.params[p.name]]
        cost = float(np.prod([p.relative_cost(params[p.name], chain.params[p.name]) for p in changed])) if changed else 1.0
        cand = Candidate(params=params, kind="tpe", trial=trial.number, cost=cost,
                         note="tpe: " + ", ".join(f"{p.name} {chain.params[p.name]} -> {params[p.name]}" for p in changed))
        key = _key(params)
        trial.set_user_attr("key", key)
        if changed and key not in seen and fits(cand):
            return cand, chain
        study.tell(trial, state=_trial_state("FAIL"))  # nothing new, or too slow: not run
    return None, chain


def _trial_state(name: str):
    from optuna.trial import TrialState

    return TrialState[name]


def learn(chain: Chain, cand: Candidate, result: AttemptResult, current: AttemptResult, kept: bool) -> Chain:
    """The chain after a candidate: a kept one is the new base, its step tried again in the
    same direction (the move's other steps dropped); a reseed that scores exactly as its base
    fold by fold shows modules that ignore the seed, so no other seed will differ either."""
    update: dict[str, Any] = {"tried": chain.tried + 1}
    if cand.kind == "reseed" and result.status == "ok" and result.fold_scores and result.fold_scores == current.fold_scores:
        update["reseed"] = False
    if kept:
        # its folder holds the chain's code from now on (a kept rewrite's modules)
        update.update(current=result.attempt, params=dict(cand.params), kept=chain.kept + 1, code_dir=result.dir)
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

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = study_path(run_dir, track)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = _journal(str(path))
    direction = "maximize" if get_metric(metric_name).greater_is_better else "minimize"
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    return optuna.create_study(study_name=name, storage=storage, direction=direction, sampler=sampler, load_if_exists=True)


@lru_cache(maxsize=16)
def _journal(path: str):
    """One storage per journal file and process: it replays only the lines added since its last
    read, where a new one would parse the whole journal at every step (quadratic over a run)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))


def distributions(params: list[Param]) -> dict[str, Any]:
    from optuna.distributions import FloatDistribution, IntDistribution

    return {p.name: IntDistribution(int(p.low), int(p.high), log=p.log) if p.kind is int
            else FloatDistribution(float(p.low), float(p.high), log=p.log) for p in params}


def tell_study(state: RefineState, chain: Chain, cand: Candidate, result: AttemptResult) -> None:
    """Every candidate's outcome goes to the chain's study, so TPE learns from the declared
    steps and reseeds too (a pruned or failed one as such), and no candidate is proposed twice."""
    import optuna

    study = open_study(state["run_dir"], state["track"], chain.study, run_inputs(state["run_dir"])[0].metric, seed=0)
    ok = result.status == "ok" and result.score is not None and math.isfinite(result.score)
    status = _trial_state("COMPLETE" if ok else "PRUNED" if result.status == "pruned" else "FAIL")
    # idempotent: a judge killed after telling and before its checkpoint runs again on resume
    if cand.trial is not None:
        study.tell(cand.trial, result.score if ok else None, state=status, skip_if_finished=True)
        return
    if any(t.user_attrs.get("attempt") == result.attempt for t in study.get_trials(deepcopy=False)):
        return
    moves = searched_params(space_for(state["track"], chain.member), cand.params)
    inside = [p for p in moves if _inside(p, cand.params[p.name])]
    study.add_trial(optuna.trial.create_trial(
        params={p.name: cand.params[p.name] for p in inside}, distributions=distributions(inside),
        value=result.score if ok else None, state=status,
        user_attrs={"key": candidate_key(cand), "attempt": result.attempt, "kind": cand.kind}))


def candidate_key(cand: Candidate) -> str:
    """What makes a candidate new: its params, and its code when a module was rewritten."""
    return _key(cand.params if cand.code is None else {**cand.params, "__code__": sorted(cand.code.items())})


def _inside(p: Param, value: Any) -> bool:
    return p.low <= value <= p.high


def _key(params: dict[str, Any]) -> str:
    return hashlib.sha1(repr(sorted((k, repr(v)) for k, v in params.items())).encode()).hexdigest()[:16]


# -- with an LLM: targeted rewrites of one module, before the parameter search --------------------


def ask_rewrite(client, state: RefineState, ctx: RunContext, chain: Chain,
                seen: set[str]) -> tuple[Candidate | None, Chain, list[LLMCall]]:
    """One request for a rewrite of one module of the chain's best code (model.py first, then
    features.py, alternating); a usable answer is a Candidate with `code`, checked before it
    runs. A failed request ends the rewrites; the parameter search goes on without them."""
    from graph.llm import LLMError, ModuleRewrite, strip_fences
    from prompts.render import MEMORY_ITEMS, refine_messages

    task, profile, blueprint = run_inputs(state["run_dir"])
    focus = ("model", "features")[chain.llm_asked % 2]
    chain = chain.model_copy(update={"llm_asked": chain.llm_asked + 1})
    code = read_modules(Path(chain.code_dir))
    current = chain_attempt(state, chain.current)
    recent = [*state["own"], *range(state["first_candidate"], state["next_attempt"])][-MEMORY_ITEMS:]
    memory = [a for a in (load_attempt(state["run_dir"], state["track"], n) for n in recent) if a is not None]
    try:
        answer = client.ask(
            ModuleRewrite,
            refine_messages(task, profile, plan_of(blueprint, state["track"]), code, current.score, params=chain.params,
                            attempts=memory, focus=focus, base=current,
                            # the rewrite runs as a candidate on what refine has left now (propose's timeout_s)
                            time=attempt_time(candidate_inputs(state, chain.params, run_left_s(state, ctx)), ctx)),
            role="refine", node="refine", track=state["track"], events=ctx.events)
    except LLMError as e:
        ctx.events.emit("refine_llm", track=state["track"], gave_up=str(e)[:200])
        return None, chain.model_copy(update={"llm_given_up": True}), list(e.calls)
    rewrite = answer.value
    source = strip_fences(rewrite.code)
    cand = Candidate(params=dict(chain.params), code={**code, rewrite.module: source}, kind="llm",
                     note=f"LLM rewrite of {rewrite.module}.py: {rewrite.notes.strip()[:150] or 'no notes'}")
    if not source.strip() or source == code.get(rewrite.module) or candidate_key(cand) in seen:
        ctx.events.emit("refine_llm", track=state["track"], skipped=f"no new change to {rewrite.module}.py")
        return None, chain, list(answer.calls)
    return cand, chain, list(answer.calls)
