"""Task files as people really have them, through `iml run` as a user types it.

Each case is a task folder written byte by byte here (encodings, separators, formats, odd
values). Every case ends either in a valid submission whose ids and labels are the exact
strings of the task's files, or in one clear line on stderr with exit code 2: never a
traceback, never a silently wrong file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from machine_speed import backstop
from solution_checks import assert_same_submission, run_isolated

REPO = Path(__file__).resolve().parents[2]
N_TRAIN, N_TEST = 160, 40


def rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    n = N_TRAIN + N_TEST
    frame = pd.DataFrame({
        "id": [f"{i:06d}" for i in range(n)],  # leading zeros: 000007 must come out as 000007
        "size": rng.uniform(0, 5000, n).round(1),
        "colour": rng.choice(["red", "grün", "blue"], n),  # a non-ASCII level
        "member": rng.choice([True, False], n),
        "note": rng.choice(["ok", "late", "café", "naïve"], n),
    })
    signal = frame["size"] / 1000 + (frame.colour == "red") * 2 + frame.member * 1.0 + rng.normal(0, 0.5, n)
    frame["label"] = np.where(signal > np.median(signal), "yes", "no")
    return frame


@dataclass
class Case:
    name: str
    write: object  # (folder) -> None
    refused: str | None = None  # the start of the one line, for a case that must be refused
    warns: list[str] = field(default_factory=list)
    rows_from: str = "test"  # the table whose ids the submission holds
    reproduced: bool = False  # solution.py and `iml predict` read the task's files too


def split(frame: pd.DataFrame, target: str = "label") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    train, test = frame.iloc[:N_TRAIN], frame.iloc[N_TRAIN:].drop(columns=target)
    sample = pd.DataFrame({"id": test["id"], target: "no"})
    return train, test, sample


def text(frame: pd.DataFrame, sep: str = ",", decimal: str = ".", thousands: bool = False, booleans: str = "True") -> str:
    """A table as a person's tool writes it (quoting only where the separator needs it)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n" if sep == ";" else "\n")
    writer.writerow(frame.columns)
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, (bool, np.bool_)):
                cells.append({"True": "True", "TRUE": "TRUE", "true": "true"}[booleans] if value else
                             {"True": "False", "TRUE": "FALSE", "true": "false"}[booleans])
            elif isinstance(value, float):
                shown = f"{value:,.1f}" if thousands else f"{value:.1f}"
                cells.append(shown.replace(".", decimal) if decimal != "." else shown)
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return out.getvalue()


def excel_europe(folder: Path) -> None:
    """Semicolons, decimal commas, cp1252, CRLF, TRUE/FALSE: a spreadsheet saved in Germany."""
    train, test, sample = split(rows())
    for name, frame in (("train", train), ("test", test), ("sample_submission", sample)):
        (folder / f"{name}.csv").write_bytes(text(frame, sep=";", decimal=",", booleans="TRUE").encode("cp1252"))


def tabs_bom_thousands(folder: Path) -> None:
    """TSV with a UTF-8 BOM, numbers with thousands separators, a column only test has, and a
    train column that test lacks."""
    train, test, sample = split(rows(1))
    test = test.assign(comment="only in test").drop(columns="note")
    for name, frame in (("train", train), ("test", test)):
        (folder / f"{name}.tsv").write_bytes(b"\xef\xbb\xbf" + text(frame, sep="\t", thousands=True).encode())
    sample.to_csv(folder / "sample_submission.csv", index=False)


def json_records(folder: Path) -> None:
    """train.json as a list of records, test.jsonl as JSON lines, sampleSubmission.csv, and
    class labels with leading zeros that the submission must keep."""
    frame = rows(2)
    frame["label"] = frame["label"].map({"yes": "01", "no": "02"})
    train, test, sample = split(frame)
    sample["label"] = "02"
    (folder / "train.json").write_text(json.dumps(train.to_dict(orient="records")))
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in test.to_dict(orient="records")) + "\n")
    (folder / "sampleSubmission.csv").write_text(sample.to_csv(index=False))


def zipped_and_na_ids(folder: Path) -> None:
    """Zipped CSVs, and ids such as NA and 1.0 that a reader must not turn into missing or 1."""
    frame = rows(3)
    frame.loc[N_TRAIN, "id"] = "NA"
    frame.loc[N_TRAIN + 1, "id"] = "1.0"
    train, test, sample = split(frame)
    for name, frame_ in (("train", train), ("test", test)):
        with zipfile.ZipFile(folder / f"{name}.csv.zip", "w") as z:
            z.writestr(f"{name}.csv", text(frame_))
    sample.to_csv(folder / "sample_submission.csv", index=False)


