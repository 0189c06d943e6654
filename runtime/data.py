"""Reading a task's tables as people have them, with one-line errors a user can act on.

Loaded into the execution kernel by the harness, and inlined into solution.py from this very
source, so it depends on pandas and the standard library alone.

- Formats: CSV / TSV / TXT, JSON (a list of records, or JSON lines), Parquet, and each of these
  compressed as pandas reads them: zipped (`train.csv.zip`, one table inside), gzip (`.gz`),
  bzip2 (`.bz2`), xz (`.xz`) or Zstandard (`.zst`, with the `zstandard` package). pandas and
  pyarrow do the reading itself.
- Headers: a name written twice in a header is refused, from the header as written (pandas
  would rename the second `x` to `x.1`, and which one another file's `x` means is a guess).
- Text files: the encoding (UTF-8 with or without a BOM, else cp1252 / latin-1) and the separator
  (comma, semicolon, tab, pipe) are detected from the file's first lines; a semicolon file's
  decimal commas ("3,5") are read as numbers.
- Key columns (`keys`: ids, class labels) are kept as the exact strings written: `000123` stays
  `000123`, never `123`.
- Images: a task whose rows are image files (`task["images"]`) gets a column holding each row's
  file path, from a table column that names the files or, without a train table, from the
  files themselves (the label in the file's name or its folder); a task without a test table
  takes its test rows from the sample submission's ids. `read_train` / `read_test` build the
  frames every part of iML reads.
- Other columns: numbers written with thousands separators ("1,234,567") become numbers, and
  true/false columns become booleans, so a column is never a category just because of how its
  numbers were written.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from runtime.errors import TaskInputError  # noqa: F401 (raised here; its callers import it from here)


TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = TEXT_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES
SEPARATORS = (",", ";", "\t", "|")
SNIFF_BYTES = 1 << 16
# A few columns of a text table this large are read in chunks of CHUNK_ROWS rows, as text, and
# understood after (numbers, booleans) as any text column is: pandas' tokenizer otherwise holds
# the whole file's fields at once (a 470 MB table: 1 GB for one column).
CHUNKED_BYTES = 64 << 20
CHUNK_ROWS = 250_000
SNIFF_LINES = 50
# pandas' default missing-value spellings, applied to every column but the keys
NA_STRINGS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
              "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})*,\d+$|^[+-]?\d+,\d+$")
_TRUE_FALSE = {"true": True, "false": False}
# The compressions pandas reads a table in, by suffix: (its name in messages, the bytes a file
# of it starts with). A zip is an archive holding one table; the others compress one stream.
COMPRESSIONS = {
    ".zip": ("zip archive", b"PK"),
    ".gz": ("gzip", b"\x1f\x8b"),
    ".bz2": ("bzip2", b"BZh"),
    ".xz": ("xz", b"\xfd7zXZ\x00"),
    ".zst": ("Zstandard", b"\x28\xb5\x2f\xfd"),
}


def compression_of(path: Path) -> str | None:
    """The compression suffix of a table's name ('.gz' of train.csv.gz), None when it has none."""
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSIONS else None


