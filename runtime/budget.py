"""The run's budget: every reserve, deadline and timeout of a run, computed in one place.

The blueprint splits the budget: a final reserve for ensemble, submit and the outputs, a reserve
for refine, and the tracks' shares; from LONG_BUDGET_S on also a reserve for the bags, refine's
last step (the best models with their folds cut several times), and a stacker in the ensemble. The track, debug and refine nodes ask here how long an
attempt, a member or a candidate may run. Plain values and records in, seconds out: the nodes pass
what they read from the graph's state and context (the run's settings, the seconds it has left),
so nothing here knows the graph. What things cost is runtime/costs.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.costs import (
    FINAL_ROW_S,
    MEMBER_CHECK_S,
    SAFETY,
    member_estimates,
    planned_profile,
    side_by_side_speedup,
)
from runtime.fit_time import FitCurve, full_fit_folds, predict
from runtime.records import (
    AttemptResult,
    BaggingPlan,
    Blueprint,
    DataProfile,
    TaskSpec,
    TrackPlan,
    ValidationScheme,
)


class BudgetSettings(Protocol):
    """What the budget reads of the run's settings (graph/settings.py's `Settings`)."""

    time_budget_s: float
    min_attempt_timeout_s: float
    max_attempt_timeout_s: float | None
    final_reserve_share: float
    final_reserve_min_s: float
    refine_reserve_share: float


REFINE_MIN_BUDGET_S = 45.0     # below this budget refine gets no reserve of its own, only what the tracks leave
MEMBER_DEADLINE_FACTOR = 2.0   # a member cell is stopped at this many times its estimate ...
MEMBER_DEADLINE_S = 3.0        # ... plus this (imports, a slow start)
MEMBER_CHECK_DEADLINE_S = 5.0  # a member's check (300 rows) is stopped here, whatever its folds' estimate
MEMBER_MIN_LEFT_S = 1.0        # no member starts with less than this left before the final reserve
MEMBER_MIN_TIMEOUT_S = 1.0     # a member cell's timeout is never below this
ATTEMPT_MIN_FLOOR_S = 5.0      # the floor an attempt always gets is at least this ...
ATTEMPT_FLOOR_SHARE = 0.5      # ... and at most this share of a small budget
HARNESS_DEADLINE_SHARE = 0.9   # the harness stops between folds at this share of its cell's timeout, before the kernel is interrupted
RETRY_ROOM = 0.75              # of a too slow attempt's retry's time, what its folds may plan on (its check, the deadline's margin)
# Of an attempt's seconds, what its check may spend timing its fit on growing samples: code an LLM
# wrote, whose cost nothing planned (to extrapolate, the samples must reach a quarter to an eighth
# of a fold's rows: about 0.4 of a fold's seconds on linear costs, so a fold of a third of the
# attempt, which is too slow for 5 folds, takes 0.13 of it) ...
PROBE_SHARE = 0.15
# ... and the framework's recipes, which the blueprint sized by their cost estimates (one sample:
# a lower bound for the verdict; their first fold measures them anyway)
RECIPE_PROBE_SHARE = 0.02
LLM_SOURCES = ("llm", "debug", "refine")
# The check calls an attempt too slow only when its predicted first cut needs this many times the
# harness's deadline: the extrapolation from samples errs (x0.8..1.8 on linear fits under load, see
# runtime/fit_time.py), and an attempt near its limit is measured on its first fold anyway.
CHECK_MARGIN = 1.5

# Long budgets (minutes to hours): what more time buys beyond searching the same models' parameters.
# AutoGluon's best_quality spends it on bagging every model (k folds, repeated while time lasts) and
# stacking them; refine's search alone bought 0.4 of MAE from 10 s to 5 min where AutoGluon bought
# 0.4-2.0 (issue 33). From this budget on a run keeps a reserve for the bags, the ensemble weighs a
# stacker, and members may run longer than their estimates.
LONG_BUDGET_S = 120.0
BAG_SHARE = 0.25               # of a long budget, kept for the bags: refine's search stops where it begins
BAG_FAMILIES = 3               # the best attempts of at most this many model families are bagged, best first
BAG_CUTS = ((600.0, 3), (float("inf"), 5))  # cuts of the folds per bag: 3 below 10 minutes, 5 from 10 minutes
BAG_MARGIN = 1.15              # a bag is planned on its base's seconds per cut times this (the machine's load swings)
LONG_MEMBER_SHARE = 0.1        # at a long budget a member's cell may run this share of the budget, whatever its estimate
LONG_MEMBER_CHECK_SHARE = 0.05  # ... and its check this share (a loaded machine failed healthy members' checks at 5 s)


# -- the run's reserves ------------------------------------------------------------------------


def final_reserve_s(budget_s: float, settings: BudgetSettings, rows: int = 0) -> float:
    """Kept for ensemble + submit + writing the outputs, whatever the tracks do; `rows` (train +
    test) for the blends' scoring and the files, which grow with them."""
    return max(settings.final_reserve_min_s, settings.final_reserve_share * budget_s, FINAL_ROW_S * rows)


