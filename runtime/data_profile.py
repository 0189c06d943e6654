"""The data profile: pandas over the real data -> DataProfile (per column: its kind, missing
share, cardinality, examples; an image column's files; the target's distribution; train/test
drift, leakage and duplicate warnings). No LLM; every prompt is grounded on it.

The profile node writes it for the run; the bench reads an image column's sizes with it.

A large table (runtime/columnar.py's cache in the run folder) is profiled without being held:
the row counts, each column's missing values and the target's distribution from all rows (the
manifest, the target column), the rest from a seeded sample of `sample_rows` rows."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from runtime.columnar import cached_manifest, compact_like, labelled_positions, read_cached, sample_positions
from runtime.data import feature_columns, labelled, read_test, read_train
from runtime.records import (
    ColumnKind,
    ColumnProfile,
    DataProfile,
    ImageStats,
    TargetProfile,
    TaskSpec,
)

TEXT_MIN_MEAN_LENGTH = 40
TEXT_MIN_WORDS = 6


def profile_data(task: TaskSpec, run_dir: str | Path | None = None, sample_rows: int = 100_000) -> DataProfile:
    """The profile of the task's data; from the run folder's columnar cache when it has one."""
    manifest = cached_manifest(run_dir) if run_dir is not None else None
    if manifest is not None:
        return profile_cached(task, Path(run_dir), manifest, sample_rows)
    task_dir = Path(task.task_dir)
    train = read_train(task.model_dump())
    test = read_test(task.model_dump())
    features = feature_columns(task.model_dump(), train.columns)
    image_column = task.images.column if task.images else None
    columns = [profile_images(train[c], test[c], task_dir) if c == image_column else
               profile_column(train[c], test[c] if c in test.columns else None) for c in features]
    return DataProfile(
        n_train=len(train),
        n_test=len(test),
        columns=columns,
        target=with_scale_column(profile_target(_target_values(labelled(train, task.target_columns), task), task),
                                 labelled(train, task.target_columns), task, columns),
        warnings=list(task.warnings) + find_warnings(train, test, task, columns),
    )


SCALE_MIN_CORRELATION = 0.4  # a column's rank correlation with the target's spread from which y / column is worth a try


def with_scale_column(target: TargetProfile, train: pd.DataFrame, task: TaskSpec, columns: list[ColumnProfile]) -> TargetProfile:
    """The target profile with the column an amount scales with, when there is one: of the
    numeric columns present and strictly positive on every training row, the one whose rank
    correlation with |y - median(y)| is highest, if at least SCALE_MIN_CORRELATION (superstore's
    Sales 0.67 for Profit, diamonds' carat 0.48 for price; ames' living area 0.28). Single-target
    regression only; whether y / column predicts better is cross-validation's to say."""
    if task.task_type != "regression" or len(train) < 20:
        return target
    candidates = [c.name for c in columns if c.kind == "numeric" and c.missing_share == 0.0]
    values = train[candidates].apply(pd.to_numeric, errors="coerce") if candidates else pd.DataFrame()
    positive = [c for c in candidates if values[c].notna().all() and (values[c] > 0).all()]
    if not positive:
        return target
    y = pd.to_numeric(train[task.target], errors="coerce").astype(float)
    spread = (y - y.median()).abs().rank().to_numpy()
    ranks = values[positive].rank().to_numpy()
    ranks, spread = ranks - ranks.mean(axis=0), spread - spread.mean()
    with np.errstate(all="ignore"):
        corr = (ranks * spread[:, None]).sum(axis=0) / np.sqrt((ranks ** 2).sum(axis=0) * (spread ** 2).sum())
    corr = np.nan_to_num(corr, nan=0.0)
    best = int(np.argmax(corr))
    if corr[best] < SCALE_MIN_CORRELATION:
        return target
    return target.model_copy(update={"scale_column": positive[best], "scale_correlation": round(float(corr[best]), 3)})