def table_format(path: Path) -> str:
    """'text', 'json' or 'parquet', by the file's name (the name inside a .zip, .gz, ...)."""
    name = path.name.lower()
    if compression_of(path):
        name = name[:-len(path.suffix)]
    for kind, suffixes in (("text", TEXT_SUFFIXES), ("json", JSON_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return "text"


def _zstandard(path: Path, what: str):
    """The zstandard module pandas reads .zst with; a user without it is told in one line."""
    try:
        import zstandard
    except ImportError:
        raise TaskInputError(f"{what} is Zstandard-compressed, which needs the zstandard package (pip install "
                             f"zstandard), or give it uncompressed or as .gz: {path}") from None
    return zstandard


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise TaskInputError(f"{what} not found: {path}")
    if path.is_dir():
        raise TaskInputError(f"{what} is a folder, expected a table file: {path}")
    if path.stat().st_size == 0:
        raise TaskInputError(f"{what} is empty: {path}")
    compression = compression_of(path)
    if compression == ".zip":
        if not zipfile.is_zipfile(path):
            raise TaskInputError(f"{what} is named .zip but is not a zip archive: {path}")
        return
    try:
        if compression:
            name, magic = COMPRESSIONS[compression]
            with path.open("rb") as f:
                if f.read(len(magic)) != magic:
                    raise TaskInputError(f"{what} is named {compression} but is not {name}-compressed: {path}")
        if table_format(path) == "parquet":
            return
        with _open(path, what) as f:
            head = f.read(4096)
    except OSError as e:
        raise TaskInputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except (EOFError, lzma.LZMAError, *_zstandard_errors()) as e:
        raise TaskInputError(f"{what} is not readable {COMPRESSIONS[compression][0]} ({e}): {path}") from None
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TaskInputError(f"{what} is not a text table (binary content): {path}")


def _zstandard_errors() -> tuple[type[Exception], ...]:
    """zstandard's error class, where it is installed (called only when an error is being caught)."""
    try:
        import zstandard
    except ImportError:
        return ()
    return (zstandard.ZstdError,)


def _open(path: Path, what: str):
    """A binary file object over the table: the file, its decompressed stream, or the single
    table inside a zip archive."""
    compression = compression_of(path)
    if compression == ".gz":
        return gzip.open(path, "rb")
    if compression == ".bz2":
        return bz2.open(path, "rb")
    if compression == ".xz":
        return lzma.open(path, "rb")
    if compression == ".zst":
        return _zstandard(path, what).open(path, "rb")
    if compression != ".zip":
        return path.open("rb")
    archive = zipfile.ZipFile(path)
    members = [m for m in archive.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
    if len(members) != 1:
        raise TaskInputError(f"{what} {path} holds {len(members)} files; expected exactly one table inside the zip")
    return archive.open(members[0])


def sniff(head: bytes) -> tuple[str, str]:
    """(encoding, separator) of a text table from its first bytes."""
    if head.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8"
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            # a multi-byte character cut at the end of a full sample is still UTF-8
            if len(head) < SNIFF_BYTES or e.start < len(head) - 4:
                encoding = "cp1252"
    text = head.decode(encoding if encoding != "cp1252" else "latin-1", errors="replace")
    lines = text.splitlines()[:SNIFF_LINES]
    if len(head) >= SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    best, best_key = ",", (-1.0, 0)
    for sep in SEPARATORS:
        rows = [r for r in csv.reader(lines, delimiter=sep) if r]
        if not rows:
            continue
        widths = [len(r) for r in rows]
        width = max(set(widths), key=widths.count)
        if width < 2:
            continue
        # the separator whose rows agree on their width, then the one that makes more columns
        key = (widths.count(width) / len(widths), width)
        if key > best_key:
            best, best_key = sep, key
    return encoding, best


def read_table(path: str | Path, what: str = "file", *, keys: Iterable[str] = (), nrows: int | None = None,
               columns: list[str] | None = None) -> pd.DataFrame:
    """The table at `path`, read as its format, encoding and separator say.

    keys: columns kept as the exact strings written (ids, class labels); those absent are ignored.
    columns: read only these (those absent are ignored).
    """
    path = Path(path)
    _check_file(path, what)
    keys = [k for k in keys if k]
    kind = table_format(path)
    try:
        if kind == "parquet":
            frame = _read_parquet(path, what, keys)
        elif kind == "json":
            frame = _read_json(path, what, keys, nrows)
        else:
            frame = _read_text(path, what, keys, nrows, columns)
    except TaskInputError:
        raise
    except (pd.errors.ParserError, UnicodeError, ValueError, OSError, zipfile.BadZipFile, EOFError, lzma.LZMAError,
            *_zstandard_errors()) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TaskInputError(f"{what} is not a readable {kind} table ({first[:200]}): {path}") from None
    frame.columns = [str(c) for c in frame.columns]
    if columns is not None:
        frame = frame[[c for c in frame.columns if c in set(columns)]]
    if frame.shape[1] == 0:
        raise TaskInputError(f"{what} has no columns: {path}")
    if len(frame) == 0 and nrows != 0:
        raise TaskInputError(f"{what} has a header but no rows: {path}")
    return understand_values(frame, keys, decimal_comma=frame.attrs.pop("decimal_comma", False))


def _read_text(path: Path, what: str, keys: list[str], nrows: int | None, columns: list[str] | None) -> pd.DataFrame:
    with _open(path, what) as f:
        head = f.read(SNIFF_BYTES)
    encoding, sep = sniff(head)
    if not head.strip():
        raise TaskInputError(f"{what} has no columns: {path}")
    wanted = set(columns) if columns is not None else None
    options: dict[str, Any] = dict(sep=sep, low_memory=False, usecols=(lambda c: c in wanted) if wanted is not None else None)
    if sep == ";":
        options["decimal"] = ","  # the European convention that goes with semicolons
    for attempt in (encoding, "cp1252", "latin-1"):
        try:
            with _open(path, what) as f:  # the header as written: pandas renames a repeated name
                written = pd.read_csv(f, encoding=attempt, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
            _refuse_repeated_names(written.iloc[0].tolist() if len(written) else [], what, path)
            if keys:
                # Keys as the raw strings, with no NA guessing ("NA" may be an id, or Namibia):
                # the usual NA spellings apply to every other column only.
                with _open(path, what) as f:
                    header = list(pd.read_csv(f, encoding=attempt, nrows=0, **options).columns)
                keyed = {k for k in keys if k in header}
                options.update(converters={k: str for k in keyed}, keep_default_na=False,
                               na_values={c: NA_STRINGS for c in header if c not in keyed})
            if columns is not None and nrows is None and path.stat().st_size >= CHUNKED_BYTES:
                frame = _read_chunked(path, what, attempt, options)
            else:
                with _open(path, what) as f:
                    frame = pd.read_csv(f, encoding=attempt, nrows=nrows, **options)
            frame.attrs["decimal_comma"] = sep == ";"
            return frame
        except UnicodeDecodeError:
            continue  # the sample was UTF-8, a later line is not
        except pd.errors.EmptyDataError:
            raise TaskInputError(f"{what} has no columns: {path}") from None
    raise TaskInputError(f"{what} is in no encoding iml reads (UTF-8, cp1252, latin-1): {path}")


def _read_chunked(path: Path, what: str, encoding: str, options: dict[str, Any]) -> pd.DataFrame:
    """A few columns of a large text table, CHUNK_ROWS rows at a time: the columns its first rows
    read as numbers parsed as numbers in every chunk (integers stay integers where every value is
    one), the others as text (understood after, as any text column is). A column whose numbers
    turn to text late in the file is read again as text, as the whole file's read would give it."""
    with _open(path, what) as f:
        head = pd.read_csv(f, encoding=encoding, nrows=CHUNK_ROWS // 10, **options)
    keyed = set(options.get("converters") or {})
    numbers = {c for c in head.columns if c not in keyed and pd.api.types.is_numeric_dtype(head[c])
               and not pd.api.types.is_bool_dtype(head[c])}
    texts = {c: str for c in head.columns if c not in keyed and c not in numbers}
    for kinds in ({**texts, **{c: "float64" for c in numbers}}, {**texts, **{c: str for c in numbers}}):
        try:
            with _open(path, what) as f:
                frame = pd.concat(pd.read_csv(f, encoding=encoding, chunksize=CHUNK_ROWS,
                                              **{**options, "low_memory": True, "dtype": kinds or None}), ignore_index=True)
        except ValueError:  # a column of numbers holds text further down
            continue
        for c in numbers & set(frame.columns):
            if pd.api.types.is_integer_dtype(head[c]) and pd.api.types.is_float_dtype(frame[c]) and frame[c].notna().all() \
                    and (frame[c] % 1 == 0).all():
                frame[c] = frame[c].astype(head[c].dtype)
        return frame
    raise ValueError(f"cannot read the columns of {path}")


def _refuse_repeated_names(names: list[str], what: str, path: Path) -> None:
    """One line naming a column name a header repeats: which of the columns another file's column of
    that name means (the test's `x1` for train's two) would be a guess. Blank names (a saved index)
    are not names and may repeat."""
    seen: dict[str, int] = {}
    for name in names:
        if name is not None and str(name).strip():
            seen[str(name)] = seen.get(str(name), 0) + 1
    repeated = [name for name, count in seen.items() if count > 1]
    if repeated:
        shown = " and ".join(f"{seen[name]} columns named '{name}'" for name in repeated[:2]) + (", …" if len(repeated) > 2 else "")
        raise TaskInputError(f"{what} has {shown} in its header: which one is which cannot be told; give each column its "
                             f"own name: {path}")


def _read_parquet(path: Path, what: str, keys: list[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq  # pandas' Parquet engine, whose schema has the names as written

    with _open(path, what) as f:
        source = f if compression_of(path) is None else io.BytesIO(f.read())
        _refuse_repeated_names(pq.ParquetFile(source).schema_arrow.names, what, path)
        source.seek(0)
        frame = pd.read_parquet(source)
    return _keys_as_strings(frame, keys)


def _read_json(path: Path, what: str, keys: list[str], nrows: int | None) -> pd.DataFrame:
    with _open(path, what) as f:
        raw = f.read()
    text = raw.decode("utf-8-sig", errors="replace").strip()
    if not text:
        raise TaskInputError(f"{what} has no records: {path}")
    if text.startswith("["):
        records = json.loads(text)
    elif text.startswith("{") and "\n" not in text:
        value = json.loads(text)
        # {"col": [..], ...} (columns) or {"data": [records]}
        records = next((v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)), value)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(records, dict):
        frame = pd.DataFrame(records)
    else:
        if not all(isinstance(r, dict) for r in records):
            raise TaskInputError(f"{what} is JSON but not a list of records (objects): {path}")
        frame = pd.json_normalize(records, max_level=0)
    if nrows is not None:
        frame = frame.head(nrows)
    return _keys_as_strings(frame, keys)


def _keys_as_strings(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    for k in keys:
        if k in frame.columns:
            frame[k] = frame[k].map(lambda v: v if isinstance(v, str) else label_key(v) if pd.notna(v) else "")
    return frame


def understand_values(frame: pd.DataFrame, keys: Iterable[str] = (), decimal_comma: bool = False) -> pd.DataFrame:
    """Numbers written as text ("1,234,567"; with `decimal_comma`, a semicolon file's "1.234,5")
    as numbers, and true/false columns as booleans. Keys and genuine text stay as they are."""
    keys = set(keys)
    for c in frame.columns:
        if c in keys:
            continue
        col = frame[c]
        if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            continue
        values = col.dropna()
        # a look at the first values first: most text columns fail at once, at little cost
        if values.empty or _number_or_bool(values.head(200), decimal_comma) is None:
            continue
        kind = _number_or_bool(values, decimal_comma)
        if kind == "bool":
            frame[c] = col.map(lambda v: _TRUE_FALSE[v.strip().lower()] if isinstance(v, str) else pd.NA).astype("boolean")
        elif kind == "thousands":
            frame[c] = pd.to_numeric(col.map(lambda v: v.replace(",", "").strip() if isinstance(v, str) else v))
        elif kind == "decimal_comma":
            frame[c] = pd.to_numeric(col.map(lambda v: _from_decimal_comma(v) if isinstance(v, str) else v))
        elif kind == "plain":
            frame[c] = _plain_numbers(col)
    return frame


def _plain_numbers(col: pd.Series) -> pd.Series:
    """A column of plain numbers written as text, as numbers: whole numbers without a missing
    value as int64, else float64, as pd.to_numeric gives them. Arrow-backed text (a large table's
    column read in chunks: millions of values) is cast by pyarrow, ~10x faster than to_numeric
    and without a Python object per value; anything pyarrow does not read ("+3") goes to pandas."""
    if not pd.api.types.is_string_dtype(col):
        return pd.to_numeric(col.map(lambda v: v.strip() if isinstance(v, str) else v))
    stripped = col.str.strip()
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        array = pa.array(stripped)
        if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            raise TypeError(array.type)
        whole = array.null_count == 0 and not pc.any(pc.match_substring_regex(array, r"[.eEnN]")).as_py()
        numbers = pc.cast(array, pa.int64() if whole else pa.float64())
    except (ImportError, TypeError, ValueError, OverflowError):  # pyarrow's ArrowInvalid is a ValueError
        return pd.to_numeric(stripped)
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=col.index, name=col.name)


def _from_decimal_comma(value: str) -> str:
    """'1.234,5' -> '1234.5', '3,5' -> '3.5', '1.234' -> '1234' (dots group thousands), '4.5' -> '4.5'."""
    value = value.strip()
    if "," in value or re.fullmatch(r"[+-]?\d{1,3}(?:\.\d{3})+", value):
        return value.replace(".", "").replace(",", ".")
    return value


def _number_or_bool(values: pd.Series, decimal_comma: bool) -> str | None:
    """How a column of strings writes its values: 'bool', 'plain' numbers, numbers with
    'thousands' separators or with a 'decimal_comma'; None for anything else (text, labels)."""
    if not all(isinstance(v, str) for v in values.head(1000)):
        return None
    text = values.astype(str).str.strip()
    if text.str.lower().isin(list(_TRUE_FALSE)).all():
        return "bool"
    plain = text.str.fullmatch(_NUMBER.pattern)
    if plain.all():
        return "plain"
    if decimal_comma:
        if (plain | text.str.fullmatch(_DECIMAL_COMMA.pattern)).all():
            return "decimal_comma"
    elif (plain | text.str.fullmatch(_THOUSANDS.pattern)).all():
        return "thousands"
    return None


def read_header(path: str | Path, what: str = "file") -> list[str]:
    """Column names only; cheap on large text files."""
    path = Path(path)
    return list(read_table(path, what, nrows=0 if table_format(path) == "text" else None).columns)


def find_table(task_dir: Path, *stems: str) -> Path | None:
    """The table named `<stem>.<format>` (compressed or not) in the task folder, for the first
    stem that has one: train.csv, train.tsv, train.json, train.parquet, train.csv.zip,
    train.csv.gz, ..."""
    for stem in stems:
        for suffix in TABLE_SUFFIXES:
            for name in (stem + suffix, *(stem + suffix + c for c in COMPRESSIONS)):
                path = task_dir / name
                if path.is_file():
                    return path
        if (task_dir / f"{stem}.zip").is_file():
            return task_dir / f"{stem}.zip"
    return None


SAMPLE_PATTERNS = ("sample_submission*", "sampleSubmission*", "sample-submission*", "*sample*submission*")


def find_sample_submission(task_dir: Path) -> Path | None:
    """The sample submission under its usual names; else the one table named *submission*."""
    for pattern in SAMPLE_PATTERNS:
        found = sorted(p for p in task_dir.glob(pattern) if p.is_file() and _is_table(p))
        if found:
            return min(found, key=lambda p: (len(p.name), p.name))  # sample_submission.csv before sample_submission_v2.csv
    found = [p for p in task_dir.glob("*submission*") if p.is_file() and _is_table(p)]
    return found[0] if len(found) == 1 else None


def _is_table(path: Path) -> bool:
    name = path.name.lower()
    if compression_of(path):
        name = name[:-len(path.suffix)]
    return name.endswith(TABLE_SUFFIXES)


LABEL_TASKS = ("binary", "multiclass")


def target_columns(task: dict) -> list[str]:
    """The train columns a task predicts: several (`targets`), or its one `target`."""
    return list(task.get("targets") or [task["target"]])


def key_columns(task: dict) -> list[str]:
    """The columns of a task read as the exact strings written: the id, the column naming each
    row's image file, and class labels."""
    keys = [task["id_column"]] if task.get("id_column") else []
    image_key = (task.get("images") or {}).get("key")
    if image_key and image_key not in keys:
        keys.append(image_key)
    labels = task.get("task_type") in LABEL_TASKS and not task.get("one_hot")
    return keys + ([task["target"]] if labels else [])


def feature_columns(task: dict, train_columns: Iterable[str]) -> list[str]:
    """The columns the models see (task.json's feature_columns; older runs: all but target and id)."""
    if task.get("feature_columns"):
        return list(task["feature_columns"])
    return [c for c in train_columns if c not in (*target_columns(task), task.get("id_column"))]


def labelled(frame: pd.DataFrame, targets: str | list[str]) -> pd.DataFrame:
    """The rows that have every target value (an exact-string label reads as "" where it is missing)."""
    keep = pd.Series(True, index=frame.index)
    for target in [targets] if isinstance(targets, str) else targets:
        y = frame[target]
        keep &= y.notna() & (y.astype(str).str.strip() != "") if not pd.api.types.is_numeric_dtype(y) else y.notna()
    return frame[keep].reset_index(drop=True)


def label_key(value: Any) -> str:
    """Labels as strings, with 1.0 and 1 alike, so CSV round-trips do not split a class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the frames of a task: its tables, or its image files --------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def read_train(task: dict, columns: list[str] | None = None) -> pd.DataFrame:
    """The training rows: the train table, or the listed image files with their labels; with
    the image column when the task has images."""
    task_dir = Path(task["task_dir"])
    images = task.get("images")
    if task.get("train_file"):
        wanted = None if columns is None else list(columns) + ([images["key"]] if images and images.get("key") else [])
        frame = read_table(task_dir / task["train_file"], "train file", keys=key_columns(task), columns=wanted)
    else:
        frame = labelled_files(task_dir, images, task["target"], task.get("id_column") or "id")
    return with_image_paths(frame, task, "train")


def read_test(task: dict, columns: list[str] | None = None, keys: Iterable[str] = ()) -> pd.DataFrame:
    """The test rows: the test table, or (no test table) the sample submission's ids, else the
    files of the test images' folder; with the image column when the task has images."""
    task_dir = Path(task["task_dir"])
    images = task.get("images")
    id_col = task.get("id_column")
    wanted = None if columns is None else list(columns) + ([images["key"]] if images and images.get("key") else [])
    if task.get("test_file"):
        frame = read_table(task_dir / task["test_file"], "test file", keys=key_columns(task) + list(keys), columns=wanted)
    elif task.get("sample_submission_file") and id_col:
        frame = read_table(task_dir / task["sample_submission_file"], "sample submission", keys=[id_col], columns=[id_col])
    elif images:
        frame = pd.DataFrame({id_col or "id": [p.name for p in pattern_files(task_dir, images["test_pattern"])]})
        frame[id_col or "id"] = [name_in_pattern(n, images["test_pattern"]) for n in frame[id_col or "id"]]
    else:
        raise TaskInputError("the task has no test table and no sample submission to take the test ids from")
    return with_image_paths(frame, task, "test")


def with_image_paths(frame: pd.DataFrame, task: dict, part: str) -> pd.DataFrame:
    """The frame with the image column: each row's file, absolute, from its key and the pattern."""
    images = task.get("images")
    if not images or images["column"] in frame.columns:
        return frame
    key = images.get("key") or task.get("id_column") or "id"
    if key not in frame.columns:
        raise TaskInputError(f"the {part} rows have no column '{key}' naming their image files")
    pattern = images["train_pattern" if part == "train" else "test_pattern"]
    root = Path(task["task_dir"])
    frame = frame.copy()
    frame[images["column"]] = [str(root / pattern.format(label_key(v))) if v == v and v is not None else None
                               for v in frame[key]]
    return frame


def pattern_files(task_dir: Path, pattern: str) -> list[Path]:
    """The files a pattern such as "test/{}.jpg" can name, sorted by name."""
    folder, _, name = pattern.rpartition("/")
    prefix, _, suffix = name.partition("{}")
    base = task_dir / folder if folder else task_dir
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_file() and p.name.startswith(prefix) and p.name.endswith(suffix)
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def name_in_pattern(file_name: str, pattern: str) -> str:
    """The part of a file's name that a pattern's {} stands for: "12" of "12.jpg" in "test/{}.jpg"."""
    name = pattern.rpartition("/")[2]
    prefix, _, suffix = name.partition("{}")
    return file_name[len(prefix):len(file_name) - len(suffix) if suffix else None]


def labelled_files(task_dir: Path, images: dict, target: str, id_column: str) -> pd.DataFrame:
    """Training rows from image files whose names carry the label: train/cat.1.jpg (the part
    before the first "."), or train/cat/1.jpg (the folder). Sorted by path, so every reader
    sees the same rows in the same order."""
    folder = task_dir / images["train_folder"]
    if images["labels_from"] == "folder":
        files = sorted(p for p in folder.glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        labels = [p.parent.name for p in files]
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        labels = [p.name.split(".")[0] for p in files]
    if not files:
        raise TaskInputError(f"no image files in {folder} to take the training rows from")
    rel = [str(p.relative_to(task_dir / images["train_folder"])) for p in files]
    return pd.DataFrame({id_column: [r.rsplit(".", 1)[0] for r in rel], target: labels,
                         images["column"]: [str(p) for p in files]})
