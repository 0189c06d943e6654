"""Few positives (a binary target whose rarer class has under 500 rows and under 20% of them):
LightGBM's trees are sized by the positives, not the rows, in the recipe's defaults, in the
plan's estimate of them, and in a real fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prompts.recipes.traditional.model import Model
from runtime.costs import plan_data
from runtime.params import SPACES, Data
from runtime.records import ColumnProfile, DataProfile, TargetProfile, TaskSpec

TRADITIONAL = SPACES["traditional"]


def test_few_positives_get_small_trees_sized_by_the_positives():
    few = TRADITIONAL.defaults(Data(n=3_700, task_type="binary", positives=222))
    assert (few["num_leaves"], few["min_child_samples"], few["learning_rate"]) == (4, 74, 0.02)
    # balanced classes, many positives, or another task: the row-sized defaults
    for data in (Data(n=3_700, task_type="binary", positives=1_800), Data(n=30_000, task_type="binary", positives=2_000),
                 Data(n=3_700, task_type="multiclass", positives=222), Data(n=3_700, task_type="binary")):
        assert TRADITIONAL.defaults(data)["num_leaves"] == 31


def test_the_plan_reads_the_positives_from_the_profile():
    task = TaskSpec(task_dir="/nowhere", task_type="binary", target="y", id_column="id", metric="auc",
                    greater_is_better=True, submission_format="proba", submission_columns=["id", "y"], classes=["no", "yes"])
    cols = [ColumnProfile(name=f"x{i}", kind="numeric", dtype="float64", missing_share=0.0, cardinality=50, examples=[])
            for i in range(85)]
    profile = DataProfile(n_train=4_657, n_test=1_165, columns=cols,
                          target=TargetProfile(kind="classes", class_counts={"No": 4_379, "Yes": 278}))
    assert plan_data(task, profile).positives == 222


def test_a_fit_on_a_rare_class_uses_them():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2_000, 5)), columns=list("abcde"))
    y = (X.a + rng.normal(size=2_000) > 2.3).astype(int).to_numpy()  # ~5% positives
    assert 20 < y.sum() < 200
    task = {"task_type": "binary", "metric": "auc", "classes": ["0", "1"]}
    model = Model(task, {"n_estimators": 20}).fit(X, y)
    assert model.resolved["num_leaves"] == 4 and model.resolved["min_child_samples"] == max(20, int(y.sum()) // 3)
    assert Model(task, {"n_estimators": 20, "num_leaves": 9}).fit(X, y).resolved["num_leaves"] == 9  # params override
