"""Neural track, features: what the network reads well, fixed at fit time.

- numeric columns (and datetime parts): missing -> the training median, with a `_isna`
  indicator where training rows miss values; heavily skewed non-negative columns through
  log1p; then standardised and clipped to [-5, 5];
- categoricals: integer codes for an embedding layer. Levels seen at least `min_count` times
  in training get 1..V (the most frequent first, at most `max_levels`); unseen, rare and
  missing values get 0;
- text (text columns, and string columns with a distinct value on most rows such as names):
  TF-IDF of word 1-2 grams reduced by truncated SVD to `text_dims` components, centred and
  scaled together (the strongest component to unit spread, the rest keep their proportions).

- images (image columns: each row's file): `encode` (run once per run by the harness, cached
  across folds and attempts) decodes each image at `image_size` pixels square; `transform` hands
  the pixels on as columns `img__<column>__<i>` (values in [0, 1], channel-last order), which the
  model reshapes into images for its convolutional branch.

The output is a DataFrame: columns named `cat__<name>` hold codes (the model embeds them),
`img__*` columns are pixels, every other column is a standardised number.

Params: runtime/params.py declares them (SPACES["neural"]).
"""

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from runtime.params import SPACES, Data


class Features:
    def __init__(self, task: dict, profile: dict, params: dict):
        self.task = task
        self.params = params
        cols = profile["columns"]
        n_train = max(1, int(profile.get("n_train", 1)))
        near_unique = [c["name"] for c in cols if c["kind"] == "categorical" and c["cardinality"] > 0.5 * n_train]
        self.text = [c["name"] for c in cols if c["kind"] == "text"] + near_unique
        self.numeric = [c["name"] for c in cols if c["kind"] == "numeric"]
        self.categorical = [c["name"] for c in cols if c["kind"] == "categorical" and c["name"] not in near_unique]
        self.datetime = [c["name"] for c in cols if c["kind"] == "datetime"]
        self.images = [c["name"] for c in cols if c["kind"] == "image"]
        r = SPACES["neural"].resolve(params, Data(n=n_train, images=bool(self.images)))
        self.seed, self.max_levels, self.min_count = r["seed"], r["max_levels"], r["min_count"]
        self.text_dims, self.text_max_features, self.image_size = r["text_dims"], r["text_max_features"], r["image_size"]

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """Each image column's pixels, (rows, size * size * 3) per column; nothing without images."""
        if not self.images:
            return np.zeros((len(X), 0), dtype=np.float32)
        from runtime.images import load_images

        return np.hstack([load_images(X[c], self.image_size).reshape(len(X), -1) for c in self.images]).astype(np.float32)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]  # encode's pixels, image by image
        num = self._numbers(X)
        self.flagged = [c for c in num.columns if num[c].isna().any()]
        self.log_cols = [c for c in num.columns if num[c].min() >= 0 and num[c].skew() > 2]
        num = self._logged(num)
        self.medians = num.median().fillna(0.0)
        filled = num.fillna(self.medians)
        self.mean, self.std = filled.mean(), filled.std().replace(0, 1).fillna(1)
        self.codes = {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            kept = counts[counts >= self.min_count].index[: self.max_levels]
            self.codes[c] = {v: i + 1 for i, v in enumerate(kept)}
        self.text_models = {}
        for c in self.text:
            docs = X[c].fillna("").astype(str)
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=self.text_max_features,
                                         sublinear_tf=True, dtype=np.float32)
            try:
                M = vectorizer.fit_transform(docs)
            except ValueError:  # no term occurs twice (tiny samples)
                continue
            dims = min(self.text_dims, M.shape[1] - 1, M.shape[0] - 1)
            if dims < 1:
                continue
            svd = TruncatedSVD(n_components=dims, random_state=self.seed).fit(M)
            Z = svd.transform(M)
            # One scale for all components (the first gets unit spread): standardising each
            # would make the faint, noisy components as loud as the strong ones.
            self.text_models[c] = (vectorizer, svd, Z.mean(axis=0), Z.std(axis=0).max() + 1e-6)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        raw = self._numbers(X)
        num = (self._logged(raw).fillna(self.medians) - self.mean) / self.std
        out = {f"num__{c}": num[c].clip(-5, 5).to_numpy(dtype=np.float32) for c in num.columns}
        for c in self.flagged:
            out[f"isna__{c}"] = raw[c].isna().to_numpy(dtype=np.float32)
        for c, codes in self.codes.items():
            out[f"cat__{c}"] = X[c].astype(str).where(X[c].notna()).map(codes).fillna(0).to_numpy(dtype=np.int64)
        for c, (vectorizer, svd, mean, std) in self.text_models.items():
            Z = (svd.transform(vectorizer.transform(X[c].fillna("").astype(str))) - mean) / std
            for j in range(Z.shape[1]):
                out[f"txt__{c}_{j}"] = np.clip(Z[:, j], -5, 5).astype(np.float32)
        if not out and not self.enc:
            out["bias"] = np.zeros(len(X), dtype=np.float32)
        frame = pd.DataFrame(out, index=range(len(X)))
        if self.enc:  # pixels in [0, 1], named by their image column: the model rebuilds each image
            per_image = len(self.enc) // len(self.images)
            names = [f"img__{c}__{i}" for c in self.images for i in range(per_image)]
            pixels = pd.DataFrame(X[self.enc].to_numpy(dtype=np.float32) / 255.0, columns=names)
            frame = pd.concat([frame, pixels], axis=1)
        return frame

    def _numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        cols = {c: pd.to_numeric(X[c], errors="coerce").astype(float) for c in self.numeric}
        for c in self.datetime:
            # utc=True: tz-aware and mixed-offset stamps parse beside naive ones (all as UTC)
            when = pd.to_datetime(X[c], errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
            cols.update({f"{c}_year": when.dt.year, f"{c}_month": when.dt.month, f"{c}_dayofweek": when.dt.day_of_week,
                         f"{c}_hour": when.dt.hour, f"{c}_days": (when - pd.Timestamp("1970-01-01")).dt.days})
        return pd.DataFrame(cols, index=X.index).astype(float)

    def _logged(self, num: pd.DataFrame) -> pd.DataFrame:
        num = num.copy()
        for c in self.log_cols:
            num[c] = np.log1p(num[c].clip(lower=0))
        return num
