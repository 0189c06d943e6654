"""Extra-trees member of the traditional track, features: a dense numeric matrix.

- numeric columns (and datetime parts, tz-aware stamps read in UTC): missing -> the training
  median plus a missing flag where training rows miss values;
- categoricals: their training frequency and an integer code by frequency (unseen and missing
  -> -1), so randomised splits can separate common from rare levels;
- free text: its length and word count.

Params: runtime/params.py declares them (SPACES["extratrees"]).
"""

import numpy as np
import pandas as pd

from runtime.recipe_steps import (
    NumberScaler,
    columns_by_kind,
    number_frame,
    text_lengths,
)


class Features:
    """Numbers filled with training medians (+ missing flags), categoricals as frequency and code,
    text as lengths: one float32 matrix."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.numeric, self.categorical, self.datetime, self.text, _ = columns_by_kind(profile)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Fit the numbers' medians and flags, and each categorical's frequencies and codes."""
        self.scaler = NumberScaler(log_skewed=False, scale=None, clip=None).fit(self.numbers(X))
        self.freq, self.codes = {}, {}
        for c in self.categorical:
            self.fit_levels(X, c)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """numbers | missing flags | per categorical (frequency, code) | per text (chars, words) | 0."""
        raw = self.numbers(X)
        parts = [self.scaler.transform(raw).to_numpy(dtype=np.float32)]
        parts += [self.scaler.flags(raw).to_numpy(dtype=np.float32)] if self.scaler.flagged else []
        parts += [self.level_columns(X, c) for c in self.categorical]
        lengths = text_lengths(X, self.text)
        parts += [np.column_stack([lengths[f"{c}_chars"], lengths[f"{c}_words"]]).astype(np.float32) for c in self.text]
        parts.append(np.zeros((len(X), 1), dtype=np.float32))  # never an empty matrix
        return np.hstack(parts)

    def numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns and the datetime columns' year, month, weekday and day number."""
        return number_frame(X, self.numeric, self.datetime)

    def fit_levels(self, X: pd.DataFrame, c: str) -> None:
        """A categorical's level frequencies and codes (commonest first) on the training rows."""
        counts = X[c].dropna().astype(str).value_counts()
        self.freq[c] = counts / max(1, len(X))
        self.codes[c] = {v: i for i, v in enumerate(counts.index)}

    def level_columns(self, X: pd.DataFrame, c: str) -> np.ndarray:
        """(n, 2): a categorical's training frequency (unseen 0) and code (unseen, missing -1)."""
        key = X[c].astype(str).where(X[c].notna())
        return np.column_stack([key.map(self.freq[c]).fillna(0.0).to_numpy(dtype=np.float32),
                                key.map(self.codes[c]).fillna(-1).to_numpy(dtype=np.float32)])
