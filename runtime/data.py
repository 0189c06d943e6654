"""Reading a task's tables, with one-line errors a user can act on.

Loaded into the execution kernel by the harness too, so it depends on pandas alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


class TaskInputError(ValueError):
    """Bad input from the user: the message is one line that says what to fix."""


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise TaskInputError(f"{what} not found: {path}")
    if path.is_dir():
        raise TaskInputError(f"{what} is a folder, expected a CSV file: {path}")
    if path.stat().st_size == 0:
        raise TaskInputError(f"{what} is empty: {path}")
    if path.suffix.lower() == ".parquet":
        return
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise TaskInputError(f"cannot read {what} {path}: {e.strerror}") from None
    if b"\x00" in head:
        raise TaskInputError(f"{what} is not a text CSV file (binary content): {path}")


def read_table(path: str | Path, what: str = "file") -> pd.DataFrame:
    path = Path(path)
    _check_file(path, what)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise TaskInputError(f"{what} has no columns: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TaskInputError(f"{what} is not a readable CSV ({first}): {path}") from None
    if frame.shape[1] == 0:
        raise TaskInputError(f"{what} has no columns: {path}")
    if len(frame) == 0:
        raise TaskInputError(f"{what} has a header but no rows: {path}")
    return frame


def read_header(path: str | Path, what: str = "file") -> list[str]:
    """Column names only; cheap on large files."""
    path = Path(path)
    _check_file(path, what)
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        raise TaskInputError(f"{what} is not a readable CSV: {path}") from None


def label_key(value: Any) -> str:
    """Labels as strings, with 1.0 and 1 alike, so CSV round-trips do not split a class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
