"""Repeated folds on small data: how they are cut, when the blueprint plans them, and what a gain
must beat when the cuts share their rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_blueprint import _plan, _profile

from runtime.fold_loop import make_fold_sets
from runtime.metrics import get_metric
from runtime.records import AttemptResult
from runtime.verdict import beyond_fold_noise


def test_each_cut_predicts_every_row_once_and_the_cuts_differ():
    y = np.repeat([0, 1, 2], 40)
    frame = pd.DataFrame({"x": np.arange(120)})
    sets = make_fold_sets({"kind": "stratified", "n_folds": 5, "seed": 0, "repeats": 3}, y, frame, "multiclass")
    assert sets.shape == (3, 120)
    for cut in sets:
        assert sorted(np.unique(cut)) == [0, 1, 2, 3, 4]
        for k in range(5):  # stratified within each cut
            assert np.bincount(y[cut == k], minlength=3).tolist() == [8, 8, 8]
    assert not (sets[0] == sets[1]).all() and not (sets[1] == sets[2]).all()
    # a time-ordered scheme has one way to cut: one repeat, whatever was asked
    frame["t"] = pd.date_range("2020-01-01", periods=120, freq="D").astype(str)
    timed = make_fold_sets({"kind": "time", "n_folds": 4, "time_column": "t", "repeats": 3}, y, frame, "multiclass")
    assert timed.shape == (1, 120)


def test_small_tables_get_repeated_folds_and_large_ones_do_not():
    small = _plan(_profile(300, numeric=6), 60.0, available={"traditional"})
    assert small.validation.repeats >= 2 and any(f"cut {small.validation.repeats} times" in n for n in small.notes)
    # at 10 s the kernel and the check leave no room for it: the plan shrinks instead
    assert _plan(_profile(300, numeric=6), 10.0, available={"traditional"}).validation.repeats == 1
    # at 20 s three cuts of LightGBM and the planned members (linear, neighbours) fit beside the
    # fixed costs; at 30 s CatBoost is planned too and its work leaves room for one cut only
    one = _plan(_profile(300, numeric=6), 20.0, available={"traditional"})
    assert one.validation.repeats == 3 and "catboost" not in one.tracks[0].members
    large = _plan(_profile(20_000, numeric=6), 60.0, available={"traditional"})
    assert large.validation.repeats == 1


def test_a_gain_across_cuts_that_share_their_rows_must_beat_the_corrected_noise():
    auc = get_metric("auc")

    def attempt(score, folds):
        return AttemptResult(track="traditional", attempt=1, source="refine", status="ok", score=score,
                             fold_scores=folds, dir="/nowhere")

    current = attempt(0.80, [0.80] * 15)
    rng = np.random.default_rng(0)
    gains = 0.004 + rng.normal(scale=0.01, size=15)  # mean below its corrected standard error, above the naive one
    gains -= gains.mean() - 0.004
    cand = attempt(0.804, list(0.80 + gains))
    naive = gains.std(ddof=1) / np.sqrt(15)
    corrected = gains.std(ddof=1) * np.sqrt(1 / 15 + 1 / 4)
    assert naive < 0.004 < corrected
    assert beyond_fold_noise(auc, cand, current)  # 15 scores taken as independent
    assert not beyond_fold_noise(auc, cand, current, folds_per_cut=5)  # three cuts of 5 folds
