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
from runtime.recipe_steps import NumberScaler, columns_by_kind, number_frame


class Features:
    """Scaled numbers (+ missing flags) and one-hot categoricals, as one float32 matrix."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.numeric, self.categorical, self.datetime, _, _ = columns_by_kind(profile)
        self.params = params

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Fit the scaling (standard or global, see `scale_of`) and each categorical's levels."""
        r = self.resolved = SPACES["knn"].resolve(self.params, Data(n=len(X)))
        num = self.numbers(X)
        self.scale = self.scale_of(num, r["scale"])
        self.scaler = NumberScaler(log_skewed=False, scale=self.scale).fit(num)
        self.levels = {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            self.levels[c] = list(counts.index[: r["max_levels"]])
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """scaled numbers | missing flags | one-hot levels | 0."""
        raw = self.numbers(X)
        parts = [self.scaler.transform(raw).to_numpy(dtype=np.float32)]
        parts += [self.scaler.flags(raw).to_numpy(dtype=np.float32)] if self.scaler.flagged else []
        for c, levels in self.levels.items():
            key = X[c].astype(str).where(X[c].notna())
            parts.append(np.column_stack([(key == v).to_numpy(dtype=np.float32) for v in levels])
                         if levels else np.zeros((len(X), 0), dtype=np.float32))
        parts.append(np.zeros((len(X), 1), dtype=np.float32))  # never an empty matrix
        return np.hstack(parts)

    def numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns and the datetime columns' year, month, weekday and day number."""
        return number_frame(X, self.numeric, self.datetime)

    def scale_of(self, num: pd.DataFrame, given: str) -> str:
        """The scaling: `given` unless "auto", which is "global" for columns in one unit."""
        if given != "auto":
            return given
        return "global" if self._one_unit(num.fillna(num.median().fillna(0.0))) else "standard"

    @staticmethod
    def _one_unit(num: pd.DataFrame) -> bool:
        """At least 20 columns, none negative, whose maxima agree within a factor 2 (pixels)."""
        if num.shape[1] < 20 or (num.min() < 0).any():
            return False
        tops = num.max()
        tops = tops[tops > 0]
        return len(tops) > 0 and float(tops.max()) <= 2 * float(tops.median())
