"""`iml bench --repeats`: the statistics over splits (mean, standard error, the paired verdict,
the normalised score), the tables, and which rows of an earlier runs CSV a bench reuses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.bench import RunResult, reused_runs, runs_frame
from scripts.bench_report import (
    estimate,
    fmt_pm,
    normalised,
    paired,
    split_scores,
    summarize,
    summary_lines,
    to_markdown,
)


def _runs(scores: dict[str, list[float | None]], task: str = "iris", metric: str = "accuracy",
          higher: bool = True) -> list[RunResult]:
    """One run per system and split (split r is the r-th score)."""
    return [RunResult(task=task, system=s, seed=0, metric=metric, greater_is_better=higher, split=r, score=v,
                      valid=v is not None, wall_s=1.0, peak_mb=100.0)
            for s, values in scores.items() for r, v in enumerate(values)]


def test_estimate_is_the_mean_and_its_standard_error() -> None:
    e = estimate([1.0, 2.0, 3.0, None, math.nan])  # missing splits are left out
    assert (e.mean, e.n) == (2.0, 3)
    assert e.se == pytest.approx(1.0 / math.sqrt(3))  # sd 1 (ddof 1) over sqrt 3
    one = estimate([0.5])
    assert one.mean == 0.5 and math.isnan(one.se) and one.n == 1
    assert estimate([]).n == 0 and math.isnan(estimate([]).mean)


def test_a_small_steady_lead_is_a_win_when_paired_though_the_splits_vary_more() -> None:
    """The splits differ by 0.2 from each other, iml leads by about 0.01 on each: unpaired the two
    means are far within each other's noise; paired, the lead is beyond it."""
    peer = pd.Series([0.70, 0.90, 0.75, 0.85, 0.80])
    iml = peer + [0.010, 0.012, 0.011, 0.009, 0.010]
    p = paired(iml, peer, higher=True)
    assert p.verdict == "better" and p.n == 5 and p.diff == pytest.approx(0.0104)
    assert abs(estimate(iml).mean - estimate(peer).mean) < estimate(peer).se  # unpaired: noise
    assert paired(peer, iml, higher=True).verdict == "worse"
    # Lower is better (an error): the same numbers make iml the worse one, the difference negative.
    lower = paired(iml, peer, higher=False)
    assert lower.verdict == "worse" and lower.diff == pytest.approx(-0.0104)


def test_a_difference_within_noise_is_not_a_win() -> None:
    # One test row of 30 on one split of three: mean +0.011, se 0.011.
    one_row = paired(pd.Series([0.9667, 0.9333, 0.9667]), pd.Series([0.9333, 0.9333, 0.9667]), higher=True)
    assert one_row.diff > 0 and one_row.verdict == "within noise"
    # Ahead on average, but the differences swing both ways.
    swing = paired(pd.Series([0.82, 0.80, 0.85, 0.79]), pd.Series([0.80, 0.81, 0.82, 0.80]), higher=True)
    assert swing.diff > 0 and swing.verdict == "within noise"
    # Two splits: t(0.975, 1) = 12.7 standard errors, so a steady lead of 2 se is still noise...
    assert paired(pd.Series([0.9, 0.8]), pd.Series([0.88, 0.76]), higher=True).verdict == "within noise"
    # ... where 2 se would have called it (the rule is the t-test's, not a fixed 2).
    d = np.array([0.02, 0.04])
    assert d.mean() > 2 * d.std(ddof=1) / math.sqrt(2)
    # Identical on every split: no difference at all.
    assert paired(pd.Series([0.9, 0.8, 0.7]), pd.Series([0.9, 0.8, 0.7]), higher=True).verdict == "within noise"


def test_no_verdict_without_two_splits_both_scored() -> None:
    assert paired(pd.Series([0.9]), pd.Series([0.5]), higher=True).verdict == "no verdict"
    # A split where the peer wrote nothing is left out of the pairing.
    p = paired(pd.Series([0.9, 0.8, 0.7]), pd.Series([0.5, math.nan, math.nan]), higher=True)
    assert p.n == 1 and p.verdict == "no verdict"


