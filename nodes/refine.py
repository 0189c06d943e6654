"""refine: with the time left, improve the best track and keep a change only when the
cross-validated score improves.

Offline, refine searches the best track's parameters: a budget-aware hill climb over the
parameters the track's modules document, starting from the best attempt's. Each candidate is
a new attempt of that track (source "refine"), run in the track's own kernel through the same
check and execute nodes as every other attempt, scored by the harness on the same folds. A
candidate becomes the new base only when `metric.better` says its score beats the base's;
every candidate stays on the leaderboard, and the ensemble may still use it as a member.

`propose_candidates` is the seam for an LLM: with `runtime.context.llm` set, a rewrite of
one module can be proposed there (a Candidate with `code`), and it runs through the same
loop, with the check before execution that changed code needs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.llm import client_for
from graph.state import AttemptResult, IMLState, TrackPlan, TrackResult
from nodes.blueprint import documented_params, final_reserve_s
from nodes.check import check
from nodes.execute import execute
from nodes.track import attempt_dir, summarize_track, write_modules
from runtime.metrics import Metric, get_metric

MAX_CANDIDATES = 60  # per base attempt: each model family the search moves on to gets as many
MAX_RESEEDS = 8  # the best params with other seeds: ensemble members that average out bagging noise
MIN_CANDIDATE_S = 2.0  # what a candidate costs at least (a cell, a fit, writing files)


@dataclass
class Candidate:
    """One thing to try: the base attempt's modules with `params`, or `code` when a module
    was rewritten. `cost` is its expected duration relative to the base attempt's."""

    params: dict[str, Any]
    note: str
    code: dict[str, str] | None = None
    cost: float = 1.0
    move: "Move | None" = None
    step: int = 0
    result: AttemptResult | None = None  # set by refine after the run, for proposers that learn from it


@dataclass(frozen=True)
class Move:
    """A change of one parameter: values from the current one, and the relative cost."""

    param: str
    kind: str  # "scale": multiply; "shift": add; "set": a fixed value
    steps: tuple[float, ...]
    low: float | None = None
    high: float | None = None
    integer: bool = False
    cost: tuple[float, ...] = ()

    def value(self, current: Any, step: int) -> Any | None:
        """The parameter after step `step` from `current`, or None when it would not change."""
        amount = self.steps[step]
        value = current * amount if self.kind == "scale" else current + amount if self.kind == "shift" else amount
        if self.low is not None:
            value = max(self.low, value)
        if self.high is not None:
            value = min(self.high, value)
        value = int(round(value)) if self.integer else round(float(value), 6)
        return None if value == current else value

    def step_cost(self, step: int) -> float:
        return self.cost[step] if step < len(self.cost) else 1.0


# The parameters worth moving, most promising first, for any module that documents them.
# A move is used only when the base attempt's modules document the parameter and the base's
# params hold a numeric value for it (the blueprint writes the recipe's defaults explicitly).
MOVES: tuple[Move, ...] = (
    # LightGBM (traditional)
    Move("num_leaves", "scale", (2.0, 0.5), low=4, high=255, integer=True, cost=(1.4, 0.8)),
    Move("min_child_samples", "scale", (2.5, 0.4), low=2, high=200, integer=True),
    Move("colsample_bytree", "shift", (-0.3, 0.2), low=0.2, high=1.0),
    Move("learning_rate", "scale", (0.5,), low=0.005, high=0.3, cost=(2.0,)),
    Move("reg_lambda", "scale", (10.0, 0.1), low=0.0, high=100.0),
    Move("subsample", "shift", (-0.2, 0.15), low=0.4, high=1.0),
    Move("min_data_per_group", "scale", (0.3, 3.0), low=2, high=500, integer=True),
    Move("te_smoothing", "scale", (0.25, 4.0), low=0.5, high=500),
    Move("text_C", "scale", (3.0, 0.33), low=0.01, high=100),
    # linear heads and networks (pretrained, neural)
    Move("C", "scale", (3.0, 0.33), low=1e-4, high=1e4),
    Move("alpha", "scale", (0.33, 3.0), low=1e-6, high=1e4),
    Move("dropout", "shift", (0.15, -0.1), low=0.0, high=0.6),
    Move("weight_decay", "scale", (10.0, 0.1), low=0.0, high=1.0),
    Move("lr", "scale", (0.5, 2.0), low=1e-5, high=0.1, cost=(1.3, 0.9)),
    Move("hidden", "scale", (2.0, 0.5), low=16, high=2048, integer=True, cost=(1.5, 0.8)),
    Move("epochs", "scale", (2.0,), low=1, high=500, integer=True, cost=(2.0,)),
)