def parquet(folder: Path) -> None:
    train, test, sample = split(rows(4))
    train.to_parquet(folder / "train.parquet")
    test.to_parquet(folder / "test.parquet")
    sample.to_csv(folder / "sample_submission.csv", index=False)


def plain_csv(folder: Path, transform=lambda train, test, sample: None) -> None:
    train, test, sample = split(rows(5))
    transform(train, test, sample)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)


def most_columns_missing(folder: Path) -> None:
    train, test, sample = split(rows(5))
    train.to_csv(folder / "train.csv", index=False)
    test[["id", "size"]].to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)


def duplicate_test_ids(folder: Path) -> None:
    train, test, sample = split(rows(5))
    test = test.copy()
    test.iloc[1, 0] = test.iloc[0, 0]
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)


def zip_of_two(folder: Path) -> None:
    plain_csv(folder)
    with zipfile.ZipFile(folder / "train.csv.zip", "w") as z:
        z.writestr("a.csv", "x\n1\n")
        z.writestr("b.csv", "x\n2\n")
    (folder / "train.csv").unlink()


def json_not_records(folder: Path) -> None:
    plain_csv(folder)
    (folder / "train.csv").unlink()
    (folder / "train.json").write_text(json.dumps([1, 2, 3]))


def gzipped(folder: Path) -> None:
    """train.csv.gz, test.csv.gz, sample_submission.csv.gz: as Kaggle and data portals ship them."""
    train, test, sample = split(rows(6))
    for name, frame in (("train", train), ("test", test), ("sample_submission", sample)):
        (folder / f"{name}.csv.gz").write_bytes(gzip.compress(text(frame).encode()))


def sample_of_some_test_rows(folder: Path) -> None:
    """The test file holds 10 rows the sample submission does not list (rows that are not scored),
    and the sample lists the rest in its own order: the submission holds the sample's rows."""
    train, test, sample = split(rows(7))
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sample.iloc[10:].sample(frac=1.0, random_state=0).to_csv(folder / "sample_submission.csv", index=False)


def sample_of_other_ids(folder: Path) -> None:
    plain_csv(folder)
    sample = pd.read_csv(folder / "sample_submission.csv", dtype=str)
    sample.assign(id="s" + sample["id"]).to_csv(folder / "sample_submission.csv", index=False)


def sample_with_ids_the_test_lacks(folder: Path) -> None:
    plain_csv(folder)
    sample = pd.read_csv(folder / "sample_submission.csv", dtype=str)
    extra = pd.DataFrame({"id": ["900001", "900002"], "label": "no"})
    pd.concat([sample, extra]).to_csv(folder / "sample_submission.csv", index=False)


def repeated_header(folder: Path, name: str, column: str, twin: str) -> None:
    """Two columns of one file under one name (pandas would read the second as `<name>.1`)."""
    plain_csv(folder)
    lines = (folder / name).read_text().splitlines()
    lines[0] = ",".join(column if c == twin else c for c in lines[0].split(","))
    (folder / name).write_text("\n".join(lines) + "\n")


def only_a_header(folder: Path) -> None:
    plain_csv(folder)
    (folder / "test.csv").write_text("id,size,colour,member,note\n")


VALID = [
    Case("excel_europe", excel_europe),
    Case("tabs_bom_thousands", tabs_bom_thousands, warns=["ignored 1 column(s) that only the test file has: comment",
                                                          "DROPPED 1 train column(s) that the test file lacks: note"]),
    Case("json_records", json_records),
    Case("zipped_and_na_ids", zipped_and_na_ids),
    Case("parquet", parquet),
    Case("gzipped", gzipped, reproduced=True),
    Case("sample_of_some_test_rows", sample_of_some_test_rows, rows_from="sample_submission", reproduced=True,
         warns=["LEFT OUT 10 of the test file's 40 rows"]),
]
REFUSED = [
    Case("most_columns_missing", most_columns_missing, refused="the test file lacks 3 of the 4 feature columns"),
    Case("duplicate_test_ids", duplicate_test_ids, refused="the test file has 1 repeated id(s) in 'id'"),
    Case("zip_of_two", zip_of_two, refused="train file"),
    Case("json_not_records", json_not_records, refused="train file is JSON but not a list of records"),
    Case("only_a_header", only_a_header, refused="test file has a header but no rows"),
    Case("sample_of_other_ids", sample_of_other_ids, refused="none of the sample submission's 40 ids in 'id'"),
    Case("sample_with_ids_the_test_lacks", sample_with_ids_the_test_lacks,
         refused="the sample submission lists 2 id(s) in 'id' that the test file lacks"),
    Case("repeated_train_header", lambda folder: repeated_header(folder, "train.csv", "size", "note"),
         refused="train file has 2 columns named 'size' in its header"),
    Case("repeated_test_header", lambda folder: repeated_header(folder, "test.csv", "colour", "member"),
         refused="test file has 2 columns named 'colour' in its header"),
]


