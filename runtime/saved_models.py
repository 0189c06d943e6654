"""The fitted models an attempt keeps, so `iml predict` predicts new rows without retraining.

In an attempt's folder, `models/` holds `fold_<k>.pkl` (the fold's fitted `Features` and
`Model`, one pair per unit: the whole task, or one per target column) and, when the plan
refits, `full.pkl` (the pair fitted on all rows). The harness writes them as the folds end;
runtime/predict.py reads them back; submit deletes those of attempts outside the final blend.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

MODELS_DIR = "models"  # in an attempt's folder: fold_<k>.pkl, each fold's fitted (Features, Model)
FULL_MODEL = "full.pkl"  # beside them, when the plan refits: the (Features, Model) fitted on all rows


def drop_folds(attempt_dir: Path, fits) -> None:
    """Remove the kept models of fits whose cut was not finished (their predictions are not used)."""
    for j in fits:
        (attempt_dir / MODELS_DIR / f"fold_{j}.pkl").unlink(missing_ok=True)


def take_folds(source_dir: Path, attempt_dir: Path, fits) -> bool:
    """Another attempt's kept fold models as this attempt's own (a bag continues the cuts of the
    attempt it bags): hard links where the file system allows, so deleting the other attempt's
    models leaves these. False, with none taken, when one of them is missing."""
    import os
    import shutil

    sources = [source_dir / MODELS_DIR / f"fold_{j}.pkl" for j in fits]
    if not all(p.exists() for p in sources):
        return False
    folder = attempt_dir / MODELS_DIR
    folder.mkdir(exist_ok=True)
    for path in sources:
        target = folder / path.name
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return True


def save_fold(attempt_dir: Path, k: int, fitted: list[tuple[Any, Any]]) -> str | None:
    """Keep a fold's fitted (Features, Model) units for `iml predict`; the reason when they cannot be."""
    return save_models(attempt_dir, f"fold_{k}.pkl", fitted)


def save_full(attempt_dir: Path, fitted: list[tuple[Any, Any]]) -> str | None:
    """Keep the fit on all rows beside the folds' (`iml predict` mixes it in as the harness did)."""
    return save_models(attempt_dir, FULL_MODEL, fitted)


def save_models(attempt_dir: Path, name: str, fitted: list[tuple[Any, Any]]) -> str | None:
    import cloudpickle

    folder = attempt_dir / MODELS_DIR
    folder.mkdir(exist_ok=True)
    partial = folder / f".{name}.partial"
    # Streamed to the file: `dumps` held the whole pickle in memory beside the model (an
    # extra-trees forest on 4,500 rows: +50 MB at the attempt's peak). Renamed when complete,
    # so a failure never leaves a pickle that looks whole.
    try:
        with partial.open("wb") as f:
            cloudpickle.dump(fitted, f)
    except Exception as e:  # noqa: BLE001 - an unpicklable model still has its score
        partial.unlink(missing_ok=True)
        return f"{type(e).__name__}: {e}"[:300]
    partial.replace(folder / name)
    return None


def fold_models(attempt_dir: Path) -> list[Path]:
    """The attempt's kept fold models, in fold order (the order the harness summed their predictions)."""
    return sorted((attempt_dir / MODELS_DIR).glob("fold_*.pkl"), key=lambda p: int(p.stem.split("_")[1]))


def full_model(attempt_dir: Path) -> Path | None:
    """The attempt's kept fit on all rows, None when it made none."""
    path = attempt_dir / MODELS_DIR / FULL_MODEL
    return path if path.exists() else None


def load_models(path: Path) -> list[tuple[Any, Any]]:
    """One kept file's fitted (Features, Model) units."""
    return pickle.loads(path.read_bytes())
