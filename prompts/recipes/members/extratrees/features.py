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


class Features:
    def __init__(self, task: dict, profile: dict, params: dict):
        cols = profile["columns"]
        self.numeric = [c["name"] for c in cols if c["kind"] == "numeric"]
        self.categorical = [c["name"] for c in cols if c["kind"] == "categorical"]
        self.datetime = [c["name"] for c in cols if c["kind"] == "datetime"]
        self.text = [c["name"] for c in cols if c["kind"] == "text"]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        num = self._numbers(X)
        self.flagged = [c for c in num.columns if num[c].isna().any()]
        self.medians = num.median().fillna(0.0)
        self.freq, self.codes = {}, {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            self.freq[c] = counts / max(1, len(X))
            self.codes[c] = {v: i for i, v in enumerate(counts.index)}
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        raw = self._numbers(X)
        parts = [raw.fillna(self.medians).to_numpy(dtype=np.float32)]
        parts += [raw[self.flagged].isna().to_numpy(dtype=np.float32)] if self.flagged else []
        for c in self.categorical:
            key = X[c].astype(str).where(X[c].notna())
            parts.append(np.column_stack([key.map(self.freq[c]).fillna(0.0).to_numpy(dtype=np.float32),
                                          key.map(self.codes[c]).fillna(-1).to_numpy(dtype=np.float32)]))
        for c in self.text:
            text = X[c].fillna("").astype(str)
            parts.append(np.column_stack([text.str.len().to_numpy(dtype=np.float32),
                                          text.str.split().str.len().to_numpy(dtype=np.float32)]))
        parts.append(np.zeros((len(X), 1), dtype=np.float32))  # never an empty matrix
        return np.hstack(parts)

    def _numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        cols = {c: pd.to_numeric(X[c], errors="coerce").astype(float) for c in self.numeric}
        for c in self.datetime:
            when = pd.to_datetime(X[c], errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
            cols.update({f"{c}_year": when.dt.year, f"{c}_month": when.dt.month, f"{c}_dayofweek": when.dt.day_of_week,
                         f"{c}_days": (when - pd.Timestamp("1970-01-01")).dt.days})
        return pd.DataFrame(cols, index=X.index).astype(float)
