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
from runtime.recipe_steps import NumberScaler, columns_by_kind, number_frame


class Features:
    """Standardised numbers (+ missing flags), one-hot categoricals and TF-IDF text, as one CSR matrix."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.numeric, self.categorical, self.datetime, self.text, _ = columns_by_kind(profile)
        r = SPACES["linear"].resolve(params, Data(n=int(profile.get("n_train", 0))))
        self.min_count, self.text_max_features = r["min_count"], r["text_max_features"]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Fit the number scaling, the kept levels and one vectorizer per text column."""
        self.scaler = NumberScaler().fit(self.numbers(X))
        self.levels = {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            self.levels[c] = {v: i for i, v in enumerate(counts[counts >= self.min_count].index)}
        self.vectorizers = {}
        for c in self.text:
            vectorizer = self.vectorizer()
            try:
                vectorizer.fit(X[c].fillna("").astype(str))
            except ValueError:  # no term occurs twice (tiny samples)
                continue
            self.vectorizers[c] = vectorizer
        return self

    def transform(self, X: pd.DataFrame) -> sp.csr_matrix:
        """numbers | missing flags | one-hot (a last column per categorical for the rest) | TF-IDF | 1."""
        raw = self.numbers(X)
        blocks = [sp.csr_matrix(self.scaler.transform(raw).to_numpy(dtype=np.float32))]
        if self.scaler.flagged:
            blocks.append(sp.csr_matrix(self.scaler.flags(raw).to_numpy(dtype=np.float32)))
        for c, levels in self.levels.items():
            codes = X[c].astype(str).where(X[c].notna()).map(levels).fillna(len(levels)).to_numpy(dtype=np.int64)
            blocks.append(sp.csr_matrix((np.ones(len(X), dtype=np.float32), (np.arange(len(X)), codes)),
                                        shape=(len(X), len(levels) + 1)))
        for c, vectorizer in self.vectorizers.items():
            blocks.append(vectorizer.transform(X[c].fillna("").astype(str)))
        blocks.append(sp.csr_matrix(np.ones((len(X), 1), dtype=np.float32)))  # never an empty matrix
        return sp.hstack(blocks, format="csr")

    def numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns and the datetime columns' year, month, weekday and day number."""
        return number_frame(X, self.numeric, self.datetime)

    def vectorizer(self) -> TfidfVectorizer:
        """A text column's TF-IDF: word 1-2 grams in at least 2 rows, sublinear tf."""
        return TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=self.text_max_features,
                               sublinear_tf=True, dtype=np.float32)
