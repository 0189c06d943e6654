"""Traditional track, features: a frame LightGBM reads natively, plus in-fold encodings.

- numeric columns pass through (LightGBM splits on missing values itself);
- categoricals with at most `high_cardinality` levels become pandas categories, the level set
  fixed at fit time (unseen and missing -> missing);
- categoricals with more levels become their training count and a smoothed target encoding;
- datetimes become their parts (year, month, day, weekday, hour, day number) where they vary;
  time-zone-aware and mixed-offset timestamps are read in UTC beside naive ones;
- missing indicators for columns whose training missing share is at least `missing_indicator`,
  and a per-row missing count;
- free text (text columns, and string columns with a distinct value on most rows such as
  names) becomes TF-IDF word 1-2 grams + char 2-5 grams, read by a linear model
  (LogisticRegression / Ridge) whose predictions are LightGBM features, plus length and word
  count;
- images (image columns: each row's file): cheap features computed once per run by `encode`
  (the harness caches them across folds and attempts) from each image decoded at
  `image_size` pixels square: per channel mean, spread and 5th / 95th percentiles, an 8-bin
  histogram per channel, a `thumbnail` x `thumbnail` grey thumbnail, and HOG (scikit-image:
  9 orientations over a 4 x 4 grid of cells, 2 x 2 blocks), all numeric columns for LightGBM.

Target encodings and text predictions are stacked features: on the rows `fit` saw, they are
out of fold (an inner `inner_folds`-fold split of the training part), so LightGBM never sees a
value computed from the row's own label; on any other rows they come from the whole training
part. `transform` recognises the fitted rows by a hash of their content.

Params: runtime/params.py declares them (SPACES["traditional"], shared with model.py).
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from runtime.params import SPACES, Data
from runtime.recipe_steps import (
    TargetScale,
    category_columns,
    category_levels,
    columns_by_kind,
    date_columns,
    date_parts,
    in_class_order,
    inner_folds,
    number_columns,
    text_lengths,
    varying_date_parts,
)

# the declared params this module reads (model.py reads the others)
FEATURE_KEYS = ("te_smoothing", "text_C", "high_cardinality", "inner_folds", "missing_indicator", "text",
                "text_max_features", "text_char", "image_size", "thumbnail", "hog", "log_target", "seed")


class Features:
    """A frame LightGBM reads: numbers, categories, count and target encodings, date parts, text
    lengths and a text model's out-of-fold predictions, missing flags, and image features."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.task = task
        self.kind = task["task_type"]
        self.n_classes = len(task.get("classes") or [])
        self.params = params
        n_train = max(1, int(profile.get("n_train", 1)))
        cols = profile["columns"]
        # String columns with a distinct value on most rows (names, titles) carry their
        # signal in their words, not their identity: treat them as text.
        self.numeric, self.categorical, self.datetime, self.text, self.images = columns_by_kind(profile, names_as_text=True)
        # char n-grams cost time in proportion to the characters read: keep them for short
        # texts (names, titles), where they matter most, and use words alone on long documents.
        chars = sum(n_train * (c.get("mean_length") or 20.0) for c in cols if c["name"] in self.text)
        r = SPACES["traditional"].resolve(params, Data(n=n_train, task_type=self.kind, text_chars=chars))
        self.resolved = {k: r[k] for k in FEATURE_KEYS}
        self.seed, self.high_card, self.smoothing = r["seed"], r["high_cardinality"], r["te_smoothing"]
        self.inner_folds, self.missing_min, self.use_text, self.text_C = r["inner_folds"], r["missing_indicator"], r["text"], r["text_C"]
        self.text_max_features, self.text_char = r["text_max_features"], r["text_char"]
        self.image_size, self.thumbnail, self.use_hog = r["image_size"], r["thumbnail"], r["hog"]

    # -- encode: once per run, on train + test rows ----------------------------------------

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """Image features, row-wise and label-free; no columns when the task has no images."""
        if not self.images:
            return np.zeros((len(X), 0), dtype=np.float32)
        from runtime.images import load_images

        per_column = []
        for c in self.images:  # in chunks of images: memory stays bounded on large folders
            chunks = [self._image_features(load_images(X[c].iloc[i:i + 2048], self.image_size))
                      for i in range(0, len(X), 2048)]
            per_column.append(np.vstack(chunks))
        return np.hstack(per_column).astype(np.float32)

    def _image_features(self, pixels: np.ndarray) -> np.ndarray:
        """(n, s, s, 3) uint8 -> (n, features): colour statistics, histograms, a thumbnail, HOG."""
        rgb = pixels.astype(np.float32) / 255.0
        flat = rgb.reshape(len(rgb), -1, 3)
        parts = [flat.mean(axis=1), flat.std(axis=1), np.percentile(flat, 5, axis=1), np.percentile(flat, 95, axis=1)]
        bins = np.minimum((flat * 8).astype(np.int64), 7)
        for ch in range(3):
            hist = np.stack([np.bincount(row, minlength=8) for row in bins[:, :, ch]]) / flat.shape[1]
            parts.append(hist)
        grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        side = grey.shape[1]
        if self.thumbnail > 0 and side % self.thumbnail == 0:
            step = side // self.thumbnail
            parts.append(grey.reshape(len(grey), self.thumbnail, step, self.thumbnail, step).mean(axis=(2, 4)).reshape(len(grey), -1))
        if self.use_hog and side >= 16:
            from skimage.feature import hog

            cell = side // 4
            parts.append(np.stack([hog(g, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                                       feature_vector=True) for g in grey]))
        return np.hstack(parts)

    # -- fit ------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Fit each step on the training rows: missing flags, categories, dates, then the
        in-fold encodings (target encoding, the text model) over an inner split."""
        y = np.asarray(y)
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]  # encode's image features
        self.missing_cols = [c for c in self.numeric + self.categorical + self.datetime
                             if self.missing_min <= X[c].isna().mean() < 1.0]
        self.fit_categories(X)
        self.date_parts = varying_date_parts(X, self.datetime, self._date_parts)
        self.inner = inner_folds(len(X), y, self.inner_folds, self.kind, self.seed)
        self.fitted_hash = self._hash(X)
        self.target = TargetScale.fitted(self.task, self.resolved["log_target"], y) if self.kind == "regression" else None
        self.fit_target_encoding(X, y)
        self.fit_text(X, y)
        return self

    def fit_categories(self, X: pd.DataFrame) -> None:
        """Split the categoricals: up to `high_cardinality` levels become categories (levels
        fixed here), more levels get a count and a target encoding (`high`)."""
        self.categories, self.high = {}, []
        for c, levels in category_levels(X, self.categorical).items():
            if len(levels) > self.high_card:
                self.high.append(c)
            else:
                self.categories[c] = levels

    def fit_target_encoding(self, X: pd.DataFrame, y: np.ndarray) -> None:
        """Counts and smoothed target means of the high-cardinality categoricals: from all rows
        for new rows (te_full), out of the inner folds for the fitted rows (te_oof)."""
        self.targets = self._target_matrix(y)
        self.prior = self.targets.mean(axis=0)
        self.counts, self.te_full, self.te_oof = {}, {}, {}
        for c in self.high:
            key = X[c].astype(str).where(X[c].notna(), "<missing>")
            self.counts[c] = key.value_counts()
            self.te_full[c] = self._te_table(key, self.targets)
            oof = np.zeros((len(X), self.targets.shape[1]))
            for tr, va in self.inner:
                table = self._te_table(key.iloc[tr], self.targets[tr])
                oof[va] = self._te_apply(table, key.iloc[va])
            self.te_oof[c] = oof

    def fit_text(self, X: pd.DataFrame, y: np.ndarray) -> None:
        """TF-IDF (word 1-2 grams, char 2-5 grams when `text_char`) of the text columns and a
        linear model on it, out of the inner folds on the fitted rows (text_oof)."""
        self.vectorizers, self.text_model, self.text_oof = [], None, None
        if not (self.text and self.use_text):
            return
        blocks = []
        for c in self.text:
            d = self._docs(X, c)
            word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=self.text_max_features,
                                   sublinear_tf=True, dtype=np.float32)
            char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2,
                                   max_features=self.text_max_features, sublinear_tf=True, dtype=np.float32)
            try:
                blocks.append(word.fit_transform(d))
            except ValueError:  # no word survives min_df (tiny samples)
                word = None
            if self.text_char or word is None:
                try:
                    blocks.append(char.fit_transform(d))
                except ValueError:  # nothing but empty texts
                    char = None
            else:
                char = None
            self.vectorizers.append((word, char))
        target = self._linear_target(y)
        if not blocks or (self.kind != "regression" and len(np.unique(target)) < 2):
            self.vectorizers = []  # no usable text, or one class only: lengths alone
            return
        M = sp.hstack(blocks, format="csr")
        self.text_oof = np.zeros((len(X), self._text_dims()))
        # One BLAS thread: the solver's many small vector operations only lose time to
        # thread hand-offs (several times slower on 2 busy cores).
        with threadpool_limits(limits=1):
            for tr, va in self.inner:
                if self.kind != "regression" and len(np.unique(target[tr])) < 2:
                    self.text_oof[va] = self._prior_rows(len(va))  # one class only: nothing to learn
                    continue
                model = self._linear_model().fit(M[tr], target[tr])
                self.text_oof[va] = self._linear_predict(model, M[va])
            self.text_model = self._linear_model().fit(M, target)

    # -- transform ------------------------------------------------------------------------

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns of each step, side by side; the fitted rows get the out-of-fold encodings."""
        same_rows = self._hash(X) == self.fitted_hash
        cols: dict[str, object] = number_columns(X, self.numeric)
        cols.update(category_columns(X, self.categories))
        cols.update(self.target_encoded_columns(X, same_rows))
        cols.update(date_columns(X, self.date_parts, self._date_parts))
        cols.update(text_lengths(X, self.text))
        cols.update(self.text_columns(X, same_rows))
        for c in self.missing_cols:
            cols[f"{c}_isna"] = X[c].isna().to_numpy(dtype=float)
        cols["n_missing"] = X.drop(columns=self.enc + self.images).isna().sum(axis=1).to_numpy(dtype=float)
        if self.enc:  # one block: hundreds of image columns added one by one would fragment the frame
            return pd.concat([pd.DataFrame(cols), X[self.enc].reset_index(drop=True).astype(float)], axis=1)
        return pd.DataFrame(cols)

    def target_encoded_columns(self, X: pd.DataFrame, same_rows: bool) -> dict[str, np.ndarray]:
        """`<column>_count` and `<column>_te<j>` of each high-cardinality categorical."""
        cols = {}
        for c in self.high:
            key = X[c].astype(str).where(X[c].notna(), "<missing>")
            cols[f"{c}_count"] = key.map(self.counts[c]).fillna(0).to_numpy(dtype=float)
            te = self.te_oof[c] if same_rows else self._te_apply(self.te_full[c], key)
            for j in range(te.shape[1]):
                cols[f"{c}_te{j}"] = te[:, j]
        return cols

    def text_columns(self, X: pd.DataFrame, same_rows: bool) -> dict[str, np.ndarray]:
        """`text_pred<j>`: the text model's prediction (out of fold on the fitted rows)."""
        if self.text_model is None:
            return {}
        if same_rows:
            pred = self.text_oof
        else:
            pred = self._linear_predict(self.text_model, self._text_matrix([self._docs(X, c) for c in self.text]))
        return {f"text_pred{j}": pred[:, j] for j in range(pred.shape[1])}

    # -- pieces ---------------------------------------------------------------------------

    @staticmethod
    def _hash(X: pd.DataFrame) -> int:
        """A fingerprint of the rows' content and order."""
        return hash(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())

    def _target_matrix(self, y: np.ndarray) -> np.ndarray:
        """What target encoding averages: the value (regression, log1p where the model learns
        log1p) or one-hot classes."""
        if self.kind == "regression":
            return self.target.logged(y).reshape(-1, 1)
        onehot = np.eye(max(self.n_classes, 2))[y.astype(int)]
        return onehot[:, 1:2] if self.kind == "binary" else onehot

    def _te_table(self, key: pd.Series, targets: np.ndarray) -> pd.DataFrame:
        """Per level: (sum of targets + te_smoothing * prior) / (count + te_smoothing)."""
        frame = pd.DataFrame(targets, index=key.index)
        grouped = frame.groupby(key.to_numpy())
        sums, counts = grouped.sum(), grouped.size()
        prior = targets.mean(axis=0) if len(targets) else self.prior
        return (sums + self.smoothing * prior).div(counts + self.smoothing, axis=0)

    def _te_apply(self, table: pd.DataFrame, key: pd.Series) -> np.ndarray:
        """The table's rows for these keys; unseen levels get the prior."""
        out = table.reindex(key.to_numpy()).to_numpy(dtype=float, copy=True)
        missing = np.isnan(out)
        if missing.any():
            out[missing] = np.broadcast_to(self.prior, out.shape)[missing]
        return out

    @staticmethod
    def _date_parts(col: pd.Series) -> pd.DataFrame:
        """A datetime column's parts (runtime.recipe_steps.date_parts: read in UTC)."""
        return date_parts(col)

    @staticmethod
    def _docs(X: pd.DataFrame, c: str) -> pd.Series:
        """A text column as strings (missing: "")."""
        return X[c].fillna("").astype(str)

    def _text_matrix(self, docs: list) -> sp.csr_matrix:
        """The fitted vectorizers' TF-IDF of new rows, side by side."""
        blocks = []
        for d, (word, char) in zip(docs, self.vectorizers):
            blocks += [v.transform(d) for v in (word, char) if v is not None]
        return sp.hstack(blocks, format="csr")

    def _prior_rows(self, n: int) -> np.ndarray:
        """The text model's stand-in where an inner fold has one class: the class shares."""
        prior = self.prior if self.kind == "multiclass" else self.prior[:1]
        return np.tile(prior, (n, 1))

    def _text_dims(self) -> int:
        """Columns of the text model's prediction: k for multiclass, else 1."""
        return self.n_classes if self.kind == "multiclass" else 1

    def _linear_target(self, y: np.ndarray) -> np.ndarray:
        """The text model's target: class codes, or the (logged) value standardised."""
        if self.kind != "regression":
            return y.astype(int)
        return TargetScale.fitted(self.task, self.resolved["log_target"], y, standardise=True).forward(y)

    def _linear_model(self):
        """Ridge (alpha = 1 / text_C) or LogisticRegression (C = text_C)."""
        if self.kind == "regression":
            return Ridge(alpha=1.0 / self.text_C)
        return LogisticRegression(C=self.text_C, max_iter=300)

    def _linear_predict(self, model, M) -> np.ndarray:
        """Regression: (n, 1) on the learnt scale; binary: (n, 1) P(class 1); multiclass: (n, k)."""
        if self.kind == "regression":
            return model.predict(M).reshape(-1, 1)
        proba = in_class_order(model.predict_proba(M), model.classes_, max(self.n_classes, 2))
        return proba[:, 1:2] if self.kind == "binary" else proba
