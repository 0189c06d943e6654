import pandas as pd
import pytest

from graph.context import Settings
from nodes.analyze import read_task
from runtime.data import TaskInputError


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
