"""Linear member of the traditional track, features: a sparse design matrix a regularised
linear model reads well.

- numeric columns (and datetime parts): missing -> the training median plus a missing flag,
  heavily skewed non-negative columns through log1p, standardised and clipped to [-5, 5];
- categoricals: one-hot, levels seen at least `min_count` times (others share one column);
- free text (text columns): TF-IDF of word 1-2 grams (sublinear tf, at most `text_max_features`).

Params: runtime/params.py declares them (SPACES["linear"]).
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from runtime.params import SPACES, Data


class Features:
    def __init__(self, task: dict, profile: dict, params: dict):
        cols = profile["columns"]
        self.numeric = [c["name"] for c in cols if c["kind"] == "numeric"]
        self.categorical = [c["name"] for c in cols if c["kind"] == "categorical"]
        self.datetime = [c["name"] for c in cols if c["kind"] == "datetime"]
        self.text = [c["name"] for c in cols if c["kind"] == "text"]
        r = SPACES["linear"].resolve(params, Data(n=int(profile.get("n_train", 0))))
        self.min_count, self.text_max_features = r["min_count"], r["text_max_features"]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        num = self._numbers(X)
        self.flagged = [c for c in num.columns if num[c].isna().any()]
        self.log_cols = [c for c in num.columns if num[c].min() >= 0 and num[c].skew() > 2]
        num = self._logged(num)
        self.medians = num.median().fillna(0.0)
        filled = num.fillna(self.medians)
        self.mean, self.std = filled.mean(), filled.std().replace(0, 1).fillna(1)
        self.levels = {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            self.levels[c] = {v: i for i, v in enumerate(counts[counts >= self.min_count].index)}
        self.vectorizers = {}
        for c in self.text:
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=self.text_max_features,
                                         sublinear_tf=True, dtype=np.float32)
            try:
                vectorizer.fit(X[c].fillna("").astype(str))
            except ValueError:  # no term occurs twice (tiny samples)
                continue
            self.vectorizers[c] = vectorizer
        return self

    def transform(self, X: pd.DataFrame) -> sp.csr_matrix:
        raw = self._numbers(X)
        num = ((self._logged(raw).fillna(self.medians) - self.mean) / self.std).clip(-5, 5)
        blocks = [sp.csr_matrix(num.to_numpy(dtype=np.float32))]
        if self.flagged:
            blocks.append(sp.csr_matrix(raw[self.flagged].isna().to_numpy(dtype=np.float32)))
        for c, levels in self.levels.items():
            codes = X[c].astype(str).where(X[c].notna()).map(levels).fillna(len(levels)).to_numpy(dtype=np.int64)
            blocks.append(sp.csr_matrix((np.ones(len(X), dtype=np.float32), (np.arange(len(X)), codes)),
                                        shape=(len(X), len(levels) + 1)))
        for c, vectorizer in self.vectorizers.items():
            blocks.append(vectorizer.transform(X[c].fillna("").astype(str)))
        blocks.append(sp.csr_matrix(np.ones((len(X), 1), dtype=np.float32)))  # never an empty matrix
        return sp.hstack(blocks, format="csr")

    def _numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        cols = {c: pd.to_numeric(X[c], errors="coerce").astype(float) for c in self.numeric}
        for c in self.datetime:
            when = pd.to_datetime(X[c], errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
            cols.update({f"{c}_year": when.dt.year, f"{c}_month": when.dt.month, f"{c}_dayofweek": when.dt.day_of_week,
                         f"{c}_days": (when - pd.Timestamp("1970-01-01")).dt.days})
        return pd.DataFrame(cols, index=X.index).astype(float)

    def _logged(self, num: pd.DataFrame) -> pd.DataFrame:
        num = num.copy()
        for c in self.log_cols:
            num[c] = np.log1p(num[c].clip(lower=0))
        return num
