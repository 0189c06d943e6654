"""How the check extrapolates a fit's seconds from samples (runtime/fit_time.py), and how the
budget turns that prediction into its verdict and into what debug reads (runtime/budget.py)."""

from __future__ import annotations

import pytest

from runtime import budget
from runtime.fit_time import FitCurve, extrapolate, fit_curve, predict

SIZES = (256, 512, 1024, 2048, 4096)


def test_a_linear_cost_with_a_fixed_part_is_told_apart_and_extrapolated_linearly():
    points = [(m, 0.1 + 2e-5 * m) for m in SIZES]  # LightGBM-like: 0.1 s whatever the rows, then per row
    seconds, curve = extrapolate(points, 40_000)
    assert curve.exponent == 1.0 and curve.fixed_s == pytest.approx(0.1, rel=1e-3)
    assert seconds == pytest.approx(0.1 + 2e-5 * 40_000, rel=1e-3)
    # a line through the origin from the last sample would have said 40,000 / 4,096 x 0.18 s = 1.8 s, twice the truth
    assert seconds < 0.6 * points[-1][1] * 40_000 / 4096


def test_a_quadratic_cost_is_extrapolated_as_one():
    points = [(m, 0.05 + 1e-8 * m * m) for m in SIZES]  # neighbours: every row against every row
    seconds, curve = extrapolate(points, 40_000)
    assert curve.exponent == 2.0 and seconds == pytest.approx(0.05 + 1e-8 * 40_000 ** 2, rel=1e-3)


def test_the_exponent_stays_within_linear_and_quadratic():
    flat = [(m, 0.3) for m in SIZES]  # all fixed: never below linear growth beyond the samples
    assert fit_curve(flat).exponent == 1.0 and extrapolate(flat, 40_000)[0] >= 0.3
    cubic = [(m, 1e-11 * m ** 3) for m in SIZES]  # steeper than any budget could run: read as quadratic
    seconds, curve = extrapolate(cubic, 40_000)
    assert curve.exponent == 2.0 and seconds < 1e-11 * 40_000 ** 3


def test_a_noisy_flat_start_never_predicts_less_than_the_line_through_the_first_and_last_samples():
    points = [(256, 0.30), (512, 0.20), (1024, 0.21), (2048, 0.45)]  # noise first, then growth
    seconds, _ = extrapolate(points, 20_000)
    secant = 0.45 + (0.45 - 0.30) / (2048 - 256) * (20_000 - 2048)
    assert seconds >= secant - 1e-9


def test_a_sample_at_the_full_size_is_the_prediction():
    assert extrapolate([(256, 0.1), (500, 0.3)], 500)[0] == 0.3
    assert extrapolate([(256, 2.0)], 2_000)[0] == pytest.approx(2.0 * 2_000 / 256)  # one point: through the origin


def test_what_the_samples_show_decides_what_is_predicted():
    linear = [(m, 0.01 + 1e-4 * m) for m in SIZES]
    assert predict(linear, 4096).kind == "measured" and predict(linear, 4096).seconds == linear[-1][1]
    far = predict(linear, 40_000)  # grown 16x over the samples, and a curve through them: extrapolated
    assert far.kind == "extrapolated" and far.seconds == pytest.approx(0.01 + 1e-4 * 40_000, rel=1e-3)
    # boosted trees on diamonds (a busy 2-core machine): their rounds, not their rows, set the time;
    # no curve through these may be extrapolated 8x: at least the largest sample's seconds
    trees = [(256, 0.39), (512, 0.49), (1024, 0.56), (2048, 0.60), (4096, 2.29)]
    said = predict(trees, 34_521)
    assert said.kind == "at least" and said.seconds == 2.29  # it took 4.3 s at 34,521 rows
    unlike = predict([(256, 0.51), (512, 1.42), (1024, 2.26)], 34_521)  # 4x in two unlike steps: the rounds, not the rows
    assert unlike.kind == "at least" and unlike.seconds == 2.26  # it took 7.8 s there; a curve said 118 s
    two = predict([(256, 0.42), (512, 1.0)], 4_500)  # two noisy samples: a line through them said 47x the truth
    assert two.kind == "at least" and two.seconds == 1.0