def refine(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    tracks: dict[str, TrackResult] = state.get("tracks", {}) or {}
    metric = get_metric(state["task"].metric)
    best = best_track(tracks, metric)
    if best is None:
        ctx.events.emit("refine", skipped="no track produced a score")
        return {}
    name = best.track
    plan = next((p for p in state["blueprint"].tracks if p.track == name), None)
    if plan is None or best.best is None:
        return {}
    reserve = final_reserve_s(state["blueprint"].budget_s)
    attempts = list(best.attempts)
    champion, tried, kept, calls = best.best, 0, 0, {}
    stopped = "time"
    # The best attempt first; when its search runs dry with time left, the best attempt of each
    # other model family of the track (the zoo's members): the ensemble blends them, so a better
    # member pays even when it does not become the best.
    for i, base in enumerate(refine_bases(best, metric)):
        code = read_modules(Path(base.dir))
        proposer = propose_candidates(state, ctx, plan, base, code, metric) if i == 0 else offline_search(base, code)
        search = search_from(state, runtime, plan, base, code, proposer, attempts, reserve, MAX_CANDIDATES)
        tried, kept = tried + search.tried, kept + search.kept
        calls = {**calls, **llm_usage_of(proposer)}
        if i == 0 or beyond_fold_noise(metric, search.current, champion):
            champion = search.current
        stopped = search.stopped
        if stopped == "time":
            break
    # No kernel computes after refine: free their memory before ensemble and submit (a later
    # use, e.g. a resumed run, starts them again).
    ctx.close()
    if tried == 0:
        ctx.events.emit("refine", track=name, skipped=f"no candidate fits the {max(0.0, ctx.remaining_s() - reserve):.0f} s left")
        return calls
    result = summarize_track(name, attempts, metric)
    if champion.score is not None and result.best_attempt != champion.attempt:
        # a candidate that scored higher only within fold noise is not the track's best
        result = result.model_copy(update={"best_attempt": champion.attempt, "score": champion.score})
    left = max(0.0, ctx.remaining_s() - reserve)
    ctx.events.emit("refine_done", track=name, tried=tried, kept=kept, base_score=best.best.score, best_score=result.score,
                    stopped=stopped if left > MIN_CANDIDATE_S else "time", left_s=round(left, 1))
    return {"tracks": {name: result}, **calls}


@dataclass
class SearchOutcome:
    current: AttemptResult
    tried: int
    kept: int
    stopped: str  # "time", "candidates" (MAX_CANDIDATES from this base) or "nothing left to try"


def search_from(state: IMLState, runtime: Runtime[RunContext], plan: TrackPlan, base: AttemptResult,
                code: dict[str, str], proposer, attempts: list[AttemptResult], reserve: float,
                max_candidates: int) -> SearchOutcome:
    """The candidates one proposer has from one base attempt, while time lasts; `attempts` grows."""
    ctx = runtime.context
    metric = get_metric(state["task"].metric)
    current, tried, kept = base, 0, 0
    while True:
        if tried >= max_candidates:
            return SearchOutcome(current, tried, kept, "candidates")
        left = ctx.remaining_s() - reserve
        # durations swing with the machine's load: plan with the slower of the base and the
        # current best, so the last candidate does not overrun the budget
        typical = max(MIN_CANDIDATE_S, current.duration_s or 0.0, base.duration_s or 0.0)
        if left < typical * 0.8:
            return SearchOutcome(current, tried, kept, "time")  # not even a cheaper-than-usual candidate would finish
        cand = proposer.next()
        if cand is None:
            return SearchOutcome(current, tried, kept, "nothing left to try")
        if max(MIN_CANDIDATE_S, typical * cand.cost) * 1.25 > left:
            proposer.feedback(cand, kept=False)  # too slow for the time left; a cheaper one may fit
            continue
        result = run_candidate(state, runtime, plan, cand, code, attempt=max(a.attempt for a in attempts) + 1, timeout=left)
        result = result.model_copy(update={"member": base.member})  # the family it refines
        attempts.append(result)
        cand.result = result
        tried += 1
        improved = result.status == "ok" and result.score is not None and beyond_fold_noise(metric, result, current)
        if isinstance(proposer, ParamSearch):
            proposer.learn(cand, result, current)
        proposer.feedback(cand, kept=improved)
        ctx.events.emit("refine", track=plan.track, attempt=result.attempt, change=cand.note, status=result.status,
                        score=result.score, best=current.score, kept=improved, duration_s=result.duration_s,
                        base=base.attempt)
        if improved:
            current, kept = result, kept + 1
            if cand.code is not None:
                code = cand.code


def refine_bases(track: TrackResult, metric: Metric) -> list[AttemptResult]:
    """The track's best attempt, then the best scored attempt of each other model family
    (`member`; the track's own recipe and its repairs are one family), best first."""
    best_of: dict[str | None, AttemptResult] = {}
    for a in track.attempts:
        if a.status != "ok" or a.score is None or math.isnan(a.score):
            continue
        family = a.member
        if family not in best_of or metric.better(a.score, best_of[family].score):
            best_of[family] = a
    first = track.best
    others = sorted((a for a in best_of.values() if first is None or a.member != first.member),
                    key=lambda a: a.score, reverse=metric.greater_is_better)
    return ([first] if first is not None else []) + others


def offline_search(base: AttemptResult, code: dict[str, str]) -> "ParamSearch":
    return ParamSearch(base.params, searchable(code, base.params), seed=int(base.params.get("seed", 0) or 0))


def best_track(tracks: dict[str, TrackResult], metric: Metric) -> TrackResult | None:
    scored = [t for t in tracks.values() if t.status == "ok" and t.score is not None and not math.isnan(t.score)]
    if not scored:
        return None
    top = scored[0]
    for t in scored[1:]:
        if metric.better(t.score, top.score):
            top = t
    return top


def read_modules(folder: Path) -> dict[str, str]:
    return {m: (folder / f"{m}.py").read_text() for m in ("features", "model")}


def propose_candidates(state: IMLState, ctx: RunContext, plan: TrackPlan, base: AttemptResult,
                       code: dict[str, str], metric: Metric) -> "ParamSearch":
    """What refine tries, as an object with next() -> Candidate | None and feedback(cand, kept).

    Offline: a parameter search over what the base attempt's modules document. This is the
    seam for the LLM branch: with ctx.llm set, a proposer that asks for a rewrite of one
    module (prompts/refine.md) returns Candidate(code=...) and falls back to this search
    when it has nothing usable; refine's loop, its time accounting and the keep-only-if-better
    rule stay the same.
    """
    search = offline_search(base, code)
    client = client_for(ctx)
    if client is None:
        return search
    return LLMRewrites(client, state, ctx, plan, base, code, search)


def searchable(code: dict[str, str], params: dict[str, Any]) -> list[Move]:
    """The moves whose parameter the modules document and the base params hold as a number."""
    documented: set[str] = set()
    for source in code.values():
        documented |= documented_params(source)
    return [m for m in MOVES if m.param in documented and isinstance(params.get(m.param), (int, float))
            and not isinstance(params.get(m.param), bool)]


class ParamSearch:
    """Coordinate hill climbing, then random pairs of moves and reseeds around the current best.

    The first pass tries each move's steps once, in order of promise, from the current best
    params. A kept step becomes the new base and is tried again in the same direction (the
    move's other steps are dropped). After the first pass come, in turn, random
    two-parameter changes and the current best with another `seed` (when the modules read
    one), until the caller stops asking (time) or nothing new is left. A reseed is rarely
    kept, but its predictions differ from the best's by the randomness of bagging and
    column sampling alone: the ensemble averages such members and cuts that variance.
    """

    def __init__(self, base: dict[str, Any], moves: list[Move], seed: int = 0):
        self.current = dict(base)
        self.moves = moves
        self.pending: list[tuple[Move, int]] = [(m, i) for m in moves for i in range(len(m.steps))]
        self.seen: set[str] = {_key(base)}
        self.rng = random.Random(seed)
        self.reseed = isinstance(base.get("seed"), int) and not isinstance(base.get("seed"), bool)
        self.reseeds = 0
        self.turn = 0

    def next(self) -> Candidate | None:
        while self.pending:
            move, step = self.pending.pop(0)
            value = move.value(self.current[move.param], step)
            if value is None:
                continue
            cand = Candidate(params={**self.current, move.param: value}, cost=move.step_cost(step), move=move, step=step,
                             note=f"{move.param} {self.current[move.param]} -> {value}")
            if self._fresh(cand):
                return cand
        self.turn += 1
        makers = (self._reseeded, self._random_pair) if self.turn % 2 == 0 else (self._random_pair, self._reseeded)
        for make in makers:
            cand = make()
            if cand is not None:
                return cand
        return None

    def _reseeded(self) -> Candidate | None:
        while self.reseed and self.reseeds < MAX_RESEEDS:
            self.reseeds += 1
            seed = int(self.current["seed"]) + 1000 * self.reseeds
            cand = Candidate(params={**self.current, "seed": seed}, note=f"seed {self.current['seed']} -> {seed}")
            if self._fresh(cand):
                return cand
        return None

    def _random_pair(self) -> Candidate | None:
        if len(self.moves) < 2:
            return None
        for _ in range(50):
            params, notes, cost = dict(self.current), [], 1.0
            for move in self.rng.sample(self.moves, 2):
                step = self.rng.randrange(len(move.steps))
                value = move.value(self.current[move.param], step)
                if value is not None:
                    params[move.param] = value
                    notes.append(f"{move.param} {self.current[move.param]} -> {value}")
                    cost *= move.step_cost(step)
            cand = Candidate(params=params, note=", ".join(notes), cost=cost)
            if notes and self._fresh(cand):
                return cand
        return None

    def learn(self, cand: Candidate, result: AttemptResult, current: AttemptResult) -> None:
        """A reseed that scores exactly as its base, fold by fold, shows modules that ignore the
        seed (a linear model, a deterministic encoder): no other seed will differ either."""
        if cand.note.startswith("seed ") and result.status == "ok" and result.fold_scores \
                and result.fold_scores == current.fold_scores:
            self.reseed = False

    def feedback(self, cand: Candidate, kept: bool) -> None:
        if not kept:
            return
        self.current = dict(cand.params)
        if cand.move is not None:
            self.pending = [(m, i) for m, i in self.pending if m is not cand.move]
            self.pending.insert(0, (cand.move, cand.step))

    def _fresh(self, cand: Candidate) -> bool:
        key = _key(cand.params)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


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
    gain = (a - b) if metric.greater_is_better else (b - a)
    return bool(gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain)))


