"""The run's budget: every reserve, deadline and timeout of a run, computed in one place.

The blueprint splits the budget: a final reserve for ensemble, submit and the outputs, a reserve
for refine, and the tracks' shares. The track, debug and refine nodes ask here how long an
attempt, a member or a candidate may run. Plain values and records in, seconds out: the nodes pass
what they read from the graph's state and context (the run's settings, the seconds it has left),
so nothing here knows the graph. What things cost is runtime/costs.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from runtime.costs import FINAL_ROW_S, MEMBER_CHECK_S, member_estimates, planned_profile
from runtime.records import AttemptResult, Blueprint, DataProfile, TaskSpec, TrackPlan, ValidationScheme


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


# -- the run's reserves ------------------------------------------------------------------------


def final_reserve_s(budget_s: float, settings: BudgetSettings, rows: int = 0) -> float:
    """Kept for ensemble + submit + writing the outputs, whatever the tracks do; `rows` (train +
    test) for the blends' scoring and the files, which grow with them."""
    return max(settings.final_reserve_min_s, settings.final_reserve_share * budget_s, FINAL_ROW_S * rows)


def refine_reserve_s(budget_s: float, settings: BudgetSettings) -> float:
    """Kept for refine's search; refine also gets whatever the tracks leave unused."""
    return settings.refine_reserve_share * budget_s if budget_s >= REFINE_MIN_BUDGET_S else 0.0


def tracks_pool_s(budget_s: float, final_s: float, refine_s: float) -> float:
    """What the reserves leave for the tracks' shares."""
    return max(0.0, budget_s - final_s - refine_s)


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


def member_deadline_s(task: TaskSpec, profile: DataProfile, validation: ValidationScheme, name: str) -> float:
    """The longest one of a member's cells (its check, its folds) may take: MEMBER_DEADLINE_FACTOR
    times its estimate, every cut of the folds included."""
    estimate = member_estimates(task, profile, validation.n_folds).get(name)
    if estimate is None:
        return float("inf")
    return MEMBER_DEADLINE_FACTOR * ((estimate - MEMBER_CHECK_S) * validation.repeats + MEMBER_CHECK_S) + MEMBER_DEADLINE_S


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
                member_deadline_s(task, planned_profile(profile, scored_rows(blueprint, profile)), blueprint.validation, member)]
        caps += [MEMBER_CHECK_DEADLINE_S] if check else []
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
