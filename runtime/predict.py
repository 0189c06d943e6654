"""Predictions for new rows from a finished run's fitted models, without retraining.

A run keeps every fold's fitted `Features` and `Model` of each attempt (the harness pickles
them into `tracks/<track>/attempt_<n>/models/`, runtime/saved_models.py), and submit writes `model.json`: the winning
blend's members, their exact weights and params. Here each member's folds predict the new
rows exactly as the harness predicted the test rows (their average, in fold order), the members
are blended with the same weights (or stacked by the same stacker), and the result is formatted
like the submission. Where the
run also fitted a member on all rows (`models/full.pkl`), that fit is mixed in as the harness did.

    from runtime.predict import load_run
    run = load_run("runs/penguins-1")
    frame = run.predict(new_rows)          # a DataFrame shaped like submission.csv

Rows of an image task give each row's image by the column the run read it from (its id,
resolved like the task's test images under `image_root`, by default the task's folder) or by
the image column itself (paths, absolute or relative to `image_root`).

This runs the run's generated modules in the caller's process, as solution.py does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime.columnar import cached_manifest, compact_like
from runtime.data import TaskInputError, feature_columns, key_columns, label_key, understand_values, with_image_paths
from runtime.saved_models import MODELS_DIR, fold_models, full_model, load_models
from runtime.stack import stack_predict
from runtime.submission import submission_frame

MANIFEST = "model.json"


@dataclass
class Member:
    name: str
    weight: float
    folder: Path
    params: dict[str, Any]


class FittedRun:
    """A finished run's blend, ready to predict rows it has never seen."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        manifest_path = self.run_dir / MANIFEST
        if not manifest_path.exists():
            raise TaskInputError(f"{self.run_dir} has no {MANIFEST}: it is not a finished run, or an older iml made it; "
                                 "finish it with `iml resume` or run the task again")
        manifest = json.loads(manifest_path.read_text())
        self.task: dict[str, Any] = json.loads((self.run_dir / "task.json").read_text())
        self.profile: dict[str, Any] = json.loads((self.run_dir / "profile.json").read_text())
        self.kind: str = manifest["kind"]
        self.threshold = float(manifest.get("threshold", 0.5))
        self.power = float(manifest.get("power", 1.0))
        self.stacker = manifest.get("stacker")  # stacked: the second-level model over the members (runtime/stack.py)
        self.baseline = np.asarray(manifest.get("baseline")) if manifest.get("baseline") is not None else None
        self.members = [Member(m["name"], m["weight"], self.run_dir / m["attempt"], m["params"]) for m in manifest["members"]]
        for m in self.members:
            if not fold_models(m.folder):
                raise TaskInputError(f"{m.name} kept no fitted models ({m.folder / MODELS_DIR}); this run cannot predict "
                                     "new rows without retraining")

    @property
    def features(self) -> list[str]:
        return feature_columns(self.task, [])

    def predict_raw(self, rows: pd.DataFrame, image_root: str | Path | None = None) -> np.ndarray:
        """The blend's predictions in the harness's form (probabilities, or values)."""
        X = self._inputs(rows, image_root)
        if self.kind == "baseline":
            return np.tile(self.baseline, (len(X), 1)) if self.baseline.ndim else np.full(len(X), float(self.baseline))
        preds = {m.name: self._member(m, X) for m in self.members}
        if self.stacker is not None:
            return stack_predict(self.stacker, preds)
        if len(self.members) == 1:
            return preds[self.members[0].name]
        total = sum(m.weight for m in self.members)
        return sum(preds[m.name] * (m.weight / total) for m in self.members)

    def predict(self, rows: pd.DataFrame, image_root: str | Path | None = None) -> pd.DataFrame:
        """Predictions for `rows`, formatted like the run's submission.csv (its ids, its columns)."""
        id_col = self.task.get("id_column")
        if id_col and id_col not in rows.columns:
            raise TaskInputError(f"the new rows have no id column '{id_col}'; the submission format needs it")
        missing = [c for c in self.task.get("passthrough_columns") or [] if c not in rows.columns]
        if missing:
            raise TaskInputError(f"the new rows lack {', '.join(missing)}, which the submission copies from each row")
        return submission_frame(self.task, self.predict_raw(rows, image_root), rows=rows.reset_index(drop=True),
                                threshold=self.threshold, power=self.power)

    # -- internals ------------------------------------------------------------------------

    def _inputs(self, rows: pd.DataFrame, image_root: str | Path | None = None) -> pd.DataFrame:
        images = self.task.get("images")
        if images:
            rows = self._with_images(rows, images, Path(image_root or self.task["task_dir"]))
        missing = [c for c in self.features if c not in rows.columns]
        if missing:
            shown = ", ".join(missing[:6]) + (f", … ({len(missing) - 6} more)" if len(missing) > 6 else "")
            raise TaskInputError(f"the new rows lack {len(missing)} column(s) the models use: {shown}; add them "
                                 "(empty values are fine)")
        keys = [k for k in key_columns(self.task) if k != self.task["target"]]
        X = understand_values(rows[self.features].reset_index(drop=True).copy(), keys)
        manifest = cached_manifest(self.run_dir, table=False)  # a large table's run: the dtypes its models were fitted on
        return compact_like(X, manifest) if manifest is not None else X

    def _with_images(self, rows: pd.DataFrame, images: dict, root: Path) -> pd.DataFrame:
        column, key = images["column"], images.get("key") or self.task.get("id_column")
        if column in rows.columns:
            rows = rows.copy()
            rows[column] = [str(root / p) if isinstance(p, str) else p for p in rows[column]]  # absolute paths stay
            return rows
        if key and key in rows.columns:
            rows = rows.copy()
            rows[key] = rows[key].map(lambda v: v if isinstance(v, str) else label_key(v))
            return with_image_paths(rows, {**self.task, "task_dir": str(root)}, "test")
        raise TaskInputError(f"the new rows name no images: give a column '{key}' (resolved as {images['test_pattern']} "
                             f"under {root}) or a column '{column}' of image paths")

    def _member(self, member: Member, X: pd.DataFrame) -> np.ndarray:
        from runtime.fold_loop import (checked_prediction, encode_rows, load_module, unit_tasks,  # sklearn: only when predicting
                                       with_full_fit)

        features_mod = load_module("features", member.folder / "features.py")
        if getattr(features_mod.Features, "encode", None) is not None:
            X = pd.concat([X, encode_rows(features_mod, self.task, self.profile, member.params, X)], axis=1)
        folds = fold_models(member.folder)
        out = None
        units = unit_tasks(self.task, load_module("model", member.folder / "model.py"))

        def predicted(path: Path) -> np.ndarray:
            fitted = load_models(path)  # one (Features, Model) per unit: one, or one per target column
            preds = [checked_prediction(unit, model.predict(feats.transform(X)), len(X))
                     for (unit, _), (feats, model) in zip(units, fitted)]
            return preds[0] if len(preds) == 1 and units[0][1] is None else np.column_stack(preds)

        for path in folds:
            pred = predicted(path)
            # as the harness sums the test predictions: zeros, plus each fold's share in fold order
            out = np.zeros_like(pred) if out is None else out
            out += pred / len(folds)
        full = full_model(member.folder)
        return with_full_fit(out, predicted(full)) if full is not None else out


def load_run(run_dir: str | Path) -> FittedRun:
    return FittedRun(run_dir)
