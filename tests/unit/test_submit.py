import numpy as np
import pandas as pd

from graph.context import Settings
from runtime.submission_file import format_submission, validate_submission
from runtime.task_reader import read_task


def _roundtrip(task, pred, tmp_path):
    frame = format_submission(task, pred)
    path = tmp_path / "sub.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_binary_probability_submission_is_valid(make_task, tmp_path):
    task = read_task(make_task("binary"), Settings())
    frame, path = _roundtrip(task, np.linspace(0, 1, 48), tmp_path)
    assert list(frame.columns) == ["row_key", "outcome"]
    assert validate_submission(task, path) == []


def test_label_submission_decodes_classes(make_task, tmp_path):
    task = read_task(make_task("multiclass"), Settings())
    probs = np.tile([0.1, 0.7, 0.2], (48, 1))
    frame, path = _roundtrip(task, probs, tmp_path)
    assert set(frame.outcome) == {task.classes[1]}
    assert validate_submission(task, path) == []


def test_probability_columns_follow_the_sample(make_task, tmp_path):
    task = read_task(make_task("multiclass_proba"), Settings())
    probs = np.tile([0.2, 0.3, 0.5], (48, 1))
    frame, path = _roundtrip(task, probs, tmp_path)
    assert list(frame.columns) == ["row_key", "high", "low", "mid"]
    assert np.allclose(frame[["high", "low", "mid"]].sum(axis=1), 1)
    assert validate_submission(task, path) == []


def test_rows_follow_the_sample_submission_order(make_task, tmp_path):
    folder = make_task("regression")
    sample = pd.read_csv(folder / "sample_submission.csv").iloc[::-1]
    sample.to_csv(folder / "sample_submission.csv", index=False)
    task = read_task(folder, Settings())
    frame, _ = _roundtrip(task, np.arange(48, dtype=float), tmp_path)
    assert list(frame.row_key) == list(sample.row_key.astype(str))


def test_each_problem_is_reported_on_its_own_line(make_task, tmp_path):
    task = read_task(make_task("multiclass_proba"), Settings())
    frame, path = _roundtrip(task, np.tile([0.2, 0.3, 0.5], (48, 1)), tmp_path)
    broken = frame.drop(index=[0, 1]).copy()
    broken.loc[broken.index[0], "high"] = 1.7
    broken.loc[broken.index[1], "low"] = None
    broken = pd.concat([broken, broken.tail(1)])
    broken.to_csv(path, index=False)
    problems = validate_submission(task, path)
    text = "\n".join(problems)
    for expected in ("rows, expected 48", "duplicated ids", "test ids missing", "missing values", "in [0, 1]"):
        assert expected in text, (expected, problems)
    frame[["row_key", "low", "high", "mid"]].to_csv(path, index=False)
    assert any("order differs" in p for p in validate_submission(task, path))


def test_unknown_labels_and_empty_file(make_task, tmp_path):
    task = read_task(make_task("multiclass"), Settings())
    frame, path = _roundtrip(task, np.tile([0.1, 0.7, 0.2], (48, 1)), tmp_path)
    frame.assign(outcome="purple").to_csv(path, index=False)
    assert any("labels ['purple']" in p for p in validate_submission(task, path))
    path.write_text("")
    assert validate_submission(task, path) == [f"submission is empty: {path}"]
