"""The table readers on small files written here: formats, encodings, separators, exact keys."""

from __future__ import annotations

import json
import zipfile

import numpy as np
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


def _compress(suffix: str, data: bytes) -> bytes:
    import bz2
    import gzip
    import lzma

    import zstandard

    return {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": zstandard.ZstdCompressor().compress}[suffix](data)


@pytest.mark.parametrize("compression", [".gz", ".bz2", ".xz", ".zst"])
def test_compressed_tables_read_like_plain_ones(tmp_path, compression):
    """Each format, compressed as pandas reads it: the same frame, keys as written, as the plain file."""
    pd.DataFrame({"id": ["007", "8"], "v": [0.5, 1.5]}).to_parquet(tmp_path / "p.parquet")
    plain = {"c.csv": "id;v\r\n007;0,5\r\n8;1,5\r\n".encode("cp1252"),  # the sniffing sees the decompressed bytes
             "j.jsonl": b'{"id": "007", "v": 0.5}\n{"id": "8", "v": 1.5}\n',
             "p.parquet": (tmp_path / "p.parquet").read_bytes()}
    for name, data in plain.items():
        path = tmp_path / (name + compression)
        path.write_bytes(_compress(compression, data))
        frame = read_table(path, "train file", keys=["id"])
        assert frame.to_dict(orient="list") == {"id": ["007", "8"], "v": [0.5, 1.5]}, path.name
        assert read_header(path) == ["id", "v"]
        if not name.endswith(".parquet"):
            assert read_table(path, keys=["id"], nrows=1)["id"].tolist() == ["007"]


def test_compressed_tables_are_found_under_their_usual_names(tmp_path):
    (tmp_path / "train.csv.gz").write_bytes(_compress(".gz", b"a,b\n1,2\n"))
    (tmp_path / "test.tsv.xz").write_bytes(_compress(".xz", b"a\tb\n1\t2\n"))
    (tmp_path / "sample_submission.csv.bz2").write_bytes(_compress(".bz2", b"a\n1\n"))
    (tmp_path / "notes.txt.gz.bak").write_bytes(b"")
    assert find_table(tmp_path, "train") == tmp_path / "train.csv.gz"
    assert find_table(tmp_path, "test") == tmp_path / "test.tsv.xz"
    assert find_sample_submission(tmp_path) == tmp_path / "sample_submission.csv.bz2"


@pytest.mark.parametrize("name, data, message", [
    ("t.csv.gz", b"a,b\n1,2\n", "train file is named .gz but is not gzip-compressed"),
    ("t.csv.xz", b"a,b\n1,2\n", "train file is named .xz but is not xz-compressed"),
    ("t.csv.gz", _compress(".gz", b"a,b\n" + b"1,2\n" * 5000)[:60], "train file is not a readable"),
    ("t.csv.bz2", _compress(".bz2", b"\x89PNG\x00\x00\x00binary"), "train file is not a text table"),
])
def test_broken_compressed_tables_are_one_line(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TaskInputError, match=message) as info:
        read_table(path, "train file")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_zstandard_missing_is_said_in_one_line(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "train.csv.zst"
    path.write_bytes(_compress(".zst", b"a,b\n1,2\n"))
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard raises ImportError
    with pytest.raises(TaskInputError, match=r"needs the zstandard package \(pip install zstandard\)") as info:
        read_table(path, "train file")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("header, repeated", [
    ("id,x1,x1,y", "x1"),
    ('"id";"x1";"y";"x1"', "x1"),  # quoted, another separator: the header as the reader parses it
    ("id,x1,x1,x1,y,y", "x1"),
])
def test_a_header_that_repeats_a_name_is_refused(tmp_path, header, repeated):
    path = tmp_path / "train.csv"
    width = len(header.split(header[4] if header[0] == '"' else ","))
    path.write_text(header + "\n" + (";" if header[0] == '"' else ",").join(["1"] * width) + "\n")
    with pytest.raises(TaskInputError, match=f"train file has .*columns named '{repeated}'.* in its header") as info:
        read_header(path, "train file")
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    gz = tmp_path / "test.csv.gz"
    gz.write_bytes(_compress(".gz", path.read_bytes()))
    with pytest.raises(TaskInputError, match=f"test file has .*'{repeated}'"):
        read_table(gz, "test file", keys=["id"])


def test_names_that_only_look_repeated_are_kept(tmp_path):
    """A real column named x1.1 beside x1 (pandas would name a second x1 so), and blank names (a
    saved index) are not repetitions."""
    path = tmp_path / "t.csv"
    path.write_text("x1,x1.1,,\n1,2,3,4\n")
    assert read_header(path) == ["x1", "x1.1", "Unnamed: 2", "Unnamed: 3"]


def test_a_parquet_schema_that_repeats_a_name_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"]), tmp_path / "twice.parquet")
    with pytest.raises(TaskInputError, match="test file has 2 columns named 'a' in its header") as info:
        read_table(tmp_path / "twice.parquet", "test file")
    assert "\n" not in str(info.value)


def test_a_few_columns_of_a_large_table_read_in_chunks_as_a_whole_read_gives_them(tmp_path, monkeypatch):
    import runtime.data as data

    n = 900
    frame = pd.DataFrame({"code": [f"{i:05d}" for i in range(n)], "whole": np.arange(n), "real": np.linspace(0, 1, n),
                          "late": np.arange(n).astype(object), "word": ["a", "NA", "b"] * (n // 3)})
    frame.loc[850, "late"] = "see notes"  # numbers that turn to text after the first chunks
    frame.to_csv(tmp_path / "t.csv", index=False)
    columns = ["code", "whole", "real", "late", "word"]
    whole = read_table(tmp_path / "t.csv", "t", keys=["code"], columns=columns)
    monkeypatch.setattr(data, "CHUNKED_BYTES", 0)
    monkeypatch.setattr(data, "CHUNK_ROWS", 100)
    chunked = read_table(tmp_path / "t.csv", "t", keys=["code"], columns=columns)
    pd.testing.assert_frame_equal(chunked, whole, check_dtype=True)
    assert chunked["code"].iloc[7] == "00007" and chunked["whole"].dtype == np.int64 and chunked["late"].iloc[850] == "see notes"