def test_the_rows_a_fit_may_have_for_given_seconds():
    curve = FitCurve(0.5, 1e-3, 1.0)
    assert curve.rows_for(2.5) == 2_000 and curve.rows_for(0.4) == 0
    assert FitCurve(0.0, 1e-8, 2.0).rows_for(1.0) == 10_000


def time(deadline_s: float, n_folds: int = 5, train_rows: int = 40_000) -> budget.AttemptTime:
    return budget.AttemptTime(attempt_s=deadline_s / budget.HARNESS_DEADLINE_SHARE, deadline_s=deadline_s, n_folds=n_folds,
                              repeats=1, refit=False, fold_rows=train_rows, train_rows=train_rows, valid_rows=10_000,
                              test_rows=10_000, columns=20, cores=2, gpu=False, slots=1, tracks=("traditional",),
                              track="traditional", share_s=deadline_s, share_left_s=deadline_s, run_left_s=deadline_s)


def timing(fit_s: float, **extra) -> dict:
    return {"fit_s": fit_s, "points": [[256, 0.1], [1024, 0.4], [4096, 0.9]], "fixed_s": 0.05, "per_row_s": fit_s / 40_000,
            "exponent": 1.0, "kind": "extrapolated", "at_once": 1, "setup_s": 0.0, **extra}


def test_the_verdict_gives_the_prediction_its_margin():
    assert budget.too_slow(timing(30.0), time(100.0)) is None  # 150 s of folds: within 1.5 x the 100 s deadline
    message = budget.too_slow(timing(40.0), time(100.0))  # 200 s
    assert message is not None and message.startswith("too slow: ~40.0 s per fold needed, 20.0 s allowed")
    assert budget.too_slow(None, time(1.0)) is None and budget.too_slow({"error": "ValueError"}, time(1.0)) is None


def test_folds_side_by_side_and_the_encoding_count_in_the_verdict():
    from runtime.costs import side_by_side_speedup

    two = timing(40.0, at_once=2)  # two folds at once: each fold's wall time is less than a fit's
    assert budget.predicted_fold_s(two, 5) == pytest.approx(40.0 / side_by_side_speedup(2, 5))
    assert budget.too_slow(two, time(100.0)) is None  # 5 x 26.7 s = 133 s
    encoded = budget.too_slow(timing(20.0, setup_s=80.0), time(100.0))  # 80 s of encode + 100 s of folds > 150 s
    assert encoded is not None and "4.0 s allowed" in encoded and "~80 s of Features.encode on all rows" in encoded
    only = budget.too_slow(timing(1.0, setup_s=200.0), time(100.0))
    assert "Features.encode alone needs ~200 s" in only


def test_the_message_says_what_to_change_with_the_rows_a_fold_may_train_on():
    message = budget.too_slow(timing(40.0), time(100.0))
    curve = FitCurve(0.05, 40.0 / 40_000, 1.0)
    rows = curve.rows_for(20.0)
    assert f"max_train_rows={rows:,}" in message and "~2.0x cheaper" in message
    assert "timed one fold's fit on samples (256 rows 0.10 s, 1,024 rows 0.40 s, 4,096 rows 0.90 s)" in message
    assert "growing in proportion to the rows" in message
    measured = budget.too_slow(timing(40.0, kind="measured", points=[[40_000, 40.0]]), time(100.0))
    assert "It fitted one fold at its full size: 40,000 rows 40.00 s." in measured
    # a lower bound says so, and names no number of rows it cannot know
    least = budget.too_slow(timing(40.0, kind="at least", points=[[256, 40.0]]), time(100.0))
    assert least.startswith("too slow: more than 40.0 s per fold needed, 20.0 s allowed")
    assert "over 2.0x cheaper" in least and "params max_train_rows (the harness" in least


def test_a_check_whose_time_ran_out_while_timing_a_fit_says_at_least_how_long_it_ran():
    partial = {"train_rows": 40_000, "points": [[256, 0.5]], "at_once": 1, "setup_s": 0.0,
               "probing": {"rows": 512, "since_s": 3.0}}
    timing = budget.cut_short(partial, cell_s=50.0)  # the 512-row fit had run 47 s when the cell's time ran out
    assert timing["fit_s"] == pytest.approx(47.0) and timing["kind"] == "cut short"
    message = budget.too_slow(timing, time(100.0))
    assert message.startswith("too slow: more than 47.0 s per fold needed")
    assert "timing of one fold's fit on 512 rows had not ended" in message
