"""Every prompt that asks for code says the time the attempt has, in seconds: the attempt's and a
fold's, the rows and columns, the cores and the GPU, whether tracks take turns, and (debug,
refine) the measured seconds of earlier attempts and the run's time left. Each number is the
one runtime/budget.py computed for the attempt: the prompts only put it in words."""

from __future__ import annotations

import pytest
from test_llm_prompts import text, wide_profile

from graph.context import Settings
from nodes.blueprint import make_blueprint
from prompts.render import debug_messages, generate_messages, refine_messages, seconds
from runtime import budget
from runtime.records import AttemptResult

CODE = {"features": "class Features: ...\n", "model": "class Model: ...\n"}


def time_section(msgs) -> str:
    body = text(msgs)
    return body.split("# Time\n\n", 1)[1].split("\n\n# ", 1)[0]


def grounded_time(task, profile, blueprint, attempts=(), remaining_s=100.0, cores=2, gpu=False, slots=1,
                  settings=None):
    plan = blueprint.tracks[0]
    return plan, budget.attempt_time(settings or Settings(time_budget_s=blueprint.budget_s), remaining_s, task, profile,
                                     blueprint, plan, list(attempts), cores=cores, gpu=gpu, slots=slots)


def said(section: str, time: budget.AttemptTime) -> None:
    """The section carries the budget's numbers for this attempt."""
    assert f"may run {seconds(time.attempt_s)}" in section and f"between folds at {seconds(time.deadline_s)}" in section
    assert f"~{seconds(time.fold_s)} for the whole plan" in section
    assert f"Past ~{seconds(time.first_cut_fold_s)} a fold" in section
    assert f"fits on {time.train_rows:,} training rows" in section and f"{time.valid_rows:,} held-out rows" in section
    assert f"the {time.test_rows:,} test rows" in section and f"{time.columns:,} feature columns" in section
    assert f"{time.cores} CPU thread(s)" in section and ("a CUDA GPU" if time.gpu else "no GPU") in section
    assert f"{seconds(time.run_left_s)} left before its final reserve" in section


@pytest.mark.parametrize("wide", [False, True])
def test_generate_says_the_seconds_the_budget_gives_the_attempt(grounded, wide):
    _, task, profile, _ = grounded
    if wide:  # 500 columns, 50,000 rows
        profile = wide_profile()
    blueprint = make_blueprint(task, profile, Settings(), budget_s=600, gpu=False)
    plan, time = grounded_time(task, profile, blueprint, remaining_s=550.0)
    section = time_section(generate_messages(task, profile, plan, time=time))
    said(section, time)
    fold_rows = profile.n_train * (time.n_folds - 1) // time.n_folds
    assert time.fold_rows == fold_rows and time.columns == len(profile.columns)
    assert time.train_rows == min(fold_rows, plan.params.get("max_train_rows") or fold_rows)
    if wide:  # a 10-minute plan samples each fold's rows of a 50,000-row table: the prompt says so
        assert plan.params.get("max_train_rows") and "500 feature columns" in section
        assert f"fits on {time.train_rows:,} training rows (a sample of its {fold_rows:,}: the plan's max_train_rows)" in section
    # another moment of the run is another time: nothing in the section is fixed text
    _, later = grounded_time(task, profile, blueprint, remaining_s=40.0, cores=8, gpu=True)
    other = time_section(generate_messages(task, profile, plan, time=later))
    said(other, later)
    assert later.attempt_s < time.attempt_s and other != section


def test_the_plans_folds_cuts_and_fit_on_all_rows_set_a_folds_seconds(grounded):
    _, task, profile, blueprint = grounded
    assert blueprint.validation.repeats > 1 and blueprint.validation.refit  # a small table: its folds cut again
    plan, time = grounded_time(task, profile, blueprint)
    k = blueprint.validation.n_folds
    assert time.fold_s == pytest.approx(time.deadline_s / (k * blueprint.validation.repeats + k / (k - 1)))
    assert time.first_cut_fold_s == pytest.approx(time.deadline_s / k)
    section = time_section(generate_messages(task, profile, plan, time=time))
    assert f"cut {blueprint.validation.repeats} times ({k * blueprint.validation.repeats} fits) and one more fit on all rows" in section
    assert "the later cuts and the fit on all rows are dropped first" in section


