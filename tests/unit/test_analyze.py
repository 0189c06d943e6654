import re

import pandas as pd
import pytest

from graph.context import Settings
from runtime.data import TaskInputError
from runtime.task_reader import read_task


def test_binary_task_read_from_files_and_description(make_task):
    task = read_task(make_task("binary"), Settings())
    assert (task.task_type, task.target, task.id_column, task.metric) == ("binary", "outcome", "row_key", "auc")
    assert task.greater_is_better is True
    assert task.classes == ["no", "yes"]  # "yes" is the positive class, last
    assert task.submission_format == "proba"
    assert task.submission_columns == ["row_key", "outcome"]


def test_multiclass_with_probability_columns_takes_the_sample_order(make_task):
    task = read_task(make_task("multiclass_proba"), Settings())
    assert task.task_type == "multiclass"
    assert task.metric == "log_loss"
    assert task.submission_format == "proba_cols"
    assert task.classes == ["high", "low", "mid"]
    assert task.submission_columns == ["row_key", "high", "low", "mid"]


def test_multiclass_labels_and_regression(make_task):
    labels = read_task(make_task("multiclass", name="m"), Settings())
    assert (labels.task_type, labels.metric, labels.submission_format) == ("multiclass", "accuracy", "label")
    reg = read_task(make_task("regression", name="r"), Settings())
    assert (reg.task_type, reg.metric, reg.greater_is_better) == ("regression", "rmse", False)


def test_default_metric_when_the_description_names_none(make_task):
    task = read_task(make_task("regression", description="Predict the outcome."), Settings())
    assert task.metric == "rmse"
    assert any("default" in r for r in task.reasons)


def test_flags_override_and_are_checked(make_task):
    folder = make_task("binary")
    assert read_task(folder, Settings(metric="Log Loss")).metric == "log_loss"
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        read_task(folder, Settings(metric="nope"))
    with pytest.raises(TaskInputError, match="target 'missing' is not a column"):
        read_task(folder, Settings(target="missing"))
    with pytest.raises(TaskInputError, match="id column 'nope' is not in the test file"):
        read_task(folder, Settings(id_column="nope"))


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "train.csv").unlink(), "train file not found"),
    (lambda d: (d / "train.csv").write_text(""), "train file is empty"),
    (lambda d: (d / "test.csv").write_bytes(b"\x89PNG\x00\x00binary"), "test file is not a text table"),
    (lambda d: pd.read_csv(d / "test.csv")[["row_key", "alpha"]].to_csv(d / "test.csv", index=False),
     "test file lacks 3 of the 4 feature columns"),
    (lambda d: pd.read_csv(d / "train.csv").drop(columns="outcome").to_csv(d / "train.csv", index=False), "cannot tell the target"),
])
def test_bad_input_gives_one_clear_line(make_task, breakage, message):
    folder = make_task("binary")
    breakage(folder)
    with pytest.raises(TaskInputError, match=message) as info:
        read_task(folder, Settings())
    assert "\n" not in str(info.value)


def test_missing_task_folder(tmp_path):
    with pytest.raises(TaskInputError, match="task folder not found"):
        read_task(tmp_path / "nowhere", Settings())