def profile_cached(task: TaskSpec, run_dir: Path, manifest: dict, sample_rows: int) -> DataProfile:
    """A large table's profile: the sample's columns, scaled to all rows where a count is exact."""
    n = int(manifest["rows"])
    positions = sample_positions(np.arange(n), sample_rows, seed=0)
    names = list(manifest["columns"])
    train = read_cached(run_dir, names, positions, manifest)
    test = compact_like(read_test(task.model_dump()), manifest)
    features = feature_columns(task.model_dump(), train.columns)
    columns = []
    for c in features:
        column = profile_column(train[c], test[c] if c in test.columns else None)
        spec = manifest["columns"][c]
        column.missing_share = round(spec["missing"] / max(1, n), 4)
        if column.cardinality > 0.5 * len(train) and len(train) < n:
            # distinct on most sampled rows (names, stamps): distinct on about as many of all rows
            column.cardinality = int(round(column.cardinality / len(train) * n))
        columns.append(column)
    labelled_rows = labelled_positions(run_dir, task.model_dump(), manifest)
    targets = read_cached(run_dir, task.target_columns, labelled_rows, manifest)
    warnings = list(task.warnings)
    if len(train) < n:
        warnings.append(f"a large table: {n:,} training rows, profiled on a seeded sample of {len(train):,} (missing shares, "
                        "the target and the row counts from all rows)")
    warnings += find_warnings(train, test, task, columns, unlabelled=n - len(labelled_rows), sampled=len(train) < n)
    for c in features:
        if manifest["columns"][c].get("unparsed"):
            warnings.append(f"'{c}': {manifest['columns'][c]['unparsed']:,} values do not parse as timestamps "
                            f"({manifest['columns'][c]['parse'].get('format')}); they are missing")
    return DataProfile(
        n_train=n,
        n_test=len(test),
        columns=columns,
        target=profile_target(_target_values(targets, task), task),
        warnings=warnings,
        sampled_rows=len(train) if len(train) < n else None,
    )


def profile_column(col: pd.Series, test_col: pd.Series | None) -> ColumnProfile:
    values = col.dropna()
    kind = column_kind(col)
    mean_length = float(values.astype(str).str.len().mean()) if kind == "text" and len(values) else None
    return ColumnProfile(
        name=str(col.name),
        kind=kind,
        dtype=str(col.dtype),
        missing_share=round(float(col.isna().mean()), 4),
        cardinality=int(values.nunique()),
        examples=[_short(v) for v in values.drop_duplicates().head(3)],
        mean_length=mean_length,
    )


IMAGES_SAMPLED = 100  # files opened (and decoded) to describe an image column


def profile_images(col: pd.Series, test_col: pd.Series, task_dir: Path) -> ColumnProfile:
    """An image column: how many files, how many are missing, and from a sample of them their
    sizes, modes and formats, and how many do not decode."""
    from PIL import Image

    paths = pd.concat([col, test_col], ignore_index=True)
    present = paths.map(lambda p: isinstance(p, str) and os.path.isfile(p))
    rng = np.random.RandomState(0)
    existing = paths[present].to_numpy()
    sample = existing[rng.choice(len(existing), min(IMAGES_SAMPLED, len(existing)), replace=False)] if len(existing) else []
    widths, heights, modes, formats, unreadable = [], [], {}, {}, 0
    for path in sample:
        try:
            with Image.open(path) as img:
                img.load()
                widths.append(img.width)
                heights.append(img.height)
                modes[img.mode] = modes.get(img.mode, 0) + 1
                formats[str(img.format)] = formats.get(str(img.format), 0) + 1
        except Exception:  # noqa: BLE001 - counted: a file that does not decode
            unreadable += 1
    spread = lambda v: {"min": int(np.min(v)), "median": int(np.median(v)), "max": int(np.max(v))} if v else {}  # noqa: E731
    stats = ImageStats(count=len(paths), missing=int((~present).sum()), unreadable=unreadable, sampled=len(sample),
                       width=spread(widths), height=spread(heights), modes=modes, formats=formats,
                       examples=[os.path.relpath(p, task_dir) for p in existing[:3]])
    return ColumnProfile(name=str(col.name), kind="image", dtype="path", missing_share=round(float((~present[:len(col)]).mean()), 4),
                         cardinality=int(col.nunique()), examples=stats.examples, images=stats)


def column_kind(col: pd.Series) -> ColumnKind:
    values = col.dropna()
    n_unique = values.nunique()
    if n_unique <= 1:
        return "constant"
    name = str(col.name).lower()
    id_named = name in ("id", "index", "key") or name.endswith("_id") or str(col.name).endswith("Id")
    if id_named and n_unique == len(values) and len(values) == len(col):
        return "id"
    if pd.api.types.is_bool_dtype(col):
        return "categorical"
    if pd.api.types.is_numeric_dtype(col):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "datetime"
    as_text = values.astype(str)
    sample = as_text.head(500)
    if _looks_like_dates(sample):
        return "datetime"
    mean_len = sample.str.len().mean()
    mean_words = sample.str.split().str.len().mean()
    if mean_len >= TEXT_MIN_MEAN_LENGTH or (mean_words >= TEXT_MIN_WORDS and n_unique > 0.5 * len(values)):
        return "text"
    return "categorical"


def _looks_like_dates(sample: pd.Series) -> bool:
    if not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() > 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
    return bool(parsed.notna().mean() > 0.9)


def _target_values(train: pd.DataFrame, task: TaskSpec) -> pd.Series:
    """One series to describe the target by: the label of one-hot classes, all the values of
    several numeric targets, the labels of several 0/1 columns by name."""
    cols = task.target_columns
    if task.one_hot:
        return train[cols].astype(float).idxmax(axis=1)
    if task.task_type == "multilabel":
        marks = train[cols].astype(float) >= 0.5
        return pd.Series([c for c in cols for _ in range(int(marks[c].sum()))] or ["(none)"])
    if task.task_type == "multitarget":
        return pd.concat([train[c].astype(float) for c in cols], ignore_index=True)
    return train[task.target]


