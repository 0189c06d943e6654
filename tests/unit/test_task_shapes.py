"""Task folders laid out like real competitions: where the training table is, and shapes iml
does not solve yet, named in one line instead of guessed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.context import Settings
from runtime.data import TaskInputError
from runtime.task_reader import read_task


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    return pd.DataFrame({"id": range(n), "x": rng.normal(size=n), "y": rng.choice(["a", "b"], n)})


def write(folder, train_name="train.csv", test=True, sample_cols=("id", "y")):
    folder.mkdir(parents=True, exist_ok=True)
    frame = table()
    frame.iloc[:40].to_csv(folder / train_name, index=False)
    if test:
        frame.iloc[40:].drop(columns="y").to_csv(folder / "test.csv", index=False)
    sample = frame.iloc[40:][["id"]].assign(**{c: 0.5 for c in sample_cols if c != "id"})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    return folder


def images(folder, count=25, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or range(count):
        (folder / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def refused(folder) -> str:
    with pytest.raises(TaskInputError) as info:
        read_task(folder, Settings())
    assert "\n" not in str(info.value)
    return str(info.value)


def test_the_training_table_may_be_labels_csv(tmp_path):
    task = read_task(write(tmp_path / "t", train_name="labels.csv"), Settings())
    assert task.train_file == "labels.csv" and task.target == "y"
    assert any("labels.csv" in r for r in task.reasons)


def test_else_the_one_table_that_holds_the_targets(tmp_path):
    task = read_task(write(tmp_path / "t", train_name="data.csv"), Settings())
    assert task.train_file == "data.csv"
    assert any("the table that holds the targets" in r for r in task.reasons)


def test_no_test_table_is_named(tmp_path):
    message = refused(write(tmp_path / "t", test=False))
    assert message.startswith("test file not found") and "sample submission" in message


def test_audio_is_named(tmp_path):
    folder = write(tmp_path / "t")
    (folder / "train").mkdir()
    (folder / "train" / "a.wav").write_bytes(b"RIFF")
    assert refused(folder).startswith("this is an audio task (1 .wav files)")


def test_detection_is_named(tmp_path):
    folder = write(tmp_path / "t", sample_cols=("id", "PredictionString"))
    assert "detection / segmentation task" in refused(folder)


def test_image_to_image_is_named(tmp_path):
    folder = write(tmp_path / "t")
    images(folder / "train", names=range(5))
    images(folder / "train_cleaned", names=range(5))
    assert "image-to-image task (train/ and train_cleaned/" in refused(folder)


def test_an_image_task_whose_table_names_no_image_is_named(tmp_path):
    folder = write(tmp_path / "t", train_name="labels.csv", test=False)
    images(folder / "train", names=[f"other_{i}" for i in range(25)])
    message = refused(folder)
    assert message.startswith("this is an image task (images in train/), but no column of labels.csv names the image files")


def test_images_no_column_names_are_left_aside_with_a_warning(tmp_path):
    folder = write(tmp_path / "t")
    images(folder / "images", names=[f"photo_{i}" for i in range(25)])
    task = read_task(folder, Settings())
    assert task.images is None
    assert any("images in images/ are not used: no column of train.csv names them" in w for w in task.warnings)


def test_a_free_text_target_is_sequence_to_sequence(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    n = 80
    frame = pd.DataFrame({"id": range(n), "before": [f"word {i}" for i in range(n)], "after": [f"written {i}" for i in range(n)]})
    frame.iloc[:60].to_csv(folder / "train.csv", index=False)
    frame.iloc[60:].drop(columns="after").to_csv(folder / "test.csv", index=False)
    frame.iloc[60:][["id"]].assign(after="x").to_csv(folder / "sample_submission.csv", index=False)
    assert refused(folder).startswith("this is a sequence-to-sequence task: the target 'after' is free text")


def several(tmp_path, values: dict, description: str = "") -> object:
    """A task whose sample submission asks for the columns of `values` (each a train column)."""
    folder = tmp_path / "t"
    folder.mkdir(parents=True)
    n = len(next(iter(values.values())))
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"id": range(n), "x": rng.normal(size=n), **values})
    frame.iloc[:n - 20].to_csv(folder / "train.csv", index=False)
    frame.iloc[n - 20:][["id", "x"]].to_csv(folder / "test.csv", index=False)
    frame.iloc[n - 20:][["id"]].assign(**{c: 0 for c in values}).to_csv(folder / "sample_submission.csv", index=False)
    (folder / "description.md").write_text(description)
    return read_task(folder, Settings())


def test_several_numbers_are_a_multitarget_task_with_the_column_wise_metric(tmp_path):
    rng = np.random.RandomState(1)
    task = several(tmp_path, {"a": rng.uniform(1, 9, 80), "b": rng.uniform(0, 100, 80)},
                   "Evaluated on the mean columnwise root mean squared logarithmic error.")
    assert (task.task_type, task.metric, task.column_metric, task.submission_format) == (
        "multitarget", "mean_columnwise_rmsle", "rmsle", "columns")
    assert task.targets == ["a", "b"] and task.feature_columns == ["x"]


def test_several_zero_one_columns_are_labels_and_one_hot_ones_are_classes(tmp_path):
    rng = np.random.RandomState(2)
    labels = several(tmp_path / "l", {"toxic": rng.randint(0, 2, 80), "insult": rng.randint(0, 2, 80)})
    assert (labels.task_type, labels.metric, labels.column_metric) == ("multilabel", "mean_columnwise_auc", "auc")
    codes = rng.randint(0, 3, 80)
    onehot = several(tmp_path / "o", {c: (codes == i).astype(int) for i, c in enumerate(["healthy", "rust", "scab"])},
                     "Scored on mean column-wise ROC AUC.")
    assert (onehot.task_type, onehot.one_hot, onehot.metric, onehot.submission_format) == ("multiclass", True, "auc", "proba_cols")
    assert onehot.classes == ["healthy", "rust", "scab"]


def test_probability_columns_are_labels_only_when_the_metric_ranks_labels(tmp_path):
    rng = np.random.RandomState(3)
    soft = {"p": rng.uniform(0, 1, 80), "q": rng.uniform(0, 1, 80)}
    assert several(tmp_path / "a", soft, "Scored by ROC AUC on each column.").task_type == "multilabel"
    assert several(tmp_path / "b", soft, "Scored by RMSE.").task_type == "multitarget"


def test_several_label_columns_of_text_are_refused_in_one_line(tmp_path):
    message = refused_several(tmp_path, {"a": ["x", "y"] * 40, "b": ["u", "v"] * 40})
    assert "hold labels, not numbers" in message and "--target" in message


def refused_several(tmp_path, values):
    with pytest.raises(TaskInputError) as info:
        several(tmp_path, values)
    return str(info.value)


def test_no_id_and_columns_copied_from_the_test_rows(tmp_path):
    """detecting-insults' shape: no id; the submission repeats the test rows' Date and Comment
    beside the prediction, and rows are matched by their order."""
    from runtime.submission_file import format_submission, validate_submission

    folder = tmp_path / "t"
    folder.mkdir()
    rng = np.random.RandomState(4)
    n = 90
    frame = pd.DataFrame({"Insult": rng.randint(0, 2, n), "Date": rng.choice(["20120618", "", "20120619"], n),
                          "Comment": [f"you are number {i}" for i in range(n)]})
    frame.iloc[:60].to_csv(folder / "train.csv", index=False)
    test = frame.iloc[60:].drop(columns="Insult")
    test.to_csv(folder / "test.csv", index=False)
    frame.iloc[60:].assign(Insult=0).to_csv(folder / "sample_submission_null.csv", index=False)
    (folder / "description.md").write_text("Scored by AUC.")
    task = read_task(folder, Settings())
    assert task.id_column is None and task.target == "Insult" and task.passthrough_columns == ["Date", "Comment"]
    assert task.submission_columns == ["Insult", "Date", "Comment"] and task.submission_format == "proba"
    assert any("copied from the test rows" in r for r in task.reasons)
    out = format_submission(task, np.linspace(0, 1, len(test)))
    assert list(out.columns) == ["Insult", "Date", "Comment"]
    assert out["Comment"].tolist() == test["Comment"].tolist()
    path = tmp_path / "sub.csv"
    out.to_csv(path, index=False)
    assert validate_submission(task, path) == []