def test_no_sample_submission_and_unusual_names(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    train = pd.DataFrame({"PassengerKey": range(40), "Fare Paid": [i % 7 * 1.5 for i in range(40)], "Survived?": [i % 2 for i in range(40)]})
    train.iloc[:30].to_csv(folder / "train.csv", index=False)
    train.iloc[30:].drop(columns="Survived?").to_csv(folder / "test.csv", index=False)
    task = read_task(folder, Settings(id_column="PassengerKey"))
    assert (task.target, task.task_type, task.classes[-1]) == ("Survived?", "binary", "1")
    assert task.sample_submission_file is None


def test_labels_in_the_sample_ask_for_a_label_metric_when_none_is_named(make_task):
    folder = make_task("binary", description="Say which rows turn out yes.")
    sample = __import__("pandas").read_csv(folder / "sample_submission.csv").assign(outcome="no")
    sample.to_csv(folder / "sample_submission.csv", index=False)
    task = read_task(folder, Settings())
    assert (task.metric, task.submission_format) == ("accuracy", "label")


def _sample_of(folder, ids):
    pd.DataFrame({"row_key": ids, "outcome": 0.5}).to_csv(folder / "sample_submission.csv", index=False)


@pytest.mark.parametrize("ids, message", [
    (lambda test: [f"s{i}" for i in test], "none of the sample submission's 48 ids in 'row_key'"),
    (lambda test: [f"{i:07d}" for i in test], "written differently: write them alike in both files"),
    (lambda test: list(test) + [1, 2], "the sample submission lists 2 id(s) in 'row_key' that the test file lacks"),
    (lambda test: list(test[:40]) + [7, 8], "the sample submission lists 2 id(s)"),  # some match, some not
    (lambda test: list(test) + list(test[:3]), "the sample submission repeats 3 id(s) in 'row_key'"),
])
def test_a_sample_submission_of_other_ids_is_refused(make_task, ids, message):
    folder = make_task("binary")
    _sample_of(folder, ids(pd.read_csv(folder / "test.csv")["row_key"].tolist()))
    with pytest.raises(TaskInputError, match=re.escape(message)) as info:
        read_task(folder, Settings())
    assert "\n" not in str(info.value)


def test_a_sample_submission_of_some_test_rows_asks_for_those_rows(make_task, tmp_path):
    """The sample lists 30 of the 48 test ids, shuffled: the submission holds those 30, in the
    sample's order, said loudly; validation expects them and no others."""
    import numpy as np

    from runtime.submission_file import format_submission, validate_submission

    folder = make_task("binary")
    test_ids = pd.read_csv(folder / "test.csv")["row_key"].astype(str).tolist()
    asked = list(np.random.RandomState(0).permutation(test_ids)[:30])
    _sample_of(folder, asked)
    task = read_task(folder, Settings())
    assert any(w.startswith("LEFT OUT 18 of the test file's 48 rows") for w in task.warnings), task.warnings
    out = format_submission(task, np.linspace(0, 1, len(test_ids)))
    assert out["row_key"].tolist() == asked
    by_id = dict(zip(test_ids, np.linspace(0, 1, len(test_ids))))
    assert out["outcome"].tolist() == [by_id[i] for i in asked]  # each row keeps its own prediction
    path = tmp_path / "sub.csv"
    out.to_csv(path, index=False)
    assert validate_submission(task, path) == []
    pd.DataFrame({"row_key": test_ids, "outcome": 0.5}).to_csv(path, index=False)  # every test row: not what was asked
    problems = validate_submission(task, path)
    assert "48 rows, expected 30 (one per id the sample submission lists)" in problems
    assert any(p.startswith("18 ids not in the sample submission") for p in problems)


def test_no_id_and_a_sample_of_another_length_is_said_loudly(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    frame = pd.DataFrame({"a": [i % 5 for i in range(60)], "b": [i % 3 for i in range(60)], "y": [i % 2 for i in range(60)]})
    frame.iloc[:40].to_csv(folder / "train.csv", index=False)
    frame.iloc[40:].drop(columns="y").to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"y": [0, 1, 0]}).to_csv(folder / "sample_submission.csv", index=False)
    task = read_task(folder, Settings())
    assert task.id_column is None
    assert any(w.startswith("ROWS BY POSITION: the sample submission has 3 rows and the test file 20") for w in task.warnings)


def test_a_column_named_like_a_renamed_repeat_is_a_column(make_task):
    """x1.1 beside x1 is two columns, in train and test alike: both are features, nothing dropped."""
    folder = make_task("binary")
    for name in ("train.csv", "test.csv"):
        frame = pd.read_csv(folder / name)
        frame.insert(1, "alpha.1", frame["alpha"] * 2)
        frame.to_csv(folder / name, index=False)
    task = read_task(folder, Settings())
    assert {"alpha", "alpha.1"} <= set(task.feature_columns) and task.warnings == []


@pytest.mark.parametrize("name", ["train.csv", "test.csv"])
def test_a_repeated_header_name_is_refused_naming_it_and_the_file(make_task, name):
    folder = make_task("binary")
    lines = (folder / name).read_text().splitlines()
    lines[0] = lines[0].replace("beta", "alpha")  # two columns named alpha
    (folder / name).write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskInputError, match=f"{name[:-4]} file has 2 columns named 'alpha' in its header") as info:
        read_task(folder, Settings())
    assert "\n" not in str(info.value) and str(info.value).endswith(name)
