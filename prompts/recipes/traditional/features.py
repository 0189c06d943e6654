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
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from runtime.params import SPACES, Data

# the declared params this module reads (model.py reads the others)
FEATURE_KEYS = ("te_smoothing", "text_C", "high_cardinality", "inner_folds", "missing_indicator", "text",
                "text_max_features", "text_char", "image_size", "thumbnail", "hog", "seed")


class Features:
    def __init__(self, task: dict, profile: dict, params: dict):
        self.task = task
        self.kind = task["task_type"]
        self.n_classes = len(task.get("classes") or [])
        self.log_target = task.get("metric") == "rmsle"
        self.params = params
        n_train = max(1, int(profile.get("n_train", 1)))
        cols = profile["columns"]
        self.numeric = [c["name"] for c in cols if c["kind"] == "numeric"]
        self.datetime = [c["name"] for c in cols if c["kind"] == "datetime"]
        # String columns with a distinct value on most rows (names, titles) carry their
        # signal in their words, not their identity: treat them as text.
        near_unique = [c["name"] for c in cols if c["kind"] == "categorical" and c["cardinality"] > 0.5 * n_train]
        self.text = [c["name"] for c in cols if c["kind"] == "text"] + near_unique
        self.categorical = [c["name"] for c in cols if c["kind"] == "categorical" and c["name"] not in near_unique]
        self.images = [c["name"] for c in cols if c["kind"] == "image"]
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
        y = np.asarray(y)
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]  # encode's image features
        self.missing_cols = [c for c in self.numeric + self.categorical + self.datetime
                             if self.missing_min <= X[c].isna().mean() < 1.0]
        self.categories, self.high = {}, []
        for c in self.categorical:
            levels = pd.Index(X[c].dropna().astype(str).unique())
            if len(levels) > self.high_card:
                self.high.append(c)
            else:
                self.categories[c] = levels
        self.date_parts = {}
        for c in self.datetime:
            parts = self._date_parts(X[c])
            self.date_parts[c] = [p for p in parts if parts[p].nunique() > 1]
        self.inner = self._inner_split(len(X), y)
        self.fitted_hash = self._hash(X)
        # target encoding of high-cardinality categoricals
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
        # text: TF-IDF + a linear model, out of fold on the fitted rows
        self.vectorizers, self.text_model, self.text_oof = [], None, None
        if self.text and self.use_text:
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
                return self
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
        return self

    # -- transform ------------------------------------------------------------------------

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        same_rows = self._hash(X) == self.fitted_hash
        cols: dict[str, object] = {}
        for c in self.numeric:
            cols[c] = pd.to_numeric(X[c], errors="coerce").astype(float).to_numpy()
        for c, levels in self.categories.items():
            values = X[c].astype(str)
            cols[c] = pd.Categorical(values.where(X[c].notna() & values.isin(levels)), categories=levels)
        for c in self.high:
            key = X[c].astype(str).where(X[c].notna(), "<missing>")
            cols[f"{c}_count"] = key.map(self.counts[c]).fillna(0).to_numpy(dtype=float)
            te = self.te_oof[c] if same_rows else self._te_apply(self.te_full[c], key)
            for j in range(te.shape[1]):
                cols[f"{c}_te{j}"] = te[:, j]
        for c, parts in self.date_parts.items():
            values = self._date_parts(X[c])
            for p in parts:
                cols[f"{c}_{p}"] = values[p].to_numpy(dtype=float)
        for c in self.text:
            text = X[c].fillna("").astype(str)
            cols[f"{c}_chars"] = text.str.len().to_numpy(dtype=float)
            cols[f"{c}_words"] = text.str.split().str.len().to_numpy(dtype=float)
        if self.text_model is not None:
            if same_rows:
                pred = self.text_oof
            else:
                pred = self._linear_predict(self.text_model, self._text_matrix([self._docs(X, c) for c in self.text]))
            for j in range(pred.shape[1]):
                cols[f"text_pred{j}"] = pred[:, j]
        for c in self.missing_cols:
            cols[f"{c}_isna"] = X[c].isna().to_numpy(dtype=float)
        cols["n_missing"] = X.drop(columns=self.enc + self.images).isna().sum(axis=1).to_numpy(dtype=float)
        if self.enc:  # one block: hundreds of image columns added one by one would fragment the frame
            return pd.concat([pd.DataFrame(cols), X[self.enc].reset_index(drop=True).astype(float)], axis=1)
        return pd.DataFrame(cols)

    # -- pieces ---------------------------------------------------------------------------

    @staticmethod
    def _hash(X: pd.DataFrame) -> int:
        """A fingerprint of the rows' content and order."""
        return hash(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())

    def _inner_split(self, n: int, y: np.ndarray) -> list:
        k = max(2, min(self.inner_folds, n // 2))
        if self.kind != "regression":
            counts = np.bincount(y.astype(int))
            smallest = counts[counts > 0].min()
            if smallest >= k:
                return list(StratifiedKFold(k, shuffle=True, random_state=self.seed).split(np.zeros(n), y))
        return list(KFold(k, shuffle=True, random_state=self.seed).split(np.zeros(n)))

    def _target_matrix(self, y: np.ndarray) -> np.ndarray:
        """What target encoding averages: the value (regression) or one-hot classes."""
        if self.kind == "regression":
            v = np.log1p(np.clip(y.astype(float), 0, None)) if self.log_target else y.astype(float)
            return v.reshape(-1, 1)
        onehot = np.eye(max(self.n_classes, 2))[y.astype(int)]
        return onehot[:, 1:2] if self.kind == "binary" else onehot

    def _te_table(self, key: pd.Series, targets: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(targets, index=key.index)
        grouped = frame.groupby(key.to_numpy())
        sums, counts = grouped.sum(), grouped.size()
        prior = targets.mean(axis=0) if len(targets) else self.prior
        return (sums + self.smoothing * prior).div(counts + self.smoothing, axis=0)

    def _te_apply(self, table: pd.DataFrame, key: pd.Series) -> np.ndarray:
        out = table.reindex(key.to_numpy()).to_numpy(dtype=float, copy=True)
        missing = np.isnan(out)
        if missing.any():
            out[missing] = np.broadcast_to(self.prior, out.shape)[missing]
        return out

    @staticmethod
    def _date_parts(col: pd.Series) -> pd.DataFrame:
        # utc=True: tz-aware ("2016-01-25T13:32:20Z") and mixed-offset stamps parse (to UTC) beside
        # naive ones, which are taken as UTC; without it mixed offsets raise and aware ones cannot be subtracted
        when = pd.to_datetime(col, errors="coerce", format="mixed", utc=True).dt.tz_convert(None)
        return pd.DataFrame({
            "year": when.dt.year, "month": when.dt.month, "day": when.dt.day,
            "dayofweek": when.dt.day_of_week, "hour": when.dt.hour,
            "days": (when - pd.Timestamp("1970-01-01")).dt.days,
        })

    @staticmethod
    def _docs(X: pd.DataFrame, c: str) -> pd.Series:
        return X[c].fillna("").astype(str)

    def _text_matrix(self, docs: list) -> sp.csr_matrix:
        blocks = []
        for d, (word, char) in zip(docs, self.vectorizers):
            blocks += [v.transform(d) for v in (word, char) if v is not None]
        return sp.hstack(blocks, format="csr")

    def _prior_rows(self, n: int) -> np.ndarray:
        prior = self.prior if self.kind == "multiclass" else self.prior[:1]
        return np.tile(prior, (n, 1))

    def _text_dims(self) -> int:
        return self.n_classes if self.kind == "multiclass" else 1

    def _linear_target(self, y: np.ndarray) -> np.ndarray:
        if self.kind != "regression":
            return y.astype(int)
        v = np.log1p(np.clip(y.astype(float), 0, None)) if self.log_target else y.astype(float)
        self.y_mean, self.y_std = float(v.mean()), float(v.std()) or 1.0
        return (v - self.y_mean) / self.y_std

    def _linear_model(self):
        if self.kind == "regression":
            return Ridge(alpha=1.0 / self.text_C)
        return LogisticRegression(C=self.text_C, max_iter=300)

    def _linear_predict(self, model, M) -> np.ndarray:
        if self.kind == "regression":
            return model.predict(M).reshape(-1, 1)
        proba = model.predict_proba(M)
        if self.kind == "binary":
            col = list(model.classes_).index(1) if 1 in model.classes_ else None
            return (proba[:, col] if col is not None else np.zeros(M.shape[0])).reshape(-1, 1)
        out = np.zeros((M.shape[0], self.n_classes))
        out[:, model.classes_] = proba
        return out
