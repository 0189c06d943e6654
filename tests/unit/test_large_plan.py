"""A large table's plan: the measured fit extrapolated (runtime/costs.py), the rows, folds and
rounds chosen to fit the time and the memory, the blueprint that follows, and what a kernel out of
memory is told. Measures are written by hand, so these run without data or a kernel."""

from __future__ import annotations

import pytest

from graph.context import Settings
from nodes.blueprint import LargePlan, make_blueprint
from nodes.debug import params_for_memory
from nodes.track import out_of_memory_error
from runtime.budget import run_left_s
from runtime.costs import Estimate, MeasuredCost, plan_rows
from runtime.records import (
    AttemptResult,
    Blueprint,
    ColumnProfile,
    DataPlan,
    DataProfile,
    MeasuredFit,
    TargetProfile,
    TaskSpec,
    TrackPlan,
    ValidationScheme,
)

# two fits as a 2-core machine measured them on a taxi-shaped table: 100k rows in 2.1 s (79
# rounds), 200k in 4.9 s (104 rounds); 50k valid rows predicted in ~1 s; 275 MB with the sample
MEASURED = MeasuredFit(rows=[100_000, 200_000], features_s=[0.18, 0.3], fit_s=[2.1, 4.9], trees=[79, 104],
                       predict_s=[0.6, 1.0], valid_rows=50_000, peak_mb=[320.0, 360.0], base_mb=276.0, sample_mb=8.0,
                       seconds=10.0)


def _cost() -> MeasuredCost:
    return MeasuredCost.from_measure(MEASURED)


def test_a_fit_costs_more_with_more_rows_and_rounds_never_past_the_cap():
    cost = _cost()
    assert cost.fit_s(200_000, 2000) == pytest.approx(0.3 + 4.9, rel=0.05)  # the measure itself, back
    assert cost.fit_s(2_000_000, 2000) > 10 * cost.fit_s(200_000, 2000)  # rows, and rounds growing with them
    capped = cost.fit_s(20_000_000, 312)
    assert capped < cost.fit_s(20_000_000, 2000) and cost.rounds_at(20_000_000, 312) == 312
    assert cost.peak_mb(1_000_000, 3, refit=True) > cost.peak_mb(100_000, 3, refit=True) > cost.kernel_mb


def test_all_rows_when_they_fit_else_fewer_folds_over_the_most_rows_that_fit():
    cost = _cost()
    every = plan_rows(cost, 300_000, 10_000, room_s=10_000, n_folds=5, refit=True, memory_room_mb=16_000,
                      declared_rounds=2000)
    assert (every.rows, every.folds) == (300_000, 5)
    rows = plan_rows(cost, 20_000_000, 10_000, room_s=300, n_folds=5, refit=True, memory_room_mb=16_000,
                     declared_rounds=2000)
    assert rows.folds == 3 and 100_000 < rows.rows < 20_000_000 and rows.seconds <= 300
    assert rows.rounds == 312  # three times the rounds the larger measuring fit kept
    assert "seeded sample" in rows.reasons[0] and "20,000,000" in rows.reasons[1]
    fewer = plan_rows(cost, 20_000_000, 10_000, room_s=100, n_folds=5, refit=True, memory_room_mb=16_000,
                      declared_rounds=2000)
    assert fewer.rows < rows.rows  # less time, fewer rows


def test_memory_and_the_users_cap_limit_the_rows_too():
    cost = _cost()
    by_time = plan_rows(cost, 20_000_000, 10_000, room_s=600, n_folds=5, refit=True, memory_room_mb=100_000,
                        declared_rounds=2000)
    by_memory = plan_rows(cost, 20_000_000, 10_000, room_s=600, n_folds=5, refit=True,
                          memory_room_mb=cost.peak_mb(by_time.rows, 3, True) / 2, declared_rounds=2000)
    assert by_memory.rows < by_time.rows and by_memory.memory_mb <= cost.peak_mb(by_time.rows, 3, True) / 2
    capped = plan_rows(cost, 20_000_000, 10_000, room_s=600, n_folds=5, refit=True, memory_room_mb=100_000,
                       declared_rounds=2000, max_fit_rows=50_000)
    assert capped.rows * (capped.folds - 1) / capped.folds <= 50_000 and "--max-fit-rows" in capped.reasons[0]


def test_a_plan_that_cannot_fit_takes_the_least_sample_and_says_so():
    choice = plan_rows(_cost(), 20_000_000, 10_000, room_s=0.5, n_folds=5, refit=True, memory_room_mb=16_000,
                       declared_rounds=2000)
    assert (choice.rows, choice.folds) == (2_000, 2) and "even that needs" in choice.reasons[0]


def _task() -> TaskSpec:
    return TaskSpec(task_dir="/nowhere", task_type="regression", target="fare", id_column="key", metric="rmse",
                    greater_is_better=False, submission_format="label", submission_columns=["key", "fare"])