def run_candidate(state: IMLState, runtime: Runtime[RunContext], plan: TrackPlan, cand: Candidate,
                  base_code: dict[str, str], attempt: int, timeout: float) -> AttemptResult:
    """One candidate as a new attempt of the track, through the track's own nodes.

    Changed code goes through `check` first (static rules, then the sample run in the
    kernel); unchanged code with new params is written to the attempt's folder and goes
    straight to `execute`, which runs the harness and reads its score. The candidate's share
    of the budget is the time refine has left, so execute's deadline is refine's.
    """
    budget = max(state["blueprint"].budget_s, 1.0)
    cand_plan = plan.model_copy(update={"params": cand.params, "time_share": timeout / budget})
    track_state: dict[str, Any] = {
        "run_dir": state["run_dir"], "task": state["task"], "profile": state["profile"],
        "blueprint": state["blueprint"], "plan": cand_plan, "code": cand.code or base_code,
        "source": "refine", "attempt": attempt, "attempts": [], "last_error": None,
    }
    if cand.code is not None:
        update = check(track_state, runtime)
        if update.get("last_error") is not None:
            return update["attempts"][0]
    else:
        write_modules(attempt_dir(track_state), base_code)
    update = execute(track_state, runtime)
    return update["attempts"][0]


def _key(params: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in params.items()))


