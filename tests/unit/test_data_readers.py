"""The table readers on small files written here: formats, encodings, separators, exact keys."""

from __future__ import annotations

import json
import zipfile

import pandas as pd
import pytest

from runtime.data import TaskInputError, find_sample_submission, find_table, read_header, read_table, sniff


@pytest.mark.parametrize("body, encoding, sep", [
    ("a,b\n1,2\n".encode(), "utf-8", ","),
    ("\ufeffa;b\n1;2\n".encode(), "utf-8-sig", ";"),
    ("a\tb\nJosé\t2\n".encode("cp1252"), "cp1252", "\t"),
    ('a,b\n"x;y;z",2\n"p;q",3\n'.encode(), "utf-8", ","),  # semicolons inside quotes do not count
    ("a|b|c\n1|2|3\n".encode(), "utf-8", "|"),
])
def test_sniff_finds_encoding_and_separator(body, encoding, sep):
    assert sniff(body) == (encoding, sep)


def test_keys_stay_exact_strings_and_other_columns_are_understood(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,price,flag,city\n000123,"1,234,567.5",TRUE,NA\nNA,12,false,Oslo\n')
    frame = read_table(path, keys=["id"])
    assert frame["id"].tolist() == ["000123", "NA"]
    assert frame["price"].tolist() == [1234567.5, 12.0]
    assert frame["flag"].tolist() == [True, False]
    assert pd.isna(frame["city"][0])  # NA is missing in every column but the keys


def test_semicolon_files_read_decimal_commas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("x;y;z\r\n1.234,5;3,5;ä\r\n2,0;4.5;b\r\n".encode("cp1252"))
    frame = read_table(path)
    assert frame["x"].tolist() == [1234.5, 2.0] and frame["y"].tolist() == [3.5, 4.5] and frame["z"].tolist() == ["ä", "b"]


def test_text_that_looks_a_bit_numeric_stays_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("code,n\nA1,1\n12,2\nB-7,3\n")
    assert read_table(path)["code"].tolist() == ["A1", "12", "B-7"]


def test_json_lines_records_and_zip(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"id": 1, "t": "x"}, {"id": 2, "t": "y"}]))
    (tmp_path / "b.jsonl").write_text('{"id": 1, "t": "x"}\n{"id": 2, "t": "y"}\n')
    with zipfile.ZipFile(tmp_path / "c.csv.zip", "w") as z:
        z.writestr("c.csv", "id,t\n1,x\n2,y\n")
    for name in ("a.json", "b.jsonl", "c.csv.zip"):
        frame = read_table(tmp_path / name, keys=["id"])
        assert frame.to_dict(orient="list") == {"id": ["1", "2"], "t": ["x", "y"]}, name
        assert read_header(tmp_path / name) == ["id", "t"]


def test_parquet(tmp_path):
    pd.DataFrame({"id": [7, 8], "v": [0.5, 1.5]}).to_parquet(tmp_path / "p.parquet")
    frame = read_table(tmp_path / "p.parquet", keys=["id"])
    assert frame["id"].tolist() == ["7", "8"] and frame["v"].tolist() == [0.5, 1.5]


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b"PK\x03\x04 not really"), "not a zip archive"),
    (lambda p: p.write_text(""), "is empty"),
])
def test_bad_tables_are_one_line(tmp_path, write, message):
    path = tmp_path / "t.csv.zip"
    write(path)
    with pytest.raises(TaskInputError, match=message) as info:
        read_table(path, "train file")
    assert "\n" not in str(info.value)


def test_finding_the_tables_under_their_usual_names(tmp_path):
    (tmp_path / "train.tsv").write_text("a\tb\n1\t2\n")
    (tmp_path / "test.csv.zip").write_bytes(b"")
    (tmp_path / "sample_submission_null.csv").write_text("a\n1\n")
    assert find_table(tmp_path, "train") == tmp_path / "train.tsv"
    assert find_table(tmp_path, "test") == tmp_path / "test.csv.zip"
    assert find_table(tmp_path, "labels") is None
    assert find_sample_submission(tmp_path) == tmp_path / "sample_submission_null.csv"
    (tmp_path / "sample_submission_null.csv").rename(tmp_path / "sampleSubmission.csv")
    assert find_sample_submission(tmp_path) == tmp_path / "sampleSubmission.csv"