def refine_reserve_s(budget_s: float, settings: BudgetSettings) -> float:
    """Kept for refine's search; refine also gets whatever the tracks leave unused."""
    return settings.refine_reserve_share * budget_s if budget_s >= REFINE_MIN_BUDGET_S else 0.0


def tracks_pool_s(budget_s: float, final_s: float, refine_s: float, bag_s: float = 0.0) -> float:
    """What the reserves leave for the tracks' shares."""
    return max(0.0, budget_s - final_s - refine_s - bag_s)


def long_budget(budget_s: float) -> bool:
    """Whether the budget is long enough for bags and a stacker (LONG_BUDGET_S)."""
    return budget_s >= LONG_BUDGET_S


def bag_reserve_s(budget_s: float) -> float:
    """Kept for the bags at the end of refine: BAG_SHARE of a long budget, nothing below."""
    return BAG_SHARE * budget_s if long_budget(budget_s) else 0.0


def bag_cuts(budget_s: float) -> int:
    """How many times a bag cuts its folds at this budget (BAG_CUTS)."""
    return next(cuts for below, cuts in BAG_CUTS if budget_s < below)


def bag_plan(budget_s: float) -> BaggingPlan | None:
    """The blueprint's bags at this budget; None below LONG_BUDGET_S."""
    if not long_budget(budget_s):
        return None
    return BaggingPlan(reserve_s=round(bag_reserve_s(budget_s), 1), cuts=bag_cuts(budget_s), families=BAG_FAMILIES)


