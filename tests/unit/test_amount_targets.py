"""Targets that are an amount (profit = sales x margin): the profile finds the positive column the
target's size follows, the blueprint plans the ratio member (LightGBM on y / x, predictions times
x) before the other members, and that member beats LightGBM on y where y is such a product. Real
files and fits on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.context import Settings
from nodes.blueprint import make_blueprint
from prompts.recipes.members.ratio.features import Features as RatioFeatures
from prompts.recipes.members.ratio.model import Model as RatioModel
from prompts.recipes.traditional.features import Features
from prompts.recipes.traditional.model import Model
from runtime.data_profile import profile_data
from runtime.task_reader import read_task


def _amounts(n: int, seed: int = 0) -> pd.DataFrame:
    """Sales, a discount and a sub-category that set the margin; the profit is their product."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"sales": np.exp(rng.normal(4.0, 1.2, n)), "discount": rng.choice([0.0, 0.2, 0.5], n),
                          "kind": rng.choice(["tables", "paper", "phones", "chairs"], n), "noise": rng.normal(size=n)})
    margin = frame.kind.map({"tables": -0.05, "paper": 0.4, "phones": 0.15, "chairs": 0.08}) - 0.6 * frame.discount
    frame["profit"] = frame.sales * (margin + rng.normal(0, 0.02, n))
    return frame


def _task_folder(tmp_path, frame: pd.DataFrame):
    frame = frame.assign(row_id=np.arange(len(frame)))
    cut = int(0.8 * len(frame))
    frame.iloc[:cut].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[cut:].drop(columns="profit").to_csv(tmp_path / "test.csv", index=False)
    frame.iloc[cut:][["row_id"]].assign(profit=0.0).to_csv(tmp_path / "sample_submission.csv", index=False)
    (tmp_path / "description.md").write_text("Predict the profit of each order. Submissions are scored on mean absolute error.")
    return read_task(tmp_path, Settings())


def test_the_profile_names_the_column_an_amount_scales_with(tmp_path):
    task = _task_folder(tmp_path, _amounts(600))
    target = profile_data(task).target
    assert target.scale_column == "sales" and target.scale_correlation > 0.4
    (tmp_path / "other").mkdir()
    flat = _amounts(600).assign(profit=lambda f: f.noise * 10 + f.discount)  # no column scales it
    assert profile_data(_task_folder(tmp_path / "other", flat)).target.scale_column is None


def test_the_blueprint_plans_the_ratio_member_first_where_the_profile_found_a_scale(tmp_path):
    task = _task_folder(tmp_path, _amounts(600))
    profile = profile_data(task)
    bp = make_blueprint(task, profile, Settings(time_budget_s=600.0), 600.0, available={"traditional"},
                        installed=lambda m: True, gpu=False)
    assert next(iter(bp.tracks[0].members)) == "ratio"
    plain = profile.model_copy(update={"target": profile.target.model_copy(update={"scale_column": None})})
    bp = make_blueprint(task, plain, Settings(time_budget_s=600.0), 600.0, available={"traditional"},
                        installed=lambda m: True, gpu=False)
    assert "ratio" not in bp.tracks[0].members and "ratio" not in bp.tracks[0].members_if_time


def test_the_ratio_member_learns_a_product_that_lightgbm_on_y_cannot(tmp_path):
    task = _task_folder(tmp_path, _amounts(1_500))
    profile = profile_data(task)
    t, p = task.model_dump(), profile.model_dump()
    frame = _amounts(1_500)
    X, y = frame.drop(columns="profit"), frame.profit.to_numpy()
    tr, va, te = slice(0, 900), slice(900, 1_200), slice(1_200, None)

    def error(features_cls, model_cls) -> float:
        f = features_cls(t, p, {}).fit(X[tr].reset_index(drop=True), y[tr])
        A, V, T = (f.transform(X[s].reset_index(drop=True)) for s in (tr, va, te))
        model = model_cls(t, {"n_estimators": 300}).fit(A, y[tr], V, y[va])
        return float(np.abs(model.predict(T) - y[te]).mean())

    plain, ratio = error(Features, Model), error(RatioFeatures, RatioModel)
    assert ratio < 0.7 * plain
