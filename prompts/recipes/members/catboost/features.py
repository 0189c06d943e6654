"""CatBoost member of the traditional track, features: the table as CatBoost reads it natively.

- numeric columns as they are (CatBoost handles missing values);
- categoricals (and string columns with many levels) as strings, missing as "<missing>": CatBoost
  encodes them itself with ordered target statistics, which is why it is strong on small data;
- datetimes as their parts (year, month, day, weekday, hour, day number); tz-aware and
  mixed-offset timestamps are read in UTC;
- free text (text columns) as its length and word count, plus the text itself as a category
  when it repeats (short labels); long free text is left to the LightGBM recipe's TF-IDF;
- image columns are left to the other members (they read the pixels).

Params: runtime/params.py declares them (SPACES["catboost"]).
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
        self.date_parts = {}
        for c in self.datetime:
            parts = self._date_parts(X[c])
            self.date_parts[c] = [p for p in parts if parts[p].nunique() > 1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        cols: dict[str, object] = {}
        for c in self.numeric:
            cols[c] = pd.to_numeric(X[c], errors="coerce").astype(float).to_numpy()
        for c in self.categorical:
            cols[f"cat__{c}"] = X[c].astype(str).where(X[c].notna(), "<missing>").to_numpy(dtype=object)
        for c, parts in self.date_parts.items():
            values = self._date_parts(X[c])
            for p in parts:
                cols[f"{c}_{p}"] = values[p].to_numpy(dtype=float)
        for c in self.text:
            text = X[c].fillna("").astype(str)
            cols[f"{c}_chars"] = text.str.len().to_numpy(dtype=float)
            cols[f"{c}_words"] = text.str.split().str.len().to_numpy(dtype=float)
        if not cols:
            cols["bias"] = np.zeros(len(X))
        return pd.DataFrame(cols)

    @staticmethod
    def _date_parts(col: pd.Series) -> pd.DataFrame:
        when = pd.to_datetime(col, errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
        return pd.DataFrame({
            "year": when.dt.year, "month": when.dt.month, "day": when.dt.day,
            "dayofweek": when.dt.day_of_week, "hour": when.dt.hour,
            "days": (when - pd.Timestamp("1970-01-01")).dt.days,
        })