def profile_target(y: pd.Series, task: TaskSpec) -> TargetProfile:
    y = y.dropna()
    if task.task_type in ("regression", "multitarget"):
        v = y.astype(float)
        return TargetProfile(kind="values", mean=float(v.mean()), std=float(v.std()), min=float(v.min()), max=float(v.max()), skew=float(v.skew()))
    counts = y.astype(str).value_counts()
    return TargetProfile(kind="classes", class_counts={str(k): int(n) for k, n in counts.items()})


def find_warnings(train: pd.DataFrame, test: pd.DataFrame, task: TaskSpec, columns: list[ColumnProfile],
                  unlabelled: int | None = None, sampled: bool = False) -> list[str]:
    """What deserves a second look. `unlabelled`: the rows without a target, counted on all rows
    when `train` is a sample of them (`sampled`: the counts below are the sample's)."""
    found: list[str] = []
    with_target = labelled(train, task.target_columns)
    missing_target = len(train) - len(with_target) if unlabelled is None else unlabelled
    if missing_target:
        found.append(f"{missing_target:,} train rows have no target and are dropped")
    features = [c.name for c in columns]
    duplicates = int(train.duplicated(subset=features).sum())
    if duplicates:
        found.append(f"{duplicates:,} train rows repeat another row's features" + (" (in the sample)" if sampled else ""))
    for c in columns:
        if c.images is not None and (c.images.missing or c.images.unreadable):
            found.append(f"images: {c.images.missing} of {c.images.count} files are missing"
                         + (f", {c.images.unreadable} of {c.images.sampled} sampled do not decode" if c.images.unreadable else "")
                         + "; the recipes see them as black images")
        if c.missing_share > 0.5:
            found.append(f"'{c.name}' is {c.missing_share:.0%} missing")
        if c.kind == "constant":
            found.append(f"'{c.name}' is constant and carries no signal")
        if c.name not in test.columns:
            continue
        if c.kind == "numeric":
            a, b = train[c.name].astype(float), test[c.name].astype(float)
            spread = a.std() or 1.0
            shift = abs(a.mean() - b.mean()) / spread
            if shift > 0.5:
                found.append(f"drift: '{c.name}' has mean {b.mean():.3g} in test against {a.mean():.3g} in train")
        elif c.kind == "categorical":
            unseen = test[c.name].dropna().isin(set(train[c.name].dropna())).mean()
            if unseen < 0.9:
                found.append(f"drift: {1 - unseen:.0%} of test values of '{c.name}' never occur in train")
    found += _leakage(with_target, task, columns)
    return found


def _leakage(train: pd.DataFrame, task: TaskSpec, columns: list[ColumnProfile]) -> list[str]:
    """Columns that determine the target almost alone deserve a second look."""
    found = []
    y = train[task.target]
    y_codes, classes = pd.factorize(y, sort=False)
    n_classes = max(1, len(classes))
    majority = float(y.value_counts(normalize=True).iloc[0]) if len(y) else 1.0
    for c in columns:
        if c.kind not in ("numeric", "categorical"):
            continue
        x = train[c.name]
        if task.task_type == "regression" and c.kind == "numeric":
            both = pd.concat([x, y], axis=1).dropna()
            if len(both) > 10 and both.iloc[:, 0].std() > 0 and abs(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1].astype(float))[0, 1]) > 0.99:
                found.append(f"possible leakage: '{c.name}' correlates {np.corrcoef(both.iloc[:, 0], both.iloc[:, 1].astype(float))[0, 1]:.3f} with the target")
        elif task.task_type != "regression" and 1 < c.cardinality < 0.5 * len(train):
            purity = _purity(x, y_codes, n_classes)
            if purity > 0.995 and majority < 0.95:
                found.append(f"possible leakage: '{c.name}' alone predicts the target for {purity:.1%} of rows")
    return found


def _purity(x: pd.Series, y_codes: np.ndarray, n_classes: int) -> float:
    """The share of the rows with a value of x whose class is their value's commonest: one
    bincount over (value, class) pairs. A crosstab per column cost 0.06 s each, 8-17 s of a 10 s
    run on 784 pixel columns; this is ~0.3 ms a column."""
    codes, levels = pd.factorize(x, sort=False)
    seen = (codes >= 0) & (y_codes >= 0)
    if not seen.any():
        return 0.0
    pairs = np.bincount(codes[seen] * n_classes + y_codes[seen], minlength=len(levels) * n_classes)
    return float(pairs.reshape(len(levels), n_classes).max(axis=1).sum() / seen.sum())


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
