"""Categorical-heavy tables: CatBoost, the member that suits them, runs before LightGBM and gets
the time it needs when the budget holds it; LightGBM runs after it on what is left. Profiles by
hand; no kernel."""

from __future__ import annotations

from graph.context import Settings
from nodes.blueprint import make_blueprint
from runtime.records import ColumnProfile, DataProfile, TargetProfile, TaskSpec


def _task() -> TaskSpec:
    return TaskSpec(task_dir="/nowhere", task_type="regression", target="profit", id_column="id", metric="mae",
                    greater_is_better=False, submission_format="label", submission_columns=["id", "profit"])


def _profile(categorical: int = 7, numeric: int = 4, n: int = 8_000) -> DataProfile:
    cols = [ColumnProfile(name=f"cat{i}", kind="categorical", dtype="object", missing_share=0.0, cardinality=20, examples=[])
            for i in range(categorical)]
    cols += [ColumnProfile(name=f"num{i}", kind="numeric", dtype="float64", missing_share=0.0, cardinality=n, examples=[])
             for i in range(numeric)]
    cols.append(ColumnProfile(name="country", kind="constant", dtype="object", missing_share=0.0, cardinality=1, examples=[]))
    return DataProfile(n_train=n, n_test=n // 4, columns=cols,
                       target=TargetProfile(kind="values", mean=28.0, std=230.0, min=-6600.0, max=8400.0, skew=7.0))


def _plan(profile: DataProfile, budget: float, installed=lambda m: True):
    return make_blueprint(_task(), profile, Settings(time_budget_s=budget), budget, available={"traditional"},
                          installed=installed, gpu=False)


def test_catboost_leads_on_a_mostly_categorical_table_when_the_budget_holds_it():
    bp = _plan(_profile(), 60.0)
    [trad] = bp.tracks
    assert trad.lead == "catboost" and next(iter(trad.members)) == "catboost"
    assert any("catboost before LightGBM" in n and "7 of 11 columns categorical" in n for n in bp.notes)


def test_no_lead_where_catboost_does_not_fit_is_missing_or_the_table_is_mostly_numeric():
    assert _plan(_profile(), 10.0).tracks[0].lead is None  # LightGBM alone fits 10 s; CatBoost's folds do not
    assert _plan(_profile(), 60.0, installed=lambda m: m != "catboost").tracks[0].lead is None
    assert _plan(_profile(categorical=4, numeric=8), 60.0).tracks[0].lead is None
