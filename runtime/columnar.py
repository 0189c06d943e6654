"""The columnar cache of a large training table: converted once, then read compactly.

A training table of `large_table_mb` or more (graph/settings.py) is streamed once, block by block
and never whole in memory, into `cache/train.parquet` in the run folder. Its values are what
runtime/data.py reads (keys as the exact strings written, the usual NA spellings missing, numbers
as numbers: the column types come from a sample read by `read_table` itself), and timestamps are
parsed there once: the recipes' `pd.to_datetime(format="mixed")` spent ~100 µs a value on
"2012-04-21 08:30:00 UTC", at every fit and transform of every fold. `cache/train.json` (the
manifest) records what the conversion decided: each column's compact dtype (float32, the smallest
integer that holds it, bool, a datetime, Arrow strings; a regression target stays float64), how
each timestamp column was parsed, the values that did not parse, the missing values per column.

Every reader of the training rows after the profile reads the cache: the kernels (only the
columns and rows the plan uses), the profile's sample, the report's association, a resumed run.
The test rows and new rows get the same dtypes (`compact_like`). solution.py inlines this module
and builds the same cache in a temporary folder, so it fits on the very rows the run did.

A table pyarrow cannot stream as the sample says (a column of numbers that turns to text late in
the file) is read once by `read_table` and converted from memory instead; the manifest says so.
Standalone on purpose (pandas, pyarrow, numpy and runtime/data.py's readers), as solution.py
inlines it after runtime/data.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime.memory import release_memory
from runtime.data import (
    NA_STRINGS,
    SNIFF_BYTES,
    TaskInputError,
    _open,
    feature_columns,
    key_columns,
    labelled,
    read_header,
    read_table,
    read_test,
    read_train,
    sniff,
    table_format,
    target_columns,
)

CACHE_DIR = "cache"
CACHE_TABLE = "train.parquet"
CACHE_MANIFEST = "train.json"
CACHE_VERSION = 1
TYPE_SAMPLE_ROWS = 50_000  # rows read by `read_table` to decide each column's type
DATE_SAMPLE = 2_000  # distinct values a timestamp format must read exactly as pandas' own parse does
# pyarrow's CSV block: its streaming reader reads ~30 blocks ahead, so 16 MB blocks held ~450 MB
# while 2 MB blocks hold ~80 MB and read as fast; blocks are written in row groups of ROW_GROUP_ROWS
BLOCK_BYTES = 1 << 21
ROW_GROUP_ROWS = 500_000
FLOAT32_EXACT = 2 ** 24  # integers beyond this lose digits in a float32


class CacheError(Exception):
    """The table did not stream as its sample said; the conversion goes through read_table instead."""


def takes_large_path(task: dict, large_table_mb: float) -> bool:
    """Whether the task's training table is read through the cache: a table file (not image files
    named by their labels, not a table of image rows) of `large_table_mb` or more."""
    if not task.get("train_file") or task.get("images"):
        return False
    path = Path(task["task_dir"]) / task["train_file"]
    return path.is_file() and path.stat().st_size >= large_table_mb * 2 ** 20


def cache_paths(run_dir: str | Path) -> tuple[Path, Path]:
    folder = Path(run_dir) / CACHE_DIR
    return folder / CACHE_TABLE, folder / CACHE_MANIFEST


def _source_stamp(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"source": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


def cached_manifest(run_dir: str | Path, source: Path | None = None, table: bool = True) -> dict | None:
    """The manifest of a complete cache in the run folder (of `source` as it is now, when given),
    else None. The manifest is written last, so a killed conversion leaves none. `table=False`: the
    manifest alone (the dtypes new rows get), even when the cached table was deleted since."""
    table_path, manifest = cache_paths(run_dir)
    if (table and not table_path.exists()) or not manifest.exists():
        return None
    try:
        found = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if found.get("version") != CACHE_VERSION:
        return None
    if source is not None and {k: found.get(k) for k in ("source", "size", "mtime")} != _source_stamp(source):
        return None
    return found


# -- what each column is ------------------------------------------------------------------------


def column_plan(sample: pd.DataFrame, keys: list[str], targets: list[str]) -> dict[str, dict[str, Any]]:
    """Each column's kind, from a sample as `read_table` read it: key (exact strings), target (a
    numeric target: float64), number, bool, datetime (with how to parse it) or string."""
    plan: dict[str, dict[str, Any]] = {}
    for name in sample.columns:
        col = sample[name]
        if name in keys:
            plan[name] = {"kind": "key"}
        elif pd.api.types.is_bool_dtype(col):
            plan[name] = {"kind": "bool"}
        elif pd.api.types.is_numeric_dtype(col):
            plan[name] = {"kind": "target" if name in targets else "number"}
        elif pd.api.types.is_datetime64_any_dtype(col):
            plan[name] = {"kind": "datetime", "parse": {"how": "native"}}
        else:
            parse = timestamp_parse(col)
            plan[name] = {"kind": "datetime", "parse": parse} if parse else {"kind": "string"}
    return plan


def timestamp_parse(col: pd.Series) -> dict[str, str] | None:
    """How to parse a column of timestamp strings fast, or None when it is not one: a format that
    reads a sample of its values exactly as the recipes' own `pd.to_datetime(format="mixed",
    utc=True)` does (the same instants, the same values missing), by pyarrow's strptime (~50x
    faster), else by pandas with the format (or as ISO 8601)."""
    from pandas.tseries.api import guess_datetime_format

    values = col.dropna()
    values = values[values.astype(str).str.strip() != ""].astype(str).drop_duplicates().head(DATE_SAMPLE)
    if values.empty or not values.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).all():
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        if reference.isna().mean() > 0.1:
            return None
        fmt = guess_datetime_format(values.iloc[0])
    candidates: list[dict[str, str]] = []
    if fmt:
        arrow_fmt = fmt
        if "%Z" in fmt:  # a zone written as a name ("UTC"): pyarrow reads it as the literal text it is
            zones = values.str.extract(r"([A-Za-z]+)\s*$")[0]
            arrow_fmt = fmt.replace("%Z", zones.iloc[0]) if zones.notna().all() and zones.nunique() == 1 else ""
        if arrow_fmt and "%f" not in arrow_fmt:
            candidates.append({"how": "arrow", "format": arrow_fmt})
        candidates.append({"how": "pandas", "format": fmt})
    candidates.append({"how": "pandas", "format": "ISO8601"})
    for parse in candidates:
        try:
            parsed = parse_timestamps(values, parse)
        except (ValueError, TypeError, ImportError, OverflowError):
            continue
        if parsed.isna().equals(reference.isna()) and (parsed.dropna().astype("int64")
                                                       == reference.dropna().dt.as_unit(parsed.dt.unit).astype("int64")).all():
            return parse
    return None


def parse_timestamps(values: pd.Series, parse: dict[str, str]) -> pd.Series:
    """Timestamp strings as UTC datetimes, the way `parse` says; what does not parse is missing."""
    if parse["how"] == "native":
        return pd.to_datetime(values, utc=True)
    if parse["how"] == "arrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        array = pa.array(values.where(values.notna(), None).astype(object), type=pa.string(), from_pandas=True)
        parsed = pc.strptime(array, format=parse["format"], unit="s", error_is_null=True)
        out = pd.Series(parsed.to_pandas(), index=values.index)
        return out.dt.tz_localize("UTC") if out.dt.tz is None else out.dt.tz_convert("UTC")
    return pd.to_datetime(values, format=parse["format"], utc=True, errors="coerce")


# -- the conversion -----------------------------------------------------------------------------


def build_cache(task: dict, run_dir: str | Path) -> dict:
    """Convert the task's training table into the run folder's cache, once (a complete cache of
    the same file is reused); returns the manifest. Raises TaskInputError for an unreadable table."""
    source = Path(task["task_dir"]) / task["train_file"]
    found = cached_manifest(run_dir, source)
    if found is not None:
        return found
    table_path, manifest_path = cache_paths(run_dir)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    started = time.time()
    keys = key_columns(task)
    header = read_header(source, "train file")
    # the columns the run reads: the features and the targets (a train table's own id is never one)
    wanted = [c for c in header if c in set(feature_columns(task, header)) | set(target_columns(task))]
    sample = read_table(source, "train file", keys=keys, nrows=TYPE_SAMPLE_ROWS, columns=wanted)
    plan = column_plan(sample, keys, target_columns(task))
    how = "pyarrow, streamed in blocks"
    stats = _Stats(plan)
    try:
        if table_format(source) != "text":
            raise CacheError(f"a {table_format(source)} table is read whole by read_table")
        rows = _write(_csv_batches(source, header, sample, plan), plan, table_path, stats)
    except CacheError as e:
        how = f"read_table, whole (pyarrow could not stream it: {str(e)[:200]})"
        whole = read_table(source, "train file", keys=keys, columns=wanted)
        plan = column_plan(whole, keys, target_columns(task))  # the types of all rows, not the sample's
        stats = _Stats(plan)
        rows = _write(_frame_batches(whole, plan), plan, table_path, stats)
        del whole
    manifest = {
        "version": CACHE_VERSION, **_source_stamp(source), "rows": rows, "read": how,
        "seconds": round(time.time() - started, 2), "columns": stats.columns(),
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, manifest_path)
    release_memory()
    return manifest


def _csv_batches(source: Path, header: list[str], sample: pd.DataFrame, plan: dict[str, dict[str, Any]]):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with _open(source, "train file") as f:
        head = f.read(SNIFF_BYTES)
    encoding, sep = sniff(head)
    strings = [c for c in sample.columns if sample[c].dtype == object or pd.api.types.is_string_dtype(sample[c])]
    multiline = any(sample[c].astype(str).str.contains("\n", regex=False).any() for c in strings)
    types = {name: pa.float64() if spec["kind"] in ("number", "target") else pa.string() for name, spec in plan.items()}
    read = pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=BLOCK_BYTES,
                             encoding="utf8" if encoding.startswith("utf-8") else encoding)
    parse = pacsv.ParseOptions(delimiter=sep, newlines_in_values=multiline)
    convert = pacsv.ConvertOptions(include_columns=list(plan), column_types=types, null_values=NA_STRINGS,
                                   strings_can_be_null=False,
                                   quoted_strings_can_be_null=False, decimal_point="," if sep == ";" else ".")
    stream = _open(source, "train file")
    try:
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError) as e:
                raise CacheError(str(e).splitlines()[0]) from None
            yield batch
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError) as e:
        raise CacheError(str(e).splitlines()[0]) from None
    finally:
        stream.close()


def _frame_batches(frame: pd.DataFrame, plan: dict[str, dict[str, Any]], rows: int = 1_000_000):
    """A frame read by read_table, as Arrow batches of the types the CSV stream would give."""
    import pyarrow as pa

    for start in range(0, max(len(frame), 1), rows):
        part = frame.iloc[start:start + rows]
        arrays = {}
        for name, spec in plan.items():
            values = part[name]
            if spec["kind"] in ("number", "target"):
                arrays[name] = pa.array(pd.to_numeric(values, errors="coerce").astype("float64"), from_pandas=True)
            elif spec["kind"] == "datetime" and pd.api.types.is_datetime64_any_dtype(values):
                arrays[name] = pa.array(values, from_pandas=True)
            elif spec["kind"] == "bool":
                arrays[name] = pa.array(values.map(lambda v: None if v is pd.NA or v is None or v != v else str(v)).astype(object),
                                        type=pa.string(), from_pandas=True)
            else:
                arrays[name] = pa.array(values.astype(object).where(values.notna(), None), type=pa.string(), from_pandas=True)
        yield pa.RecordBatch.from_pydict(arrays)


def _convert(batch, plan: dict[str, dict[str, Any]]):
    """One block in the cache's schema: NA spellings missing, true/false as booleans, timestamps
    parsed; numbers stay float64 here (their compact dtype is known only at the end)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    na = pa.array(NA_STRINGS, type=pa.string())
    columns = {}
    for name, spec in plan.items():
        array = batch.column(name)
        kind = spec["kind"]
        if kind in ("string", "bool", "datetime") and pa.types.is_string(array.type):
            array = pc.if_else(pc.is_in(array, value_set=na), pa.scalar(None, pa.string()), array)
        if kind == "bool" and pa.types.is_string(array.type):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(array))
            if pc.any(pc.invert(pc.is_in(lowered, value_set=pa.array(["true", "false"]))), skip_nulls=True).as_py():
                raise CacheError(f"column '{name}' holds values other than true/false")
            array = pc.equal(lowered, "true")
        elif kind == "datetime" and pa.types.is_string(array.type):
            array = _parse_block(array, spec["parse"])
        elif kind in ("number", "target") and not pa.types.is_floating(array.type):
            array = pc.cast(array, pa.float64())
        columns[name] = array
    return pa.RecordBatch.from_pydict(columns)


def _parse_block(array, parse: dict[str, str]):
    import pyarrow as pa
    import pyarrow.compute as pc

    if parse["how"] == "arrow":
        parsed = pc.strptime(array, format=parse["format"], unit="s", error_is_null=True)
        return parsed if parsed.type.tz else pc.cast(parsed, pa.timestamp("s", tz="UTC"))
    return pa.array(parse_timestamps(pd.Series(array.to_pandas()), parse), from_pandas=True)


class _Stats:
    """What the blocks held, column by column: the rows, the missing values, the values that did
    not parse as timestamps, and for numbers their range and whether all are whole."""

    def __init__(self, plan: dict[str, dict[str, Any]]):
        self.plan = plan
        self.rows = 0
        self.nulls = {name: 0 for name in plan}
        self.unparsed = {name: 0 for name in plan if plan[name]["kind"] == "datetime"}
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.whole = {name: True for name in plan}
        self.unit: dict[str, str] = {}

    def add(self, raw, converted) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.rows += converted.num_rows
        for name, spec in self.plan.items():
            array = converted.column(name)
            self.nulls[name] += array.null_count
            if spec["kind"] == "datetime":
                before = raw.column(name)
                if pa.types.is_string(before.type):
                    present = pc.sum(pc.invert(pc.is_in(before, value_set=pa.array(NA_STRINGS, type=pa.string())))).as_py() or 0
                    self.unparsed[name] += int(present - (len(array) - array.null_count))
                self.unit[name] = str(array.type)
            elif spec["kind"] in ("number", "target") and len(array) > array.null_count:
                bounds = pc.min_max(array)
                low, high = bounds["min"].as_py(), bounds["max"].as_py()
                self.low[name] = min(low, self.low.get(name, low))
                self.high[name] = max(high, self.high.get(name, high))
                if self.whole[name]:
                    finite = pc.filter(array, pc.is_finite(array))
                    self.whole[name] = len(finite) == len(array) - array.null_count and \
                        (len(finite) == 0 or bool(pc.all(pc.equal(finite, pc.floor(finite))).as_py()))

    def columns(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, spec in self.plan.items():
            entry = {**spec, "dtype": self._dtype(name, spec["kind"]), "missing": self.nulls[name]}
            if name in self.unparsed:
                entry["unparsed"] = self.unparsed[name]
            out[name] = entry
        return out

    def _dtype(self, name: str, kind: str) -> str:
        if kind in ("key", "string"):
            return "str"
        if kind == "bool":
            return "boolean" if self.nulls[name] else "bool"
        if kind == "datetime":
            return "datetime64[ns, UTC]" if "ns" in self.unit.get(name, "") else "datetime64[s, UTC]"
        if kind == "target":
            return "float64"
        return compact_number_dtype(self.low.get(name, 0.0), self.high.get(name, 0.0), self.whole[name], self.nulls[name] > 0)


def compact_number_dtype(low: float, high: float, whole: bool, missing: bool) -> str:
    """The smallest dtype that holds a column of numbers: an integer type for whole numbers
    without missing values, float32 for the rest unless it would lose the digits of large whole
    numbers (epoch seconds, big counts): those stay float64."""
    if whole and not missing and np.isfinite(low) and np.isfinite(high):
        for dtype in ("int8", "int16", "int32", "int64"):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return dtype
    if whole and max(abs(low), abs(high)) > FLOAT32_EXACT:
        return "float64"
    return "float32"


def _write(batches, plan: dict[str, dict[str, Any]], path: Path, stats: _Stats) -> int:
    import pyarrow.parquet as pq

    import pyarrow as pa

    writer = None
    tmp = path.with_suffix(".tmp")
    group: list = []

    def flush() -> None:
        if group:
            writer.write_table(pa.Table.from_batches(group), row_group_size=ROW_GROUP_ROWS)
            group.clear()

    try:
        for raw in batches:
            converted = _convert(raw, plan)
            stats.add(raw, converted)
            if writer is None:
                # lz4 without dictionaries: a third of snappy's writing time, and reads 3-7x faster
                writer = pq.ParquetWriter(tmp, converted.schema, compression="lz4", use_dictionary=False)
            elif converted.schema != writer.schema:
                try:
                    converted = converted.cast(writer.schema)
                except Exception as e:  # noqa: BLE001 - any schema that does not fit the first block's
                    raise CacheError(f"a block's columns do not match the first block's ({e})") from None
            group.append(converted)
            if sum(b.num_rows for b in group) >= ROW_GROUP_ROWS:
                flush()
        if writer is not None:
            flush()
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)  # a half-written table is never read, nor left to take the disk
        raise
    if writer is not None:
        writer.close()
    if writer is None:
        raise TaskInputError(f"the train file has a header but no rows: {path}")
    os.replace(tmp, path)
    return stats.rows


# -- reading it -------------------------------------------------------------------------------


def read_cached(run_dir: str | Path, columns: list[str], rows: np.ndarray | None = None,
                manifest: dict | None = None) -> pd.DataFrame:
    """Columns of the cached table in their compact dtypes, at the row positions `rows` (sorted;
    None: all), read one column at a time so only one full column is ever held."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_path, _ = cache_paths(run_dir)
    manifest = manifest or cached_manifest(run_dir)
    if manifest is None:
        raise FileNotFoundError(f"no columnar cache in {run_dir}")
    source = pq.ParquetFile(table_path)
    taken = None if rows is None else pa.array(np.asarray(rows, dtype=np.int64))
    out = {}
    for name in columns:
        array = source.read(columns=[name]).column(0)
        if taken is not None:
            array = array.take(taken)
        out[name] = _as_dtype(array, manifest["columns"][name]["dtype"])
        del array
    release_memory()
    return pd.DataFrame(out)


def _as_dtype(array, dtype: str) -> pd.Series:
    import pyarrow as pa
    import pyarrow.compute as pc

    if dtype.startswith("int") or dtype.startswith("float"):
        return pd.Series(pc.cast(array, getattr(pa, dtype)()).to_pandas(), copy=False)
    if dtype == "boolean" or dtype.startswith("datetime"):  # Parquet keeps seconds as milliseconds
        return pd.Series(array.to_pandas(), copy=False).astype(dtype)
    return pd.Series(array.to_pandas(), copy=False)


def labelled_positions(run_dir: str | Path, task: dict, manifest: dict | None = None) -> np.ndarray:
    """Positions of the cached rows that have every target value (what `labelled` keeps)."""
    targets = target_columns(task)
    frame = read_cached(run_dir, targets, manifest=manifest)
    keep = np.ones(len(frame), dtype=bool)
    for name in targets:
        y = frame[name]
        keep &= (y.notna() & (y.astype(str).str.strip() != "")).to_numpy() if not pd.api.types.is_numeric_dtype(y) \
            else y.notna().to_numpy()
    return np.flatnonzero(keep)


def sample_positions(positions: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded sample of n of the positions, in file order; all of them when n is None or larger."""
    if n is None or n >= len(positions):
        return positions
    return np.sort(np.random.RandomState(seed).choice(positions, int(n), replace=False))


def plan_frames(task: dict, run_dir: str | Path, plan: dict | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled training rows and the test rows as the harness and solution.py use them: the
    whole table as runtime/data.py reads it, or under a large table's plan (the blueprint's
    `DataPlan`) the plan's rows of the columnar cache (built now when the folder has none of this
    table) in their compact dtypes, with the test rows in the same dtypes."""
    if not plan:
        return labelled(read_train(task), target_columns(task)), read_test(task)
    source = Path(task["task_dir"]) / task["train_file"]
    manifest = cached_manifest(run_dir, source) or build_cache(task, run_dir)
    positions = sample_positions(labelled_positions(run_dir, task, manifest), plan["rows"], int(plan.get("seed") or 0))
    train = read_cached(run_dir, list(manifest["columns"]), positions, manifest)
    return train, compact_like(read_test(task), manifest)


def compact_like(frame: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """Rows read elsewhere (the test table, new rows) in the cached table's dtypes: timestamps
    parsed as the cache parsed them, numbers in the compact dtype where it holds them (a test value
    beyond an integer type's range, or a missing one, makes the column float32), so the fitted
    modules see the same types they were fitted on."""
    frame = frame.copy()
    for name, spec in manifest["columns"].items():
        if name not in frame.columns or spec["kind"] in ("key", "string", "target"):
            continue
        values = frame[name]
        if spec["kind"] == "datetime":
            parsed = values if pd.api.types.is_datetime64_any_dtype(values) else \
                parse_timestamps(values.astype(object).where(values.notna(), None), spec["parse"])
            frame[name] = parsed.dt.tz_localize("UTC").astype(spec["dtype"]) if parsed.dt.tz is None else parsed.astype(spec["dtype"])
        elif spec["kind"] == "number" and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            dtype = spec["dtype"]
            if dtype.startswith("int"):
                info = np.iinfo(dtype)
                fits = values.notna().all() and (values.dropna() % 1 == 0).all() and \
                    (values.empty or (info.min <= values.min() and values.max() <= info.max))
                dtype = dtype if fits else "float32"
            frame[name] = values.astype(dtype)
    return frame