# -- with an LLM: targeted rewrites of one module, then the parameter search --------------------

MAX_LLM_REWRITES = 3


class LLMRewrites:
    """Asks the LLM for a targeted rewrite of one module of the current best code (model.py
    first, then features.py, alternating), up to MAX_LLM_REWRITES times; each is a Candidate
    with `code`, checked, cross-validated and kept only if the score improves. Then, or as
    soon as the LLM gives no usable answer, the parameter search goes on from the best so far.
    `calls` holds the LLM requests for the run's `llm_usage`."""

    def __init__(self, client, state: IMLState, ctx: RunContext, plan: TrackPlan, base: AttemptResult,
                 code: dict[str, str], search: ParamSearch, max_rewrites: int = MAX_LLM_REWRITES):
        self.client, self.state, self.ctx, self.plan = client, state, ctx, plan
        self.code, self.score = dict(code), base.score
        self.search = search
        self.max_rewrites = max_rewrites
        self.asked = 0
        self.given_up = False
        self.tried: set[str] = set()  # rewrites already run, so a repeated answer is not run again
        self.calls: list = []
        track = state.get("tracks", {}).get(plan.track)
        self.memory: list[AttemptResult] = list(track.attempts) if track is not None else [base]

    def next(self) -> Candidate | None:
        while not self.given_up and self.asked < self.max_rewrites:
            cand = self._ask()
            if cand is not None:
                return cand
        return self.search.next()

    def _ask(self) -> Candidate | None:
        from graph.llm import LLMError, ModuleRewrite, strip_fences
        from prompts.render import refine_messages

        focus = ("model", "features")[self.asked % 2]
        self.asked += 1
        task, profile = self.state["task"], self.state["profile"]
        try:
            answer = self.client.ask(
                ModuleRewrite,
                refine_messages(task, profile, self.plan, self.code, self.score, params=self.search.current,
                                attempts=self.memory, focus=focus),
                role="refine", node="refine", track=self.plan.track, events=self.ctx.events)
        except LLMError as e:
            self.calls += e.calls
            self.given_up = True
            self.ctx.events.emit("refine_llm", track=self.plan.track, gave_up=str(e)[:200])
            return None
        self.calls += answer.calls
        rewrite = answer.value
        source = strip_fences(rewrite.code)
        code = {**self.code, rewrite.module: source}
        if not source.strip() or source == self.code.get(rewrite.module) or repr(sorted(code.items())) in self.tried:
            self.ctx.events.emit("refine_llm", track=self.plan.track, skipped=f"no new change to {rewrite.module}.py")
            return None
        self.tried.add(repr(sorted(code.items())))
        note = f"LLM rewrite of {rewrite.module}.py: {rewrite.notes.strip()[:150] or 'no notes'}"
        return Candidate(params=dict(self.search.current), note=note, code=code)

    def feedback(self, cand: Candidate, kept: bool) -> None:
        if cand.code is None:
            self.search.feedback(cand, kept)
        elif kept:
            self.code = dict(cand.code)
        if cand.result is not None:
            self.memory.append(cand.result)
            if kept:
                self.score = cand.result.score


def llm_usage_of(proposer) -> dict:
    calls = getattr(proposer, "calls", None)
    return {"llm_usage": calls} if calls else {}
