"""Traditional track, features: a frame LightGBM can read natively.

Numeric columns pass through (LightGBM splits on missing values itself), categoricals become
pandas categories with the category set fixed at fit time, datetimes become their parts,
and text columns their length and word count. A per-row missing count adds the signal of
missingness that trees otherwise see column by column.
"""

import numpy as np
import pandas as pd


class Features:
    def __init__(self, task: dict, profile: dict, params: dict):
        self.task = task
        self.params = params
        kinds = {c["name"]: c["kind"] for c in profile["columns"]}
        self.numeric = [c for c, k in kinds.items() if k == "numeric"]
        self.categorical = [c for c, k in kinds.items() if k == "categorical"]
        self.datetime = [c for c, k in kinds.items() if k == "datetime"]
        self.text = [c for c, k in kinds.items() if k == "text"]
        self.categories: dict[str, pd.Index] = {}

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        for c in self.categorical:
            self.categories[c] = pd.Index(X[c].dropna().astype(str).unique())
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=X.index)
        for c in self.numeric:
            out[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
        for c in self.categorical:
            values = X[c].astype(str).where(X[c].notna())
            out[c] = pd.Categorical(values, categories=self.categories[c])
        for c in self.datetime:
            when = pd.to_datetime(X[c], errors="coerce", format="mixed")
            out[f"{c}_year"] = when.dt.year
            out[f"{c}_month"] = when.dt.month
            out[f"{c}_day"] = when.dt.day
            out[f"{c}_dayofweek"] = when.dt.dayofweek
            out[f"{c}_hour"] = when.dt.hour
        for c in self.text:
            text = X[c].fillna("").astype(str)
            out[f"{c}_chars"] = text.str.len()
            out[f"{c}_words"] = text.str.split().str.len()
        out["n_missing"] = X.isna().sum(axis=1).astype(float)
        return out
