"""The run's budget: every reserve, deadline and timeout of a run, computed in one place.

The blueprint splits the budget: a final reserve for ensemble, submit and the outputs, a reserve
for refine, and the tracks' shares; from LONG_BUDGET_S on also a reserve for the bags, refine's
last step (the best models with their folds cut several times), and a stacker in the ensemble. The track, debug and refine nodes ask here how long an
attempt, a member or a candidate may run. Plain values and records in, seconds out: the nodes pass
what they read from the graph's state and context (the run's settings, the seconds it has left),
so nothing here knows the graph. What things cost is runtime/costs.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from runtime.costs import FINAL_ROW_S, MEMBER_CHECK_S, member_estimates
from runtime.records import AttemptResult, BaggingPlan, Blueprint, DataProfile, TaskSpec, TrackPlan, ValidationScheme


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


def run_left_s(remaining_s: float, blueprint: Blueprint, profile: DataProfile, settings: BudgetSettings) -> float:
    """Seconds the run has left before its final reserve (ensemble, submit, outputs): what a
    member, a refine candidate and refine itself may use."""
    return remaining_s - final_reserve_s(blueprint.budget_s, settings, profile.n_train + profile.n_test)


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
                      budget_s: float = 0.0) -> float:
    """The longest one of a member's cells (its check, its folds) may take: MEMBER_DEADLINE_FACTOR
    times its estimate, every cut of the folds included; at a long budget at least LONG_MEMBER_SHARE
    of it, so members the estimates price low still run as the budget grows (a 30-minute run: 3
    minutes each). Not more at 5 minutes: on a loaded machine a fifth of it let extra-trees take
    48 s for a model 2.4 MAE behind LightGBM, in no blend, that refine's search then lacked."""
    estimate = member_estimates(task, profile, validation.n_folds).get(name)
    if estimate is None:
        return float("inf")
    deadline = MEMBER_DEADLINE_FACTOR * ((estimate - MEMBER_CHECK_S) * validation.repeats + MEMBER_CHECK_S) + MEMBER_DEADLINE_S
    return max(deadline, LONG_MEMBER_SHARE * budget_s) if long_budget(budget_s) else deadline


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
    MEMBER_CHECK_DEADLINE_S: CatBoost on 43 categorical columns spent 9 s on the check's 300 rows
    and ran 2x over its estimate into the track's whole share, where refine had nothing left.
    `needs_s`: what a too slow attempt's retry needs at the speed measured."""
    share_left = share_left_s(plan, blueprint, attempts)
    most = [settings.max_attempt_timeout_s] if settings.max_attempt_timeout_s is not None else []
    if member:
        caps = [share_left, run_left_s(remaining_s, blueprint, profile, settings),
                member_deadline_s(task, profile, blueprint.validation, member, blueprint.budget_s)]
        check_cap = max(MEMBER_CHECK_DEADLINE_S, LONG_MEMBER_CHECK_SHARE * blueprint.budget_s) \
            if long_budget(blueprint.budget_s) else MEMBER_CHECK_DEADLINE_S
        caps += [check_cap] if check else []
        return max(MEMBER_MIN_TIMEOUT_S, min(caps + most))
    timeout = min(share_left, remaining_s)
    if needs_s and not any(a.status == "ok" for a in attempts):
        # a too slow attempt's retry, with nothing scored yet: the seconds its measured speed
        # says it needs, at most the whole budget again, rather than a third try that cannot end
        timeout = max(timeout, min(needs_s, settings.time_budget_s))
    timeout = min([timeout, *most])
    # the floor an attempt always gets, but never more than half a small budget: a 10 s run must
    # not wait 20 s on one attempt (the plan shrinks for small budgets instead)
    floor = min(settings.min_attempt_timeout_s, max(ATTEMPT_MIN_FLOOR_S, ATTEMPT_FLOOR_SHARE * settings.time_budget_s))
    return max(floor, timeout)


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
