import numpy as np
import pandas as pd

from graph.context import Settings
from nodes.analyze import read_task
from nodes.profile import column_kind, profile_data


def test_column_kinds():
    n = 200
    rng = np.random.RandomState(0)
    assert column_kind(pd.Series(rng.normal(size=n), name="x")) == "numeric"
    assert column_kind(pd.Series(rng.choice(["a", "b"], n), name="c")) == "categorical"
    assert column_kind(pd.Series(np.arange(n), name="user_id")) == "id"
    assert column_kind(pd.Series([7] * n, name="k")) == "constant"
    assert column_kind(pd.Series(pd.date_range("2020-01-01", periods=n).astype(str), name="d")) == "datetime"
    words = ["good", "bad", "plot", "actor", "film", "boring", "great", "scene"]
    text = [" ".join(rng.choice(words, 12)) for _ in range(n)]
    assert column_kind(pd.Series(text, name="review")) == "text"


def test_profile_of_a_task(make_task):
    task = read_task(make_task("binary"), Settings())
    prof = profile_data(task)
    kinds = {c.name: c.kind for c in prof.columns}
    assert kinds == {"alpha": "numeric", "beta": "numeric", "colour": "categorical", "grade": "categorical"}
    grade = next(c for c in prof.columns if c.name == "grade")
    assert 0.2 < grade.missing_share < 0.5 and grade.cardinality == 2
    assert sum(prof.target.class_counts.values()) == prof.n_train


def test_warnings_for_leakage_and_duplicates(make_task):
    folder = make_task("binary")
    train = pd.read_csv(folder / "train.csv")
    test = pd.read_csv(folder / "test.csv")
    train["leak"] = train.outcome.map({"yes": "Y", "no": "N"})
    test["leak"] = "Y"
    train = pd.concat([train, train.head(5)])
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    warnings = profile_data(read_task(folder, Settings())).warnings
    assert any("leakage: 'leak'" in w for w in warnings)
    assert any("repeat another row" in w for w in warnings)
