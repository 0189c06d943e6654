"""The columnar cache of a large table (runtime/columnar.py): the values read_table reads, in
compact dtypes, streamed in blocks; timestamps parsed once; the planned rows; the test rows alike."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import runtime.columnar as columnar
from runtime.columnar import (
    build_cache,
    cached_manifest,
    compact_number_dtype,
    plan_frames,
    read_cached,
    timestamp_parse,
)
from runtime.data import read_table


def _task(tmp_path, train: pd.DataFrame, test: pd.DataFrame, **extra) -> dict:
    folder = tmp_path / "task"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    features = [c for c in test.columns if c != "code"]
    return {"task_dir": str(folder), "train_file": "train.csv", "test_file": "test.csv", "id_column": "code",
            "target": "y", "task_type": "regression", "feature_columns": features, "targets": [], **extra}


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    stamps = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.randint(0, 10 ** 8, n), unit="s")
    return pd.DataFrame({
        "code": [f"{i:06d}" for i in range(n)],  # keys keep their leading zeros
        "y": rng.normal(size=n).round(3),
        "when": stamps.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "x": rng.normal(size=n),
        "count": rng.randint(0, 100, n),
        "flag": rng.choice(["true", "false"], n),
        "colour": rng.choice(["red", "NA", "blue", ""], n),
    })


def test_the_cache_holds_what_read_table_reads_in_compact_dtypes(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 4096)  # many blocks: a column's type and stats hold across them
    frame = _frame(3000)
    task = _task(tmp_path, frame, frame.drop(columns="y").head(50))
    manifest = build_cache(task, tmp_path / "run")
    assert manifest["rows"] == 3000 and manifest["read"].startswith("pyarrow")
    assert "code" not in manifest["columns"]  # the train table's id is not a column any fit reads
    cached = read_cached(tmp_path / "run", list(manifest["columns"]))
    reference = read_table(tmp_path / "task" / "train.csv", "train file", keys=["code"])
    assert cached["y"].dtype == np.float64 and cached["x"].dtype == np.float32 and cached["count"].dtype == np.int8
    assert cached["flag"].dtype == bool and cached["flag"].tolist() == reference["flag"].astype(bool).tolist()
    np.testing.assert_array_equal(cached["y"], reference["y"])
    np.testing.assert_allclose(cached["x"], reference["x"], rtol=1e-6)
    assert cached["colour"].isna().tolist() == reference["colour"].isna().tolist()  # "NA" and "" are missing, as read_table says
    # the timestamps once parsed are the instants the recipes' own parse gives
    expected = pd.to_datetime(reference["when"], format="mixed", utc=True)
    assert (cached["when"] == expected).all() and manifest["columns"]["when"]["parse"]["how"] == "arrow"
    assert manifest["columns"]["colour"]["missing"] == int(reference["colour"].isna().sum())


def test_the_cache_is_built_once_and_again_for_another_file(tmp_path):
    task = _task(tmp_path, _frame(200), _frame(20).drop(columns="y"))
    first = build_cache(task, tmp_path / "run")
    table, _ = columnar.cache_paths(tmp_path / "run")
    written = table.stat().st_mtime_ns
    assert build_cache(task, tmp_path / "run") == first and table.stat().st_mtime_ns == written  # reused
    _frame(300).to_csv(tmp_path / "task" / "train.csv", index=False)
    assert cached_manifest(tmp_path / "run", tmp_path / "task" / "train.csv") is None  # stale for the new file
    assert build_cache(task, tmp_path / "run")["rows"] == 300


def test_a_column_that_turns_to_text_late_falls_back_to_read_table(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(columnar, "TYPE_SAMPLE_ROWS", 100)  # the sample sees numbers only
    frame = _frame(2000)
    frame["x"] = frame["x"].astype(object)
    frame.loc[1900, "x"] = "n/a (broken sensor)"
    task = _task(tmp_path, frame, frame.drop(columns="y").head(20))
    manifest = build_cache(task, tmp_path / "run")
    assert manifest["read"].startswith("read_table") and "stream" in manifest["read"]
    cached = read_cached(tmp_path / "run", ["x"])
    assert cached["x"].iloc[1900] == "n/a (broken sensor)" and cached["x"].iloc[0] == str(frame["x"].iloc[0])


def test_the_test_rows_get_the_train_rows_dtypes(tmp_path):
    frame = _frame(500)
    test = frame.drop(columns="y").head(30).copy()
    test.loc[0, "count"] = 100_000  # beyond the train's int8: the test column becomes float32, not a wrapped int
    task = _task(tmp_path, frame, test)
    manifest = build_cache(task, tmp_path / "run")
    train, test_rows = plan_frames(task, tmp_path / "run", {"rows": 200, "seed": 3})
    assert len(train) == 200 and set(train.columns) == set(manifest["columns"])
    assert test_rows["when"].dtype == train["when"].dtype and test_rows["x"].dtype == np.float32
    assert test_rows["count"].dtype == np.float32 and test_rows["count"].iloc[0] == 100_000
    assert test_rows["code"].iloc[0] == "000000"  # keys untouched
    again, _ = plan_frames(task, tmp_path / "run", {"rows": 200, "seed": 3})
    pd.testing.assert_frame_equal(train, again)  # the same seeded rows every time (the harness, solution.py)
    other, _ = plan_frames(task, tmp_path / "run", {"rows": 200, "seed": 4})
    assert not train["y"].equals(other["y"])


def test_rows_without_a_target_are_never_planned(tmp_path):
    frame = _frame(400)
    frame.loc[::2, "y"] = np.nan
    task = _task(tmp_path, frame, frame.drop(columns="y").head(10))
    build_cache(task, tmp_path / "run")
    train, _ = plan_frames(task, tmp_path / "run", {"rows": 1000, "seed": 0})
    assert len(train) == 200 and train["y"].notna().all()


@pytest.mark.parametrize("values, how", [
    (["2012-04-21 08:30:00 UTC", "2013-01-02 23:59:59 UTC"], "arrow"),
    (["2016-01-25", "2017-12-31"], "arrow"),
    (["2016-01-25T13:32:20.125Z", "2016-01-26T00:00:00.5Z"], "pandas"),
    (["red", "blue"], None),
    (["10:30", "11:45 am", "2020-01-01"], None),  # no one format reads them as the recipes do
])
def test_timestamps_are_parsed_only_by_a_format_that_reads_them_exactly(values, how):
    parse = timestamp_parse(pd.Series(values * 20))
    assert (parse or {}).get("how") == how
    if parse:
        parsed = columnar.parse_timestamps(pd.Series(values), parse)
        assert (parsed == pd.to_datetime(pd.Series(values), format="mixed", utc=True)).all()


@pytest.mark.parametrize("low, high, whole, missing, dtype", [
    (0, 100, True, False, "int8"), (-1, 40_000, True, False, "int32"), (0, 1, True, True, "float32"),
    (0, 1.5e9, True, True, "float64"),  # epoch seconds with gaps: float32 would lose them
    (-3.5, 3.5, False, False, "float32"),
])
def test_numbers_get_the_smallest_dtype_that_holds_them(low, high, whole, missing, dtype):
    assert compact_number_dtype(low, high, whole, missing) == dtype


def test_a_killed_conversion_leaves_no_manifest(tmp_path, monkeypatch):
    task = _task(tmp_path, _frame(300), _frame(10).drop(columns="y"))

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(columnar, "_convert", broken)
    with pytest.raises(KeyboardInterrupt):
        build_cache(task, tmp_path / "run")
    assert cached_manifest(tmp_path / "run") is None
    table, manifest = columnar.cache_paths(tmp_path / "run")
    assert os.listdir(table.parent) == []  # no table, no manifest, no half-written file