def _profile(n: int) -> DataProfile:
    cols = [ColumnProfile(name=f"num{i}", kind="numeric", dtype="float32", missing_share=0.0, cardinality=1000, examples=[])
            for i in range(6)]
    return DataProfile(n_train=n, n_test=9914, columns=cols, target=TargetProfile(kind="values", mean=11.0, std=9.0),
                       sampled_rows=100_000)


def test_the_blueprint_plans_every_track_on_the_measured_rows():
    data = DataPlan(n_rows=20_000_000, rows=600_000, measured=MEASURED, estimate_s=332.0,
                    reasons=["a seeded sample, 3 folds (400,000 rows per fit): ~332 s"])
    trad = Estimate(seconds=340.0, params={"seed": 0, "n_estimators": 312}, steps=["LightGBM"], fixed_s=8.0)
    bp = make_blueprint(_task(), _profile(20_000_000), Settings(), 600.0, available={"traditional", "neural"},
                        installed=lambda m: True, gpu=False, large=LargePlan(data=data, folds=3, traditional=trad))
    assert bp.data == data and bp.validation.n_folds == 3
    assert bp.tracks[0].track == "traditional" and bp.tracks[0].params["n_estimators"] == 312
    assert bp.tracks[0].time_share * 600 >= 1.5 * 340.0 - 1  # the measured estimate with the safety factor, ...
    assert any("fitting on 600,000 of 20,000,000 rows" in n for n in bp.notes)
    # rows sampled for the traditional attempt's time: no time for another track, and it says why
    assert "no time for another track" in bp.skipped["neural"]
    assert any("refine's reserve (more rows for it" in n for n in bp.notes)  # ... refine's reserve included
    # the final reserve is kept for the planned rows (20M rows would keep 100 s for the blend alone)
    assert run_left_s(600.0, bp, _profile(20_000_000), Settings()) > 600.0 - 40.0


def _state(status: str = "out_of_memory", error: str = "", params: dict | None = None) -> dict:
    plan = TrackPlan(track="traditional", reason="", model_family="LightGBM", feature_steps=[], params={"seed": 0},
                     time_share=0.8)
    data = DataPlan(n_rows=20_000_000, rows=900_000, memory_mb=2_100, memory_limit_mb=4_000, reasons=["..."])
    bp = Blueprint(validation=ValidationScheme(kind="kfold", n_folds=3), tracks=[plan], budget_s=600, data=data)
    attempt = AttemptResult(track="traditional", attempt=1, source="recipe", status=status, dir="/nowhere", error=error)
    return {"plan": plan, "blueprint": bp, "profile": _profile(20_000_000), "attempts": [attempt],
            "repairs": params or {}, "member": None}


def test_a_kernel_out_of_memory_is_said_as_that_with_what_to_change():
    said = out_of_memory_error("kernel exceeded the memory limit of 4000 MB, peak 4100 MB and was killed", _state())
    assert said.startswith("out of memory:") and "900,000 of 20,000,000 rows" in said and "~2,100 MB" in said
    assert "--memory-mb" in said and "--max-fit-rows" in said


def test_the_retry_after_running_out_of_memory_fits_on_half_the_rows():
    assert params_for_memory(_state()) == {"max_train_rows": 300_000}  # 600,000 per fit (3 folds of 900,000), halved
    assert params_for_memory(_state(params={"max_train_rows": 900})) is None  # below the least sample: no retry
    killed = _state(status="died", error="out of memory: the kernel was killed (SIGKILL) holding 9,000 MB")
    assert params_for_memory(killed) == {"max_train_rows": 300_000}


def test_a_large_table_whose_rows_all_fit_plans_the_other_tracks_on_them():
    data = DataPlan(n_rows=300_000, rows=300_000, measured=MEASURED, estimate_s=60.0, reasons=["all rows fit"])
    trad = Estimate(seconds=68.0, params={"seed": 0}, steps=["LightGBM"], fixed_s=8.0)
    bp = make_blueprint(_task(), _profile(300_000), Settings(), 900.0, available={"traditional", "neural"},
                        installed=lambda m: True, gpu=False, large=LargePlan(data=data, folds=5, traditional=trad))
    assert [t.track for t in bp.tracks] == ["traditional", "neural"] and bp.validation.n_folds == 5


def test_a_too_slow_attempt_on_a_large_table_retries_on_the_rows_its_speed_allows():
    from runtime.costs import rows_for_speed

    # 3 folds of 1.7M rows, each fit 175 s where the plan had ~80 s, and ~350 s for the retry
    rows = rows_for_speed(1_716_141, 175.0, 3, True, 350.0)
    assert rows is not None and 500_000 < rows < 1_716_141
    assert rows_for_speed(1_000_000, 10.0, 3, True, 350.0) is None  # fast enough already: not a matter of rows
    assert rows_for_speed(1_000, 175.0, 3, True, 10.0) is None  # below the least sample