def cuts_made(attempt: AttemptResult, n_folds: int) -> int:
    """How many cuts of the folds an attempt made (a bag continues from them)."""
    return max(1, len(attempt.fold_scores) // max(1, n_folds))


def seconds_per_cut(attempt: AttemptResult, n_folds: int) -> float:
    """What one cut of an attempt's folds took: its folds' seconds (its fit on all rows left out)
    over the cuts it made."""
    return max(0.0, attempt.duration_s - attempt.refit_s) / cuts_made(attempt, n_folds)


def bag_cuts_that_fit(attempt: AttemptResult, n_folds: int, planned_cuts: int, left_s: float) -> int:
    """The cuts a bag of `attempt` can make in `left_s`, the attempt's own cuts taken over (a bag
    fits only the further ones): the plan's, fewer when time is short; 0 when that adds no cut."""
    made = cuts_made(attempt, n_folds)
    per_cut = seconds_per_cut(attempt, n_folds) * BAG_MARGIN
    more = int(left_s // per_cut) if per_cut > 0 else planned_cuts
    cuts = min(planned_cuts, made + more)
    return cuts if cuts > made else 0


def bag_need_s(bases: Iterable[AttemptResult], n_folds: int, plan: BaggingPlan | None) -> float:
    """What the planned bags of these attempts (each family's best, best first) need for their
    further cuts, whole cuts only, within the plan's reserve: what refine's search leaves them (a
    5-minute run kept 75 s for a bag whose cuts took 61 s each, and left 41 s unused)."""
    if plan is None:
        return 0.0
    room, need = plan.reserve_s, 0.0
    for a in list(bases)[:plan.families]:
        per_cut = seconds_per_cut(a, n_folds) * BAG_MARGIN
        more = min(max(0, plan.cuts - cuts_made(a, n_folds)), int(room // per_cut) if per_cut > 0 else 0)
        need, room = need + more * per_cut, room - more * per_cut
    return need


def tracks_part(blueprint: Blueprint) -> float:
    """The share of the budget the plan's tracks split between them: what the reserves above (and
    what the rules lent a track of refine's) leave. An LLM's plan splits this, by its ratios."""
    return sum(p.time_share for p in blueprint.tracks)


def run_left_s(remaining_s: float, blueprint: Blueprint, profile: DataProfile, settings: BudgetSettings) -> float:
    """Seconds the run has left before its final reserve (ensemble, submit, outputs): what a
    member, a refine candidate and refine itself may use."""
    return remaining_s - final_reserve_s(blueprint.budget_s, settings, scored_rows(blueprint, profile) + profile.n_test)


def scored_rows(blueprint: Blueprint, profile: DataProfile) -> int:
    """The training rows the run cross-validates: all of them, or a large table's planned sample."""
    return blueprint.data.rows if blueprint.data is not None else profile.n_train


# -- a track's share ---------------------------------------------------------------------------


def share_s(plan: TrackPlan, blueprint: Blueprint) -> float:
    """The track's share of the budget, in seconds: what the plan gives it, and what the tracks
    behind it wait for at most (graph/turns.py)."""
    return plan.time_share * blueprint.budget_s


def share_of(seconds: float, blueprint: Blueprint) -> float:
    """The time share that gives `seconds` (a refine candidate runs on the time refine has left)."""
    return seconds / max(blueprint.budget_s, 1.0)


def share_left_s(plan: TrackPlan, blueprint: Blueprint, attempts: Iterable[AttemptResult]) -> float:
    """Seconds of the track's share of the budget its attempts have not used."""
    return share_s(plan, blueprint) - sum(a.duration_s for a in attempts)


# -- members ------------------------------------------------------------------------------------


def member_deadline_s(task: TaskSpec, profile: DataProfile, validation: ValidationScheme, name: str,
                      budget_s: float = 0.0, *, slowness: float = 1.0) -> float:
    """The longest one of a member's cells (its check, its folds) may take: MEMBER_DEADLINE_FACTOR
    times its estimate, every cut of the folds included, at the machine's measured `slowness`; at a
    long budget at least LONG_MEMBER_SHARE of it, so members the estimates price low still run as
    the budget grows (a 30-minute run: 3 minutes each). Not more at 5 minutes: on a loaded machine
    a fifth of it let extra-trees take 48 s for a model 2.4 MAE behind LightGBM, in no blend, that
    refine's search then lacked."""
    estimate = member_estimates(task, profile, validation.n_folds).get(name)
    if estimate is None:
        return float("inf")
    deadline = slowness * (MEMBER_DEADLINE_FACTOR * ((estimate - MEMBER_CHECK_S) * validation.repeats + MEMBER_CHECK_S)
                           + MEMBER_DEADLINE_S)
    return max(deadline, LONG_MEMBER_SHARE * budget_s) if long_budget(budget_s) else deadline


def member_check_deadline_s(blueprint: Blueprint) -> float:
    """The longest a member's check may take: MEMBER_CHECK_DEADLINE_S on a free machine, longer on
    a slow one (a fixed 5 s failed healthy members' checks under load: linear and knn on 751
    columns, CatBoost on a categorical table), and at a long budget at least
    LONG_MEMBER_CHECK_SHARE of it."""
    floor = LONG_MEMBER_CHECK_SHARE * blueprint.budget_s if long_budget(blueprint.budget_s) else 0.0
    return max(MEMBER_CHECK_DEADLINE_S * blueprint.slowness, floor)


def member_may_start(run_left_s: float, need_s: float | None = None, share_left_s: float = float("inf")) -> bool:
    """Whether a member may start: one the plan holds while the run has MEMBER_MIN_LEFT_S before its
    final reserve; one the plan had no room for (it needs `need_s`) only while the track's share and
    the run both still have those seconds (the track's own attempts ran faster than estimated)."""
    if need_s is None:
        return run_left_s >= MEMBER_MIN_LEFT_S
    return need_s <= min(share_left_s, run_left_s)


# -- one attempt's timeout ----------------------------------------------------------------------


def attempt_timeout_s(settings: BudgetSettings, remaining_s: float, task: TaskSpec, profile: DataProfile,
                      blueprint: Blueprint, plan: TrackPlan, attempts: list[AttemptResult], *, member: str | None = None,
                      needs_s: float | None = None, check: bool = False) -> float:
    """What is left of the track's share of the budget, and never more than the run has left.

    A member is an extra beside the track's own scored attempt, so it never waits past the run's
    final reserve nor a few times its estimate, and its check (`check`) never past
    member_check_deadline_s: CatBoost on 43 categorical columns spent 9 s on the check's 300 rows
    and ran 2x over its estimate into the track's whole share, where refine had nothing left.
    `needs_s`: what a too slow attempt's retry needs at the speed measured. The plan's lead
    member, run before anything scored, is the track's first attempt and gets what that gets."""
    share_left = share_left_s(plan, blueprint, attempts)
    most = [settings.max_attempt_timeout_s] if settings.max_attempt_timeout_s is not None else []
    scored = any(a.status == "ok" for a in attempts)
    if member and (member != plan.lead or scored):
        caps = [share_left, run_left_s(remaining_s, blueprint, profile, settings),
                member_deadline_s(task, planned_profile(profile, scored_rows(blueprint, profile)), blueprint.validation, member,
                                  blueprint.budget_s, slowness=blueprint.slowness)]
        caps += [member_check_deadline_s(blueprint)] if check else []
        return max(MEMBER_MIN_TIMEOUT_S, min(caps + most))
    timeout = min(share_left, remaining_s)
    if member and not scored:
        # the lead, the cheapest way to a first score here: the seconds its estimate says it
        # needs at the machine's speed, as a too slow attempt's retry gets them
        needs_s = max(needs_s or 0.0, blueprint.slowness * SAFETY * member_estimates(task, profile, blueprint.validation.n_folds)
                      .get(member, 0.0) * blueprint.validation.repeats)
    if needs_s and not any(a.status == "ok" for a in attempts):
        # a too slow attempt's retry, with nothing scored yet: the seconds its measured speed
        # says it needs, at most the whole budget again, rather than a third try that cannot end
        timeout = max(timeout, min(needs_s, settings.time_budget_s))
    timeout = min([timeout, *most])
    if scored:
        # the track has a score (its lead member's): its own recipe runs on the time left, no floor
        return max(MEMBER_MIN_TIMEOUT_S, timeout)
    return max(attempt_floor_s(settings), timeout)


def attempt_floor_s(settings: BudgetSettings) -> float:
    """The least a track's attempt gets while nothing is scored, whatever the clock says: the
    floor, but never more than half a small budget (a 10 s run must not wait 20 s on one attempt;
    the plan shrinks for small budgets instead)."""
    return min(settings.min_attempt_timeout_s, max(ATTEMPT_MIN_FLOOR_S, ATTEMPT_FLOOR_SHARE * settings.time_budget_s))


def harness_deadline_s(timeout_s: float) -> float:
    """The harness's own deadline inside a cell of `timeout_s`: it stops between folds (keeping the
    cuts it finished, or measuring its speed) before the kernel would be interrupted."""
    return timeout_s * HARNESS_DEADLINE_SHARE


def retry_room_s(timeout_s: float) -> float:
    """What a too slow attempt's retry may plan its folds on, of the timeout it gets."""
    return RETRY_ROOM * timeout_s


def retry_needs_s(folds_s: float) -> float:
    """The timeout a retry whose folds take `folds_s` needs: the harness's margin (its deadline is a
    share of the cell's) and its check on top."""
    return folds_s / HARNESS_DEADLINE_SHARE + MEMBER_CHECK_S


# -- what an attempt's seconds mean: the prompts' time, the check's verdict ----------------------


@dataclass(frozen=True)
class AttemptTime:
    """The seconds an attempt has and what they imply for one fold: what every prompt that asks for
    code is told (prompts/render.py formats it, computing nothing), and what the check's prediction
    is held against."""

    attempt_s: float      # the attempt's cell may run this long (attempt_timeout_s)
    deadline_s: float     # the harness stops between folds here (harness_deadline_s)
    n_folds: int
    repeats: int
    refit: bool           # one more fit on all rows, when its time allows
    fold_rows: int        # a fold's training part
    train_rows: int       # the rows its fit sees: all of them, or the plan's sample (max_train_rows)
    valid_rows: int       # a fold's held-out rows
    test_rows: int
    columns: int          # the table's feature columns
    cores: int            # the threads the track's kernel computes with
    gpu: bool
    slots: int            # tracks that compute at once
    tracks: tuple[str, ...]  # the plan's tracks, in the order they take turns
    track: str
    share_s: float        # the track's share of the run's budget
    share_left_s: float   # what its attempts have not used of it
    run_left_s: float     # the run's seconds before its final reserve (ensemble, submit)

    @property
    def fits(self) -> int:
        return self.n_folds * self.repeats

    @property
    def fold_s(self) -> float:
        """What one fold may take for the whole plan to end: every cut, and the fit on all rows."""
        return self.deadline_s / (self.fits + (full_fit_folds(self.n_folds) if self.refit else 0.0))

    @property
    def first_cut_fold_s(self) -> float:
        """Past this a fold is too slow for even the first cut's folds: the attempt is stopped."""
        return self.deadline_s / self.n_folds

    @property
    def takes_turns(self) -> bool:
        return len(self.tracks) > self.slots


def attempt_time(settings: BudgetSettings, remaining_s: float, task: TaskSpec, profile: DataProfile,
                 blueprint: Blueprint, plan: TrackPlan, attempts: list[AttemptResult], *, cores: int, gpu: bool,
                 slots: int, member: str | None = None, needs_s: float | None = None) -> AttemptTime:
    """The attempt's seconds (`attempt_timeout_s`) and the plan's folds, rows, cores and turns."""
    timeout = attempt_timeout_s(settings, remaining_s, task, profile, blueprint, plan, attempts, member=member,
                                needs_s=needs_s)
    v = blueprint.validation
    k = max(2, v.n_folds)
    rows = profile.n_train * (k - 1) // k
    limit = (plan.members.get(member, {}) if member else plan.params).get("max_train_rows")
    return AttemptTime(
        attempt_s=timeout, deadline_s=harness_deadline_s(timeout), n_folds=k, repeats=max(1, v.repeats), refit=v.refit,
        fold_rows=rows, train_rows=min(rows, int(limit)) if limit else rows, valid_rows=profile.n_train - rows, test_rows=profile.n_test,
        columns=len(profile.columns), cores=cores, gpu=gpu, slots=slots, tracks=tuple(p.track for p in blueprint.tracks),
        track=plan.track, share_s=share_s(plan, blueprint), share_left_s=share_left_s(plan, blueprint, attempts),
        run_left_s=run_left_s(remaining_s, blueprint, profile, settings))


def probe(time: AttemptTime, source: str) -> dict[str, Any]:
    """How the check times the attempt's fit (runtime/harness.py `_fit_timing`): the seconds it
    may spend, and the samples it takes at least while any are left."""
    llm = source in LLM_SOURCES
    return {"seconds": (PROBE_SHARE if llm else RECIPE_PROBE_SHARE) * time.attempt_s, "min_samples": 2 if llm else 1}


def cut_short(timing: dict[str, Any], cell_s: float) -> dict[str, Any]:
    """The timing of a check whose cell ran out of its seconds while it timed one fit (the
    harness wrote since when that fit ran): the fold's fit takes at least what that one had run
    (a fold has as many rows or more), and at least what the fits timed before predict."""
    running = max(0.0, cell_s - float(timing["probing"].get("since_s") or 0.0))
    points = [(int(m), float(t)) for m, t in timing.get("points") or []]
    so_far = predict(points, int(timing["train_rows"])).seconds if points else 0.0
    return {**timing, "fit_s": max(running, so_far), "kind": "cut short"}


def predicted_fold_s(timing: dict[str, Any] | None, n_folds: int) -> float | None:
    """The wall seconds of one fold the check's timing predicts (`timing`: runtime/harness.py's):
    one fit's seconds, less what fitting folds side by side saves."""
    if not timing or timing.get("fit_s") is None:
        return None
    return float(timing["fit_s"]) / side_by_side_speedup(int(timing.get("at_once") or 1), n_folds)


def too_slow(timing: dict[str, Any] | None, time: AttemptTime) -> str | None:
    """The check's verdict on the time its sample fits predict: None when the first cut's folds fit
    the attempt's deadline (CHECK_MARGIN given for the prediction's error), else what debug reads:
    the seconds per fold needed and allowed, how the check knows, and what to change."""
    fold = predicted_fold_s(timing, time.n_folds)
    if fold is None:
        return None
    setup = float(timing.get("setup_s") or 0.0)
    if setup + time.n_folds * fold <= CHECK_MARGIN * time.deadline_s:
        return None
    allowed = max(0.0, time.deadline_s - setup) / time.n_folds
    kind = timing.get("kind")
    points: Sequence = timing.get("points") or []
    needed = "more than" if kind in ("at least", "cut short") else "~"
    encode = f", after ~{setup:.0f} s of Features.encode on all rows" if setup >= 0.5 else ""
    lines = [(f"too slow: {needed}{' ' if needed != '~' else ''}{fold:.1f} s per fold needed, {allowed:.1f} s allowed "
              f"(seen by the check before any fold started: {time.n_folds} folds of {time.train_rows:,} training rows "
              f"must end within the attempt's {time.deadline_s:.0f} s{encode}).")]
    sampled = ", ".join(f"{int(m):,} rows {float(t):.2f} s" for m, t in points)
    if kind == "measured":
        lines.append(f"It fitted one fold at its full size: {sampled}.")
    elif kind == "extrapolated":
        growth = ("in proportion to the rows" if float(timing["exponent"]) == 1.0
                  else f"as rows^{float(timing['exponent']):.1f}")
        lines.append(f"It timed one fold's fit on samples ({sampled}): ~{float(timing['fixed_s']):.2g} s whatever the "
                     f"rows, the rest growing {growth}.")
    elif kind == "cut short":
        lines.append(f"Its timing of one fold's fit on {int(timing['probing']['rows']):,} rows had not ended when the "
                     f"check's own {time.attempt_s:.0f} s ran out" + (f" (before: {sampled})." if sampled else "."))
    else:
        lines.append(f"One fold's fit on fewer rows already took that long ({sampled}).")
    if setup >= time.deadline_s:
        lines.append(f"Features.encode alone needs ~{setup:.0f} s: encode less (shorter texts, smaller inputs, a "
                     "lighter encoder), or nothing in encode.")
        return " ".join(lines)
    rows = 0
    if kind in ("measured", "extrapolated") and timing.get("per_row_s") is not None:
        # the rows whose fit takes what a fold may (side by side, that much more)
        curve = FitCurve(float(timing["fixed_s"]), float(timing["per_row_s"]), float(timing["exponent"]))
        rows = curve.rows_for(allowed * float(timing["fit_s"]) / fold)
    sample = (f"params max_train_rows={rows:,}" if 0 < rows < time.train_rows else "params max_train_rows") + \
        " (the harness samples each fold's training rows; every row is still predicted)"
    lines.append(f"Make one fold {'~' if needed == '~' else 'over '}{fold / max(allowed, 1e-9):.1f}x cheaper: fewer "
                 f"boosting rounds or a higher learning rate, fewer or cheaper features, a model whose cost grows less "
                 f"with the rows, or a sample of each fold's rows: {sample}.")
    return " ".join(lines)