def test_a_noisy_peers_seeds_count_as_their_mean_on_each_split() -> None:
    runs = runs_frame(_runs({"iml": [0.9, 0.8]}) + [
        RunResult(task="iris", system="flaml", seed=s, metric="accuracy", greater_is_better=True, split=r, score=v,
                  valid=v is not None)
        for (r, s), v in {(0, 0): 0.7, (0, 1): 0.9, (1, 0): 0.6, (1, 1): None}.items()])
    scores = split_scores(runs).set_index(["system", "split"])["score"]
    assert scores[("flaml", 0)] == pytest.approx(0.8) and scores[("flaml", 1)] == pytest.approx(0.6)
    table = summarize(runs, ["iml", "flaml"])
    assert table.loc[0, "flaml_n"] == 2 and table.loc[0, "flaml_score"] == pytest.approx(0.7)
    assert table.loc[0, "flaml_valid"] == "3/4"


def test_normalised_score_puts_the_constant_at_0_and_the_best_at_1() -> None:
    runs = runs_frame(_runs({"iml": [50.0, 40.0], "lightgbm": [60.0, None]}, task="diabetes", metric="rmse",
                            higher=False))
    norm = normalised(runs, {("diabetes", 0): 80.0, ("diabetes", 1): 80.0})
    # split 0: constant 80, best 50 (iml): lightgbm (80-60)/(80-50); split 1: lightgbm wrote nothing -> 0
    assert norm["iml"].mean == pytest.approx(1.0) and norm["iml"].n == 2
    assert norm["lightgbm"].mean == pytest.approx((20 / 30 + 0.0) / 2)
    # A split without the constant's score is left out.
    assert normalised(runs, {("diabetes", 0): 80.0})["iml"].n == 1


def test_the_markdown_table_a_readme_can_paste() -> None:
    runs = runs_frame(_runs({"iml": [0.92, 0.81, 0.71, 0.87, 0.76], "lightgbm": [0.90, 0.80, 0.70, 0.85, 0.75]})
                      + _runs({"iml": [58.0, 61.0, 57.0], "lightgbm": [62.0, 57.0, 60.0]},
                              task="diabetes", metric="rmse", higher=False))
    systems = ["iml", "lightgbm"]
    table = summarize(runs, systems)
    lines = summary_lines(table, systems, normalised(runs, {}))
    text = to_markdown(table, systems, 10, "iml bench --repeats 5", lines)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| example | metric | iml | lightgbm | iml vs peer (mean paired difference ± se) |"
    assert rows[1] == "| iris | accuracy ↑ | 0.814 ± 0.037 | 0.800 ± 0.035 | vs lightgbm: better (+0.0140 ± 0.0024) |"
    assert rows[2] == "| diabetes | rmse ↓ | 58.7 ± 1.2 | 59.7 ± 1.5 | vs lightgbm: within noise (+1.0 ± 2.5) |"
    assert "- iml vs lightgbm (paired over splits, t-test at 5%): better on 1, within noise on 1, worse on 0 of 2" \
        in text


def test_mean_and_se_are_written_to_the_se_s_two_digits() -> None:
    assert fmt_pm(0.95333, 0.011547) == "0.953 ± 0.012"
    assert fmt_pm(547.13, 3.21) == "547.1 ± 3.2"
    assert fmt_pm(0.0104, 0.0004, signed=True) == "+0.01040 ± 0.00040"
    assert fmt_pm(0.9, math.nan) == "0.9" and fmt_pm(math.nan, math.nan) == "-"


def test_reused_rows_by_task_system_split_and_seed(tmp_path: Path) -> None:
    old = tmp_path / "old.csv"  # a runs CSV from before --repeats: no split column, its runs on split 0
    pd.DataFrame([{"task": "iris", "system": s, "seed": 0, "metric": "accuracy", "greater_is_better": True,
                   "budget_s": 10.0, "score": 0.9, "valid": True} for s in ("iml", "lightgbm")]).to_csv(old, index=False)
    assert list(reused_runs(old, 10.0)) == [("iris", "lightgbm", 0, 0)]  # --reuse-runs: peers only
    assert list(reused_runs(old, 10.0, "all")) == [("iris", "iml", 0, 0), ("iris", "lightgbm", 0, 0)]  # --resume
    assert reused_runs(old, 60.0) == {}  # another budget

    new = tmp_path / "new.csv"
    runs_frame(_runs({"iml": [0.9, None], "lightgbm": [0.8, 0.7]})).assign(budget_s=10.0).to_csv(new, index=False)
    rows = reused_runs(new, 10.0, "all")
    assert set(rows) == {("iris", s, r, 0) for s in ("iml", "lightgbm") for r in (0, 1)}
    assert rows[("iris", "iml", 1, 0)].score is None and rows[("iris", "lightgbm", 1, 0)].score == 0.7
