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
from runtime.recipe_steps import CLIP, NumberScaler, columns_by_kind, number_frame

# the datetime parts the network reads
DATE_PARTS = ("year", "month", "dayofweek", "hour", "days")


class Features:
    """A frame of `num__*` standardised numbers, `isna__*` flags, `cat__*` codes, `txt__*` SVD
    components and `img__*` pixels."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.task = task
        self.params = params
        n_train = max(1, int(profile.get("n_train", 1)))
        self.numeric, self.categorical, self.datetime, self.text, self.images = columns_by_kind(profile, names_as_text=True)
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
        """Fit the number scaling, the categoricals' codes and each text column's TF-IDF + SVD."""
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]  # encode's pixels, image by image
        self.scaler = NumberScaler().fit(self.numbers(X))
        self.codes = {}
        for c in self.categorical:
            counts = X[c].dropna().astype(str).value_counts()
            kept = counts[counts >= self.min_count].index[: self.max_levels]
            self.codes[c] = {v: i + 1 for i, v in enumerate(kept)}
        self.text_models = {}
        for c in self.text:
            fitted = self.fit_text(X[c].fillna("").astype(str))
            if fitted is not None:
                self.text_models[c] = fitted
        return self

    def fit_text(self, docs: pd.Series) -> tuple | None:
        """(vectorizer, svd, mean, scale) of one text column; None when too few terms repeat."""
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=self.text_max_features,
                                     sublinear_tf=True, dtype=np.float32)
        try:
            M = vectorizer.fit_transform(docs)
        except ValueError:  # no term occurs twice (tiny samples)
            return None
        dims = min(self.text_dims, M.shape[1] - 1, M.shape[0] - 1)
        if dims < 1:
            return None
        svd = TruncatedSVD(n_components=dims, random_state=self.seed).fit(M)
        Z = svd.transform(M)
        # One scale for all components (the first gets unit spread): standardising each
        # would make the faint, noisy components as loud as the strong ones.
        return vectorizer, svd, Z.mean(axis=0), Z.std(axis=0).max() + 1e-6

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """num__* | isna__* | cat__* | txt__* | img__* (pixels / 255), as one frame."""
        raw = self.numbers(X)
        num = self.scaler.transform(raw)
        out = {f"num__{c}": num[c].to_numpy(dtype=np.float32) for c in num.columns}
        for c in self.scaler.flagged:
            out[f"isna__{c}"] = raw[c].isna().to_numpy(dtype=np.float32)
        for c, codes in self.codes.items():
            out[f"cat__{c}"] = X[c].astype(str).where(X[c].notna()).map(codes).fillna(0).to_numpy(dtype=np.int64)
        for c, (vectorizer, svd, mean, std) in self.text_models.items():
            Z = (svd.transform(vectorizer.transform(X[c].fillna("").astype(str))) - mean) / std
            for j in range(Z.shape[1]):
                out[f"txt__{c}_{j}"] = np.clip(Z[:, j], -CLIP, CLIP).astype(np.float32)
        if not out and not self.enc:
            out["bias"] = np.zeros(len(X), dtype=np.float32)
        frame = pd.DataFrame(out, index=range(len(X)))
        if self.enc:  # pixels in [0, 1], named by their image column: the model rebuilds each image
            per_image = len(self.enc) // len(self.images)
            names = [f"img__{c}__{i}" for c in self.images for i in range(per_image)]
            pixels = pd.DataFrame(X[self.enc].to_numpy(dtype=np.float32) / 255.0, columns=names)
            frame = pd.concat([frame, pixels], axis=1)
        return frame

    def numbers(self, X: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns and the datetime columns' year, month, weekday, hour and day number."""
        return number_frame(X, self.numeric, self.datetime, DATE_PARTS)
