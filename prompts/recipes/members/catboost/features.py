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

from runtime.recipe_steps import (
    columns_by_kind,
    date_columns,
    number_columns,
    text_lengths,
    varying_date_parts,
)


class Features:
    """A frame of numbers, `cat__<name>` string columns, date parts and text lengths."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.numeric, self.categorical, self.datetime, self.text, _ = columns_by_kind(profile)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Choose the date parts that vary on the training rows."""
        self.date_parts = varying_date_parts(X, self.datetime)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """numbers | cat__<name> strings | <column>_<part> dates | <column>_chars / _words."""
        cols: dict[str, object] = number_columns(X, self.numeric)
        for c in self.categorical:
            cols[f"cat__{c}"] = self.category_strings(X, c)
        cols.update(date_columns(X, self.date_parts))
        cols.update(text_lengths(X, self.text))
        if not cols:
            cols["bias"] = np.zeros(len(X))
        return pd.DataFrame(cols)

    @staticmethod
    def category_strings(X: pd.DataFrame, c: str) -> np.ndarray:
        """A categorical as strings, missing as "<missing>" (CatBoost's categorical input)."""
        return X[c].astype(str).where(X[c].notna(), "<missing>").to_numpy(dtype=object)
