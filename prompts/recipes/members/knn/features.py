"""k-nearest-neighbours member of the traditional track, features: a dense matrix in which a
Euclidean distance means something.

- numeric columns (and datetime parts, tz-aware stamps read in UTC): missing -> the training
  median plus a missing flag; then scaled (`scale`): "standard" divides each column by its own
  spread, "global" all columns by one (columns in one unit, such as pixels, where scaling a
  near-constant border pixel up would drown the strokes in noise); "auto" picks "global" when
  there are at least 20 numeric columns, none negative, whose maxima agree within a factor 2;
- categoricals: one-hot of the `max_levels` commonest levels (a 0/1 column is one standard
  deviation's distance, as in a standardised column);
- free text is left out: its lengths are no neighbourhood.

Params: runtime/params.py declares them (SPACES["knn"]).
"""

import numpy as np
import pandas as pd

from runtime.params import SPACES, Data


class Features:
    def __init__(self, task: dict, profile: dict, params: dict):
        cols = profile["columns"]
        self.numeric = [c["name"] for c in cols if c["kind"] == "numeric"]
        self.categorical = [c["name"] for c in cols if c["kind"] == "categorical"]
        self.datetime = [c["name"] for c in cols if c["kind"] == "datetime"]
        self.params = params

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        r = self.resolved = SPACES["knn"].resolve(self.params, Data(n=len(X)))
        num = self._numbers(X)
        self.flagged = [c for c in num.columns if num[c].isna().any()]
        self.medians = num.median().fillna(0.0)
        filled = num.fillna(self.medians)
        self.scale = r["scale"] if r["scale"] != "auto" else ("global" if self._one_unit(filled) else "standard")
        self.mean = filled.mean()
        spread = filled.std().replace(0, 1).fillna(1)
        overall = float(np.sqrt((filled - self.mean).pow(2).to_numpy().mean())) if filled.size else 1.0
        self.std = spread if self.scale == "standard" else pd.Series(overall or 1.0, index=filled.columns)
        self.levels = {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            self.levels[c] = list(counts.index[: r["max_levels"]])
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        raw = self._numbers(X)
        parts = [((raw.fillna(self.medians) - self.mean) / self.std).clip(-5, 5).to_numpy(dtype=np.float32)]
        parts += [raw[self.flagged].isna().to_numpy(dtype=np.float32)] if self.flagged else []
        for c, levels in self.levels.items():
            key = X[c].astype(str).where(X[c].notna())
            parts.append(np.column_stack([(key == v).to_numpy(dtype=np.float32) for v in levels])
                         if levels else np.zeros((len(X), 0), dtype=np.float32))
        parts.append(np.zeros((len(X), 1), dtype=np.float32))  # never an empty matrix
        return np.hstack(parts)

    @staticmethod
    def _one_unit(num: pd.DataFrame) -> bool:
        if num.shape[1] < 20 or (num.min() < 0).any():
            return False
        tops = num.max()
        tops = tops[tops > 0]
        return len(tops) > 0 and float(tops.max()) <= 2 * float(tops.median())

    def _numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        cols = {c: pd.to_numeric(X[c], errors="coerce").astype(float) for c in self.numeric}
        for c in self.datetime:
            when = pd.to_datetime(X[c], errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
            cols.update({f"{c}_year": when.dt.year, f"{c}_month": when.dt.month, f"{c}_dayofweek": when.dt.day_of_week,
                         f"{c}_days": (when - pd.Timestamp("1970-01-01")).dt.days})
        return pd.DataFrame(cols, index=X.index).astype(float)