def iml(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=backstop(timeout), cwd=REPO)


def raw_strings(folder: Path, stem: str, column: str) -> list[str]:
    """A column's values as the file writes them, read here without pandas' type guessing."""
    path = next(p for p in folder.iterdir() if p.name.startswith(stem + "."))
    if path.suffix == ".parquet":
        return [str(v) for v in pd.read_parquet(path)[column]]
    if path.suffix in (".json", ".jsonl"):
        body = path.read_text()
        records = json.loads(body) if body.lstrip().startswith("[") else [json.loads(line) for line in body.splitlines()]
        return [str(r[column]) for r in records]
    data = zipfile.ZipFile(path).read(zipfile.ZipFile(path).namelist()[0]) if path.suffix == ".zip" else \
        gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            body = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    dialect = csv.Sniffer().sniff(body.splitlines()[0], delimiters=",;\t")
    reader = csv.DictReader(io.StringIO(body), dialect=dialect)
    return [r[column] for r in reader]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_every_file_as_people_have_it_ends_in_a_valid_exact_submission(case, tmp_path):
    folder = tmp_path / case.name
    folder.mkdir()
    case.write(folder)
    run = tmp_path / f"run-{case.name}"
    done = iml("run", folder, "--out", run, "--time-budget", "6s", "--folds", "3", "--tracks", "traditional", "--quiet")
    assert done.returncode == 0, f"{case.name}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, case.name
    for warning in case.warns:
        assert warning in done.stderr, f"{case.name}: no warning {warning!r} in {done.stderr!r}"
    checked = iml("validate", folder, run / "submission.csv")
    assert checked.returncode == 0, f"{case.name}: {checked.stderr}"
    sub = pd.read_csv(run / "submission.csv", dtype=str, keep_default_na=False)
    asked = raw_strings(folder, case.rows_from, "id")
    assert sorted(sub["id"]) == sorted(asked), f"{case.name}: ids were re-formatted, or are not the rows asked for"
    if case.rows_from != "test":
        assert sub["id"].tolist() == asked, f"{case.name}: the rows are not in the sample submission's order"
    if case.reproduced:
        reproduced(folder, run, tmp_path / f"again-{case.name}")
    labels = set(raw_strings(folder, "train", "label"))
    assert set(sub["label"]) <= labels, f"{case.name}: labels {set(sub['label'])} are not the train file's {labels}"
    task = json.loads((run / "task.json").read_text())
    profile = {c["name"]: c["kind"] for c in json.loads((run / "profile.json").read_text())["columns"]}
    assert profile["size"] == "numeric", f"{case.name}: numbers written as text were not understood ({profile})"
    assert task["task_type"] == "binary" and "id" not in task["feature_columns"], case.name


def reproduced(folder: Path, run: Path, work: Path) -> None:
    """solution.py, without iML, reads the same files into the same submission; `iml predict`
    reads the test file as it is (compressed, say) and predicts each of its rows."""
    work.mkdir()
    again = run_isolated(run / "solution.py", folder, work / "submission.csv", work)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_submission(run / "submission.csv", work / "submission.csv")
    test_file = json.loads((run / "task.json").read_text())["test_file"]
    predicted = iml("predict", run, folder / test_file, "--out", work / "predicted.csv")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    ids = pd.read_csv(work / "predicted.csv", dtype=str, keep_default_na=False)["id"]
    assert sorted(ids) == sorted(raw_strings(folder, "test", "id"))


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_broken_files_are_refused_in_one_line(case, tmp_path):
    folder = tmp_path / case.name
    folder.mkdir()
    case.write(folder)
    done = iml("run", folder, "--out", tmp_path / "run", "--time-budget", "10s", "--quiet", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: ") and case.refused in lines[0], lines[0]
    assert not (tmp_path / "run").exists(), "a refused task must not leave a run folder behind"
