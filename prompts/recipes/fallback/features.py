"""Fallback features: the simplest thing that works on any table.

Numbers as they are, every other column as integer codes learnt at fit time (unseen -> -1),
each image as an 8x8 colour thumbnail (192 numbers, computed once by `encode`). Used when a
track's own modules failed every repair.
"""

import numpy as np
import pandas as pd

from runtime.recipe_steps import columns_by_kind


class Features:
    """Numbers as they are, other columns as integer codes, images as 8x8 thumbnails."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.numeric, _, _, _, self.images = columns_by_kind(profile)
        self.coded = [c["name"] for c in profile["columns"] if c["kind"] in ("categorical", "text", "datetime")]
        self.codes: dict[str, dict] = {}

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """Image thumbnails (nothing without images): row-wise, so the harness runs it once."""
        if not self.images:
            return np.zeros((len(X), 0), dtype=np.float32)
        from runtime.images import load_images

        return np.hstack([load_images(X[c], 8).reshape(len(X), -1) for c in self.images]).astype(np.float32)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Fix each coded column's codes (its values in order of appearance)."""
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]
        for c in self.coded:
            self.codes[c] = {v: i for i, v in enumerate(X[c].astype(str).unique())}
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """numbers | codes (unseen -> -1) | thumbnails, as one float matrix."""
        parts = [pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float) for c in self.numeric]
        parts += [X[c].astype(str).map(self.codes[c]).fillna(-1).to_numpy(dtype=float) for c in self.coded]
        parts += [X[c].to_numpy(dtype=float) for c in self.enc]
        if not parts:
            return np.zeros((len(X), 1))
        return np.column_stack(parts)
