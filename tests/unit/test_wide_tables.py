"""Wide numeric tables (pixels, spectra): the profile's leakage check costs one bincount per
column, not a crosstab, and where LightGBM cannot fit the budget a cheap member (neighbours or
the linear model) runs before it, so the run has a score in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from langgraph.runtime import Runtime

from graph.context import RunContext, Settings
from nodes.blueprint import make_blueprint
from runtime.data_profile import _purity, profile_data
from runtime.records import AttemptResult, ColumnProfile, DataProfile, TargetProfile, TaskSpec
from runtime.task_reader import read_task


def test_the_purity_is_the_crosstab_s_for_any_column():
    rng = np.random.default_rng(0)
    y = pd.Series(rng.choice(["a", "b", "c"], 500))
    codes, classes = pd.factorize(y)
    for x in (pd.Series(rng.integers(0, 7, 500)).astype(float), pd.Series(rng.choice(["u", "v", None], 500)),
              y.map({"a": 1, "b": 2, "c": 2}).where(rng.random(500) > 0.2)):
        expected = pd.crosstab(x, y).max(axis=1).sum() / max(1, x.notna().sum())
        assert abs(_purity(x, codes, len(classes)) - expected) < 1e-12


def test_a_wide_table_s_profile_finds_a_leaky_column_without_a_crosstab_per_column(make_task, monkeypatch):
    folder = make_task("multiclass", n=300)
    train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    rng = np.random.default_rng(1)
    pixels = lambda n: pd.DataFrame(rng.integers(0, 16, (n, 250)), columns=[f"px{i}" for i in range(250)])  # noqa: E731
    train = pd.concat([train.reset_index(drop=True), pixels(len(train))], axis=1)
    test = pd.concat([test.reset_index(drop=True), pixels(len(test))], axis=1)
    train["leak"], test["leak"] = train.outcome.map({"low": 0, "mid": 1, "high": 2}), 1
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)

    def no_crosstab(*args, **kwargs):
        raise AssertionError("a crosstab per column: 0.06 s each on 784 pixel columns")

    monkeypatch.setattr(pd, "crosstab", no_crosstab)
    warnings = profile_data(read_task(folder, Settings())).warnings
    assert [w for w in warnings if "leakage" in w] == ["possible leakage: 'leak' alone predicts the target for 100.0% of rows"]


def _digits(n: int = 5_000, columns: int = 784) -> tuple[TaskSpec, DataProfile]:
    task = TaskSpec(task_dir="/nowhere", task_type="multiclass", target="y", id_column="id", metric="accuracy",
                    greater_is_better=True, submission_format="label", submission_columns=["id", "y"],
                    classes=[str(d) for d in range(10)])
    cols = [ColumnProfile(name=f"px{i}", kind="numeric", dtype="int64", missing_share=0.0, cardinality=200, examples=[])
            for i in range(columns)]
    return task, DataProfile(n_train=n, n_test=n // 4, columns=cols,
                             target=TargetProfile(kind="classes", class_counts={str(d): n // 10 for d in range(10)}))


def _plan(task, profile, budget: float, slowness: float = 1.0):
    return make_blueprint(task, profile, Settings(time_budget_s=budget), budget, available={"traditional"},
                          installed=lambda m: True, gpu=False, slowness=slowness)


def test_digits_as_784_columns_at_10_s_plan_a_cheap_member_before_lightgbm():
    task, profile = _digits()
    bp = _plan(task, profile, 10.0)
    [trad] = bp.tracks
    assert trad.lead in ("knn", "linear") and next(iter(trad.members)) == trad.lead
    assert any(f"{trad.lead} before LightGBM" in n for n in bp.notes)
    # with the time for LightGBM, it goes first as always; and a narrow table never gets a lead
    assert _plan(task, profile, 3_600.0).tracks[0].lead is None
    assert _plan(*_digits(columns=40), 10.0).tracks[0].lead is None


def _state(bp, attempts):
    task, profile = _digits()
    return {"task": task, "profile": profile, "blueprint": bp, "plan": bp.tracks[0], "attempts": attempts,
            "run_dir": "/nowhere", "attempt": len(attempts)}


def test_the_lead_runs_first_then_the_track_s_own_recipe_on_the_time_left():
    from nodes.generate import generate
    from nodes.track import after_failure, after_success, attempt_timeout

    task, profile = _digits()
    bp = _plan(task, profile, 10.0)
    lead = bp.tracks[0].lead
    ctx = RunContext(settings=Settings(time_budget_s=10.0))
    runtime = Runtime(context=ctx)
    first = generate(_state(bp, []), runtime)
    assert first["source"] == "member" and first["member"] == lead and first["attempt"] == 1
    scored = AttemptResult(track="traditional", attempt=1, source="member", member=lead, status="ok", score=0.93,
                           duration_s=2.0, dir="/nowhere")
    assert after_success(_state(bp, [scored]), runtime) == "generate"
    second = generate(_state(bp, [scored]), runtime)
    assert second["source"] == "recipe" and second["member"] is None and second["attempt"] == 2
    # a lead that failed leaves the recipe to run all the same, even on a spent clock
    failed = scored.model_copy(update={"status": "error", "score": None})
    assert after_failure({**_state(bp, [failed]), "source": "member"}, runtime) == "generate"
    spent = RunContext(settings=Settings(time_budget_s=10.0))
    spent.started_at -= 9.5
    assert after_failure({**_state(bp, [failed]), "source": "member"}, Runtime(context=spent)) == "generate"
    # the lead, run before anything scored, gets the floor of a track's first attempt, its check too
    assert attempt_timeout({**_state(bp, []), "member": lead}, spent, check=True) >= 5.0
    # and its folds the seconds its estimate needs (at most the budget again): stopped as too slow,
    # the run would have no score
    assert attempt_timeout({**_state(bp, []), "member": lead}, spent) == 10.0
    # the recipe after a scored lead runs on what is left, without the floor an unscored track gets
    late = RunContext(settings=Settings(time_budget_s=10.0))
    late.started_at -= 7.0
    recipe = {**_state(bp, [scored]), "member": None}
    assert attempt_timeout(recipe, late) < 5.0 <= attempt_timeout({**recipe, "attempts": []}, late)
    # and once the run's time is spent, a recipe that timed out is not repaired: the lead's score stands
    timed_out = AttemptResult(track="traditional", attempt=2, source="recipe", status="timeout", duration_s=3.0,
                              dir="/nowhere")
    assert after_failure({**_state(bp, [scored, timed_out]), "source": "recipe"}, Runtime(context=spent)) == "finish"