def test_tracks_that_take_turns_are_said_with_what_it_means_for_this_tracks_seconds(grounded):
    _, task, profile, _ = grounded
    profile = wide_profile()  # 50,000 rows of numbers and text: more than one track fits a long budget
    blueprint = make_blueprint(task, profile, Settings(), budget_s=3600, gpu=False,
                               installed=lambda name: True)
    assert len(blueprint.tracks) > 1, blueprint.skipped
    plan, alone = grounded_time(task, profile, blueprint, remaining_s=3500, slots=1)
    section = time_section(generate_messages(task, profile, plan, time=alone))
    assert alone.takes_turns and "take turns on 1 execution slot(s)" in section
    assert f"for its share of {seconds(alone.share_s)}" in section and "the tracks behind this one wait for it" in section
    _, together = grounded_time(task, profile, blueprint, remaining_s=3500, slots=len(blueprint.tracks))
    assert not together.takes_turns
    assert "compute at the same time" in time_section(generate_messages(task, profile, plan, time=together))


def test_debug_says_the_time_left_and_the_measured_seconds_of_earlier_attempts(grounded):
    task_dir, task, profile, blueprint = grounded
    slow = AttemptResult(track="traditional", attempt=1, source="llm", status="timeout", dir=str(task_dir),
                         error="too slow: ~164.0 s per fold needed, 150.0 s allowed", duration_s=282.0, fit_seconds=164.0)
    plan, time = grounded_time(task, profile, blueprint, attempts=[slow], remaining_s=90.0)
    assert time.share_left_s == pytest.approx(budget.share_s(plan, blueprint) - 282.0)
    msgs = debug_messages(task, profile, plan, CODE, slow.error, [slow], attempt=1, status="timeout", time=time)
    said(time_section(msgs), time)
    body = text(msgs)
    assert "attempt 1 (llm): timeout, 282 s, ~164 s per fold" in body  # measured, with the attempt


def test_a_check_that_predicted_too_slow_is_said_as_a_prediction(grounded):
    task_dir, task, profile, blueprint = grounded
    predicted = AttemptResult(track="traditional", attempt=2, source="debug", status="timeout", dir=str(task_dir),
                              error="too slow: ~30.0 s per fold needed, 8.0 s allowed", fit_seconds=30.0)
    plan, time = grounded_time(task, profile, blueprint, attempts=[predicted])
    body = text(debug_messages(task, profile, plan, CODE, predicted.error, [predicted], time=time))
    assert "attempt 2 (debug): timeout, ~30 s per fold (the check's prediction)" in body


@pytest.mark.parametrize("wide", [False, True])
def test_refine_says_how_long_the_attempt_took_and_how_much_time_is_left(grounded, wide):
    task_dir, task, profile, blueprint = grounded
    if wide:
        profile = wide_profile()
        blueprint = make_blueprint(task, profile, Settings(), budget_s=2400, gpu=False)
    best = AttemptResult(track="traditional", attempt=3, source="recipe", status="ok", score=0.9, dir=str(task_dir),
                         duration_s=846.0, fit_seconds=52.5)
    plan, time = grounded_time(task, profile, blueprint, remaining_s=400.0)
    msgs = refine_messages(task, profile, plan, CODE, 0.9, attempts=[best], time=time, base=best)
    section = time_section(msgs)
    said(section, time)
    assert f"the attempt this rewrite moves from took 846 s in all, ~{seconds(52.5)} per fold" in section
    assert time.run_left_s == pytest.approx(budget.run_left_s(400.0, blueprint, profile, Settings(time_budget_s=blueprint.budget_s)))


def test_seconds_read_as_a_model_reads_them():
    assert seconds(0.42) == "0.4 s" and seconds(9.94) == "9.9 s" and seconds(12.4) == "12 s" and seconds(1234.0) == "1,234 s"
