"""Plans for the machine's measured speed: the blueprint scales every estimate by the slowness a
probe measures before it, the members' deadlines scale with it, and `iml run`'s budget counts
the command's start-up (the user's wall time). Profiles are built by hand; no kernel."""

from __future__ import annotations

import time

from graph.context import RunContext, Settings, kernel_threads
from nodes.blueprint import make_blueprint
from runtime.budget import (
    LONG_BUDGET_S,
    MEMBER_CHECK_DEADLINE_S,
    final_reserve_s,
    member_deadline_s,
    refine_reserve_s,
    tracks_pool_s,
)
from runtime.costs import PROBE_S, SAFETY, SLOWNESS_MAX, measure_slowness, traditional_estimate
from runtime.records import ColumnProfile, DataProfile, TargetProfile, TaskSpec

IMPORTED_AT = time.time()


def _task() -> TaskSpec:
    return TaskSpec(task_dir="/nowhere", task_type="regression", target="y", id_column="id", metric="mae",
                    greater_is_better=False, submission_format="label", submission_columns=["id", "y"])


def _profile(n: int = 12_000, numeric: int = 18, categorical: int = 9) -> DataProfile:
    cols = [ColumnProfile(name=f"num{i}", kind="numeric", dtype="float64", missing_share=0.0, cardinality=n, examples=[])
            for i in range(numeric)]
    cols += [ColumnProfile(name=f"cat{i}", kind="categorical", dtype="object", missing_share=0.0, cardinality=8, examples=[])
             for i in range(categorical)]
    return DataProfile(n_train=n, n_test=n // 4, columns=cols,
                       target=TargetProfile(kind="values", mean=100.0, std=50.0, min=0.0, max=900.0, skew=2.0))


def _plan(slowness: float, budget: float = 10.0):
    return make_blueprint(_task(), _profile(), Settings(time_budget_s=budget), budget, available={"traditional"},
                          installed=lambda m: True, gpu=False, slowness=slowness)


def test_the_slowness_is_the_median_probe_against_a_free_core_or_the_load_per_core_and_never_below_one():
    times = iter([PROBE_S * 9, PROBE_S * 3, PROBE_S * 2])
    assert measure_slowness(lambda: next(times), load=lambda: 0.5) == 3.0
    assert measure_slowness(lambda: PROBE_S / 4, load=lambda: 0.2) == 1.0  # a faster machine plans as a free one
    assert measure_slowness(lambda: PROBE_S * 100, load=lambda: 0.0) == SLOWNESS_MAX
    # a short probe favoured by the scheduler on a loaded machine: the load average says more
    assert measure_slowness(lambda: PROBE_S * 2, load=lambda: 7.5) == 7.5
    assert measure_slowness() >= 1.0  # the real probe and load average


def test_a_slow_machine_gets_a_plan_that_fits_its_budget_at_its_speed():
    """At 10 s on a machine 3x slower than the constants, the plan the free machine would get
    does not fit; the slow machine's plan is cheaper, and its estimate at that speed fits the
    tracks' pool."""
    quiet, slow = _plan(1.0), _plan(3.0)
    assert slow.slowness == 3.0 and any("3.0x slower" in n for n in slow.notes)
    settings = Settings(time_budget_s=10.0)
    pool = tracks_pool_s(10.0, final_reserve_s(10.0, settings, 15_000), refine_reserve_s(10.0, settings))

    def work(bp):  # the folds' seconds on a free machine: the kernel and the check are what they are
        est = traditional_estimate(_task(), _profile(), bp.validation.n_folds, bp.tracks[0].params,
                                   threads=kernel_threads(settings))
        return est.seconds - est.fixed_s

    assert work(quiet) * SAFETY * 3.0 > pool  # the free machine's plan, run 3x slower, would not fit
    assert work(slow) < work(quiet)
    # the folds keep three quarters of the room where the fixed costs would take it all
    assert work(slow) * SAFETY * 3.0 <= 0.75 * pool


def test_a_slow_machine_s_members_need_more_of_the_share_and_get_longer_deadlines():
    quiet, slow = _plan(1.0), _plan(2.0)  # at 10 s no member fits the plan: each is tried if time is left
    assert quiet.tracks[0].members_if_time.keys() == slow.tracks[0].members_if_time.keys() == \
        {"linear", "knn", "catboost", "extratrees"}
    for name, seconds in quiet.tracks[0].members_if_time.items():
        assert abs(slow.tracks[0].members_if_time[name] - 2.0 * seconds) < 0.02
    task, profile = _task(), _profile()
    budget = 0.9 * LONG_BUDGET_S  # not long: a long budget's members get a share of it instead
    slow = _plan(2.0, budget=budget)
    from nodes.track import attempt_timeout

    state = {"task": task, "profile": profile, "blueprint": slow, "plan": slow.tracks[0], "attempts": [],
             "member": "catboost"}
    ctx = RunContext(settings=Settings(time_budget_s=budget))
    assert attempt_timeout(state, ctx, check=True) == 2.0 * MEMBER_CHECK_DEADLINE_S
    assert member_deadline_s(task, profile, slow.validation, "catboost", slowness=2.0) == \
        2.0 * member_deadline_s(task, profile, slow.validation, "catboost")


def test_the_run_clock_counts_the_command_s_start_up(tmp_path):
    """`iml run` starts the clock when its process started, so imports, the warm kernel and
    reading the task are part of the budget, as they are of the user's wall time."""
    from graph.runner import RunClock
    from scripts.cli import process_started

    started = process_started()
    assert started < IMPORTED_AT  # this process started before it imported this module
    clock = RunClock(tmp_path, task_dir="t", budget_s=10)
    clock.start("run", at=time.time() - 4.0)
    try:
        assert clock.used_s >= 4.0
    finally:
        clock.stop("finished")


def test_a_command_run_in_a_long_lived_process_starts_its_clock_when_main_is_entered(monkeypatch):
    """A process started for the command counts its own start; one that calls main() minutes
    after it started (a notebook, this test session) must not charge those minutes to the run:
    every in-process `iml run` of the suite's end-to-end tests found its budget spent and asked
    its LLM nothing."""
    from scripts import cli

    now = time.time()
    monkeypatch.setattr(cli, "process_started", lambda: now - 5.0)
    monkeypatch.setattr(cli, "_COMMAND_ENTERED", now)
    assert cli.command_started() == now - 5.0  # the process was started for the command
    monkeypatch.setattr(cli, "process_started", lambda: now - 20 * 60.0)
    assert cli.command_started() == now  # a process twenty minutes old: the command started in main()
    assert cli.main(["example", "--list"]) == 0 and now <= cli._COMMAND_ENTERED <= time.time()


def test_a_clock_spent_on_start_up_leaves_the_plan_the_floor_an_attempt_gets_anyway():
    """A 10 s run whose start-up took 9 s of a loaded machine: its first attempt gets the 5 s
    floor whatever the clock says, so the plan is made for that, not for the smallest sample."""
    from runtime.budget import attempt_floor_s

    settings = Settings(time_budget_s=10.0)
    late = make_blueprint(_task(), _profile(), settings, 1.0, available={"traditional"}, installed=lambda m: True,
                          gpu=False, slowness=1.0)
    floor = attempt_floor_s(settings)
    assert any(f"made for the {floor:.0f} s" in n for n in late.notes)
    est = traditional_estimate(_task(), _profile(), late.validation.n_folds, late.tracks[0].params,
                               threads=kernel_threads(settings))
    assert "max_train_rows" not in late.tracks[0].params  # not the last resort
    assert (est.seconds - est.fixed_s) * SAFETY <= floor
