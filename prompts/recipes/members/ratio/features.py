"""Ratio member of the traditional track, features: the traditional recipe's frame, plus
`per__<column>`, the strictly positive column the target scales with (an amount: profit = sales x
margin, a price = carats x a price per carat). model.py learns the target per unit of it.

The column is the `per_column` param, else the profile's `target.scale_column` (the numeric
column whose size the target's spread follows, runtime/data_profile.py). Without either the
frame is the traditional recipe's alone, and the model learns the target itself.

Params: runtime/params.py declares them (SPACES["ratio"]: the traditional recipe's and `per_column`).
"""

import pandas as pd

from prompts.recipes.traditional.features import Features as TraditionalFeatures
from runtime.params import SPACES, Data

PER_PREFIX = "per__"


class Features(TraditionalFeatures):
    """The traditional features and `per__<column>`: the column the target is divided by."""

    def __init__(self, task: dict, profile: dict, params: dict):
        super().__init__(task, profile, params)
        r = SPACES["ratio"].resolve(params, Data(n=int(profile.get("n_train", 0))))
        self.per = r["per_column"] or (profile.get("target") or {}).get("scale_column")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The traditional frame; then the scale column as floats (unreadable: NaN)."""
        out = super().transform(X)
        if self.per and self.per in X.columns:
            out[PER_PREFIX + self.per] = pd.to_numeric(X[self.per], errors="coerce").to_numpy(dtype=float)
        return out
