"""The harness: loaded once into each track's kernel.

It owns everything around the generated modules — the data (read once per kernel), the
encoded target, the folds (the same for every track), out-of-fold and test predictions, and
the metric. Generated `Features` / `Model` classes never see a file, a validation label or a
score; the harness computes the score itself and writes it to `result.json`, so nothing is
parsed out of stdout. The loop over folds is runtime/fold_loop.py (solution.py runs the same);
here are what surrounds it: the deadline, pruning, the fit on all rows, the interface check,
the encode cache. The fitted models it keeps are runtime/saved_models.py's.

Each attempt's modules are executed into fresh module objects, so attempts cannot leak
state into each other while the loaded data is shared.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime.columnar import build_cache, cached_manifest, labelled_positions, plan_frames, read_cached, sample_positions
from runtime.data import feature_columns
from runtime.fit_time import extrapolate, fit_curve, full_fit_folds, predict
from runtime.fold_loop import (
    ConstantUnit,
    ContractError,
    attempt_scheme,
    empty_prediction,
    encode_rows,
    encode_target,
    fit_fold,
    fold_fits,
    folds_at_once,
    join_encoded,
    load_module,
    make_fold_sets,
    repaired,
    unit_tasks,
    with_full_fit,
)
from runtime.memory import PeakMemory, release_memory, rss_mb
from runtime.metrics import get_metric
from runtime.params import REPAIR_PARAMS
from runtime.saved_models import drop_folds, save_fold, save_full, take_folds

SAMPLE_ROWS = 300
# The check's timing of one fold's fit (`_fit_timing`): samples doubling from PROBE_START_ROWS to
# the fold's training rows, until they say how long a fold takes (runtime/fit_time.py `predict`:
# measured, or extrapolated on evidence) or the seconds it may spend are spent.
PROBE_START_ROWS = 256
PROBE_REPEAT_S = 0.25  # a fit shorter than this is timed twice, the faster counting: a busy machine's noise
# A model whose params cap its training (`max_seconds`) checks its clock once per epoch: it ends up
# to an epoch past the cap, its features and predictions beside it.
TIME_CAP_SLACK = 1.25
FOLDS_TEST = "test_folds.npy"  # beside test.npy when a fit on all rows was mixed into it: the fold models' mean alone
# an attempt whose first cut is projected to end past this many times its deadline stops early:
# folds vary, and past the deadline the cell's own timeout (1/0.9 of it) kills it with nothing kept
TOO_SLOW = 1.0


class Clock:
    """The harness's clock, which its deadlines and measured fit times read: the wall clock, plus
    the seconds code in the kernel declared spent (`spend`). Nothing in a run spends; a test's
    model gives its fit a known cost with it, so what the harness decides about time (too slow
    for the deadline, a cut ending past it, no time for the fit on all rows) does not hang on
    how busy the machine is."""

    def __init__(self) -> None:
        self.spent_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.spent_s

    def spend(self, seconds: float) -> None:
        with _SPENDING:
            self.spent_s += seconds


# folds fitted side by side spend from their threads; the lock is not the clock's own, as a fold's
# model that names the clock is saved (pickled) with it
_SPENDING = threading.Lock()
clock = Clock()


def to_dense_float(X: Any) -> np.ndarray | None:
    """A numeric float view of a transform's output, or None when it is not numeric."""
    if hasattr(X, "toarray"):  # scipy sparse: check values only
        return np.asarray(X.data, dtype=float)
    if isinstance(X, pd.DataFrame):
        numeric = X.select_dtypes(include=["number", "bool"])
        return numeric.to_numpy(dtype=float) if numeric.shape[1] == X.shape[1] else None
    arr = np.asarray(X)
    return arr.astype(float) if arr.dtype.kind in "biuf" else None


def features_source(features_mod: types.ModuleType) -> str:
    """The text of the features module and of the modules its Features inherits from (a recipe
    it extends): the params any of them names can change what encode computes."""
    files = [getattr(features_mod, "__file__", None)]
    for cls in features_mod.Features.__mro__[1:]:
        try:
            files.append(inspect.getsourcefile(cls))
        except TypeError:  # a built-in class (object)
            continue
    return "".join(Path(f).read_text() for f in dict.fromkeys(files) if f and Path(f).is_file())


def encode_source(features_cls: type) -> str:
    """The source of `encode` and of what decides its output: __init__ (it sets what encode reads)
    and every method either reaches through `self.` — inherited ones too, so a module that
    extends a recipe and changes one step encode calls gets its own cache."""
    seen, todo, parts = set(), ["encode", "__init__"], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source = inspect.getsource(getattr(features_cls, name))
        except (AttributeError, TypeError, OSError):  # an attribute, not a method
            continue
        parts.append(source)
        todo += re.findall(r"\bself\.(\w+)", source)
    return "".join(parts)


def attempt_device() -> str:
    """Where the attempt computed: `cuda:<name>` when it put tensors on a GPU, else `cpu`."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.max_memory_allocated() > 0 else "cpu"


def reset_device_peak() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


class _StepClock:
    """The attempt's modules with their steps timed: Features.fit and the transform that follows it
    (the training rows), Model.fit, and the other transforms with Model.predict (predicting)."""

    def __init__(self, features_mod: types.ModuleType, model_mod: types.ModuleType):
        self.features_s = self.model_s = self.predict_s = 0.0
        clock = self

        class Features(features_mod.Features):
            def fit(self, *args, **kwargs):
                started = time.time()
                out = super().fit(*args, **kwargs)
                clock.features_s += time.time() - started
                self._iml_fitted_rows = True
                return out

            def transform(self, *args, **kwargs):
                started = time.time()
                out = super().transform(*args, **kwargs)
                training, self._iml_fitted_rows = getattr(self, "_iml_fitted_rows", False), False
                if training:
                    clock.features_s += time.time() - started
                else:
                    clock.predict_s += time.time() - started
                return out

        class Model(model_mod.Model):
            def fit(self, *args, **kwargs):
                started = time.time()
                out = super().fit(*args, **kwargs)
                clock.model_s += time.time() - started
                return out

            def predict(self, *args, **kwargs):
                started = time.time()
                out = super().predict(*args, **kwargs)
                clock.predict_s += time.time() - started
                return out

        self.features_mod = types.SimpleNamespace(**{**vars(features_mod), "Features": Features})
        self.model_mod = types.SimpleNamespace(**{**vars(model_mod), "Model": Model})


def model_full_fit_params(fitted: list[tuple[Any, Any]]) -> list[dict[str, Any]] | None:
    """Each unit's `Model.full_fit_params()`: what a fit without a validation part needs beyond
    the attempt's params (the rounds early stopping chose). None when a Model does not say: a
    model that needs a validation part cannot be fitted without one."""
    out = []
    for _, model in fitted:
        if isinstance(model, ConstantUnit):
            continue
        method = getattr(model, "full_fit_params", None)
        if method is None:
            return None
        given = method()
        if not isinstance(given, dict):
            raise ContractError(f"model.py: Model.full_fit_params returned {type(given).__name__}, expected a dict")
        out.append(given)
    return out


def mean_params(per_fit: list[dict[str, Any]]) -> dict[str, Any]:
    """One params dict from the fold fits': numbers averaged (integers rounded), others the first fit's."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for d in per_fit for k in d):
        values = [d[key] for d in per_fit if key in d]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and all(isinstance(v, int) for v in values):
            merged[key] = int(round(float(np.mean(values))))
        elif numeric:
            merged[key] = float(np.mean(values))
        else:
            merged[key] = values[0]
    return merged


def resolved_params(fitted: list[tuple[Any, Any]]) -> dict[str, Any]:
    """The settings the first fit's Features and Model used (recipes record them as `resolved`):
    what refine moves from, data-aware defaults included."""
    feats, model = fitted[0]
    out = {**(getattr(feats, "resolved", None) or {}), **(getattr(model, "resolved", None) or {})}
    return {k: v for k, v in out.items() if v is None or isinstance(v, (bool, int, float, str, list))}


def clearly_worse(metric, fold_scores: list[float], prune: dict[str, Any]) -> bool:
    """Whether the folds so far put an attempt below the best on each, by more than the margin."""
    k = len(fold_scores)
    best = list(prune.get("best") or [])
    if k < int(prune.get("after", 2)) or len(best) < k:
        return False
    gains = [metric.gain(a, b) for a, b in zip(fold_scores, best[:k])]
    if not all(np.isfinite(gains)):
        return False
    return max(gains) < 0 and -float(np.mean(gains)) > float(prune.get("margin", 0.0))


class Harness:
    """The data and the folds are loaded at construction when the run has its blueprint; a kernel
    started before it (the blueprint's measuring fit, `measure`) loads them at its first attempt."""

    def __init__(self, run_dir: str | Path):
        run_dir = Path(run_dir)
        self.run_dir = run_dir
        self.task: dict[str, Any] = json.loads((run_dir / "task.json").read_text())
        self.profile: dict[str, Any] = json.loads((run_dir / "profile.json").read_text())
        self.metric = get_metric(self.task["metric"])
        self._encoded: dict[str, pd.DataFrame] = {}
        self.loaded = False
        if (run_dir / "blueprint.json").exists():
            self.load()

    def load(self) -> None:
        """The rows the blueprint plans (all of them, or a large table's sample from its columnar
        cache, runtime/columnar.py), their folds, the test rows."""
        blueprint = json.loads((self.run_dir / "blueprint.json").read_text())
        self.scheme: dict[str, Any] = blueprint["validation"]
        train, test = plan_frames(self.task, self.run_dir, blueprint.get("data"))
        id_col = self.task["id_column"]
        features = feature_columns(self.task, train.columns)
        self.X = train[features]
        self.X_test = test[features]
        self.test_ids = test[id_col].to_numpy() if id_col and id_col in test.columns else np.arange(len(test))
        self.y = encode_target(train, self.task)
        self.fold_sets = make_fold_sets(self.scheme, self.y, train, self.task["task_type"])
        # what another number of cuts needs of the rows (a group or time scheme's column): a bag's folds
        self._fold_frame = train[[c for c in (self.scheme.get("group_column"), self.scheme.get("time_column")) if c]]
        self._cut_sets: dict[int, np.ndarray] = {int(self.scheme.get("repeats", 1)): self.fold_sets}
        self.folds = self.fold_sets[0]  # the first repeat's: what the ensemble's fold-by-fold checks split by
        self.n_folds = int(self.folds.max()) + 1
        self.n_fits = len(self.fold_sets) * self.n_folds
        self.loaded = True
        # The ensemble and the report read these on the host, without a kernel.
        np.save(self.run_dir / "y.npy", self.y)
        np.save(self.run_dir / "folds.npy", self.folds)

    def _ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    def _cuts_note(self, fold_sets: np.ndarray) -> str:
        return f" ({len(fold_sets)} cuts of {self.n_folds})" if len(fold_sets) > 1 else ""

    def fold_sets_for(self, params: dict[str, Any]) -> np.ndarray:
        """The cuts of the folds an attempt fits: the run's, or a bag's own number of them
        (`params["cuts"]`), whose first cuts are the run's (a group or time scheme has one cut)."""
        repeats = int(attempt_scheme(self.scheme, params).get("repeats", 1))
        if repeats not in self._cut_sets:
            self._cut_sets[repeats] = make_fold_sets({**self.scheme, "repeats": repeats}, self.y, self._fold_frame,
                                                     self.task["task_type"])
        return self._cut_sets[repeats]

    @property
    def n_classes(self) -> int:
        return len(self.task["classes"]) if self.task["task_type"] != "regression" else 0

    # -- attempts -------------------------------------------------------------------------

    def run_attempt(self, attempt_dir: str | Path, params: dict[str, Any], deadline_s: float | None = None,
                    prune: dict[str, Any] | None = None, continues: str | None = None) -> dict:
        """Cross-validate one attempt's modules; write result.json, oof.npy, test.npy.

        `prune` (refine's candidates): {"after": k, "best": the current best's fold scores,
        "margin": m}. From fold k on, an attempt worse than the best on every fold so far, by
        more than m on average, stops there: result.json says "pruned" with its fold scores.

        `continues` (a bag): the folder of the attempt it bags, whose cuts are the bag's first
        ones (the same modules, params, folds and seeds): their predictions, scores and fitted
        models are taken over, and only the further cuts are fitted."""
        self._ensure_loaded()
        try:
            return self._run_attempt(Path(attempt_dir), params, deadline_s, prune, continues)
        finally:
            release_memory()

    def _continued(self, source: Path, attempt_dir: Path, fold_sets: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, list[float]]:
        """What a bag takes over from the attempt it bags: (cuts, the sum of their out-of-fold
        predictions, of their fold models' test predictions, their fold scores); no cut when that
        attempt's cuts are not the bag's first ones, or its predictions or models are missing."""
        nothing = (0, empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(self.X_test)), [])
        try:
            done = json.loads((source / "result.json").read_text())
            oof = np.load(source / "oof.npy")
            # its fold models' mean, before any fit on all rows was mixed in
            test = np.load(source / (FOLDS_TEST if (source / FOLDS_TEST).exists() else "test.npy"))
        except (OSError, ValueError):
            return nothing
        cuts = int(done.get("cuts") or 0)
        mixed = "seconds" in (done.get("full_fit") or {}) and not (source / FOLDS_TEST).exists()
        if done.get("status") != "ok" or not 0 < cuts < len(fold_sets) or mixed or len(done["fold_scores"]) != cuts * self.n_folds:
            return nothing
        if not take_folds(source, attempt_dir, range(cuts * self.n_folds)):
            return nothing
        return cuts, oof * cuts, test * cuts, list(done["fold_scores"])

    def _run_attempt(self, attempt_dir: Path, params: dict[str, Any], deadline_s: float | None,
                     prune: dict[str, Any] | None, continues: str | None = None) -> dict:
        started = clock()
        reset_device_peak()
        features_mod = load_module("features", attempt_dir / "features.py")
        model_mod = load_module("model", attempt_dir / "model.py")
        X, X_test = self._with_encoding(features_mod, params)
        fold_sets = self.fold_sets_for(params)
        n_fits = len(fold_sets) * self.n_folds
        # a bag's test predictions are its many fold models' mean: no fit on all rows beside them
        refit = bool(self.scheme.get("refit")) and not params.get("cuts")
        folds_started = clock()
        # each cut predicts every row once; a cut counts when all its folds are done
        oof, test_pred = empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(X_test))
        cut_oof, cut_test = empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(X_test))
        cuts = 0
        fold_scores: list[float] = []
        if continues:
            cuts, oof, test_pred, fold_scores = self._continued(Path(continues), attempt_dir, fold_sets)
        taken = cuts  # the cuts taken over: fits numbered from cuts * n_folds on
        unsaved: str | None = None
        resolved: dict[str, Any] = {}
        full_fit_params: list[dict[str, Any]] | None = [] if refit else None
        full_fit_failed = ""
        at_once = min(folds_at_once(model_mod, self.task, self.profile, params, len(X) * (self.n_folds - 1) // self.n_folds),
                      n_fits)
        fits_done = 0  # fitted here (a bag's cuts taken over are not)
        for j, va, fitted, pred_va, pred_test in fold_fits(features_mod, model_mod, self.task, self.profile, params, X,
                                                           self.y, X_test, fold_sets[taken:], at_once, first_cut=taken):
            fits_done += 1
            j += taken * self.n_folds
            completes_cut = (j + 1) % self.n_folds == 0  # past the deadline, a cut this fold completes still counts
            if deadline_s is not None and clock() - started > deadline_s and j > 0 and not completes_cut:
                if cuts:  # the cuts done are a whole out-of-fold prediction: score those, drop the rest
                    drop_folds(attempt_dir, range(cuts * self.n_folds, j))
                    fold_scores = fold_scores[:cuts * self.n_folds]
                    break
                return self._too_slow(attempt_dir, started, folds_started, j + 1, deadline_s, resolved, at_once, n_fits)
            if deadline_s is not None and not cuts and j + 1 < self.n_folds:
                # The first cut's end, projected from its folds so far: an attempt that cannot
                # finish it stops now, and its measured speed lets debug plan a retry that fits.
                # folds fitted side by side: those running beside this one are about as far along
                per_fit = (clock() - folds_started) / min(j + at_once, n_fits)
                if folds_started - started + per_fit * self.n_folds > TOO_SLOW * deadline_s:
                    return self._too_slow(attempt_dir, started, folds_started, j + 1, deadline_s, resolved or resolved_params(fitted),
                                          at_once, n_fits)
            resolved = resolved or resolved_params(fitted)
            cut_oof[va] = pred_va
            cut_test += pred_test / self.n_folds
            fold_scores.append(float(self.metric.score(self.y[va], pred_va)))
            unsaved = unsaved or save_fold(attempt_dir, j, fitted)
            if full_fit_params is not None and not full_fit_failed:
                try:
                    given = model_full_fit_params(fitted)
                except Exception as e:  # noqa: BLE001 - the folds stand without a fit on all rows
                    full_fit_failed = f"the fit on all rows failed: full_fit_params: {type(e).__name__}: {e}"[:300]
                else:
                    full_fit_params = None if given is None else full_fit_params + given
            if prune and j + 1 < n_fits and clearly_worse(self.metric, fold_scores, prune):
                result = {"status": "pruned", "fold_scores": fold_scores, "metric": self.metric.name,
                          "duration_s": round(clock() - started, 3), "resolved_params": resolved,
                          "error": f"pruned after {j + 1} of {n_fits} folds{self._cuts_note(fold_sets)}: worse than the best on each"}
                (attempt_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
                return result
            if (j + 1) % self.n_folds == 0:
                oof, test_pred, cuts = oof + cut_oof, test_pred + cut_test, cuts + 1
                cut_oof, cut_test = empty_prediction(self.task, len(self.y)), empty_prediction(self.task, len(X_test))
        fitted = None  # the last fold's models: not alive beside the fit on all rows
        fold_wall_s = (clock() - folds_started) / max(1, fits_done)
        oof, test_pred = oof / cuts, test_pred / cuts
        score = float(self.metric.score(self.y, oof))
        full_fit = None
        if refit:
            full_fit = ({"skipped": full_fit_failed} if full_fit_failed
                        else self._full_fit_plan(full_fit_params, score, fold_scores, started, deadline_s, prune))
            if "params" in full_fit:
                fit_started = clock()
                try:
                    fitted, (full_test,) = fit_fold(features_mod, model_mod, self.task, self.profile,
                                                    {**params, **full_fit["params"]}, X, self.y, None, None, [X_test])
                except Exception as e:  # noqa: BLE001 - the folds' predictions stand without it
                    full_fit = {"skipped": f"the fit on all rows failed: {type(e).__name__}: {e}"[:300]}
                else:
                    np.save(attempt_dir / FOLDS_TEST, test_pred)  # what a bag of this attempt continues from
                    test_pred = with_full_fit(test_pred, full_test)
                    full_fit["seconds"] = round(clock() - fit_started, 3)
                    unsaved = unsaved or save_full(attempt_dir, fitted)
        np.save(attempt_dir / "oof.npy", oof)
        np.save(attempt_dir / "test.npy", test_pred)
        result = {
            "status": "ok",
            "score": score,
            "fold_scores": fold_scores,
            "cuts": cuts,
            "metric": self.metric.name,
            "duration_s": round(clock() - started, 3),
            "fit_seconds": round(fold_wall_s, 3),  # one fold's wall seconds (folds side by side: less than a fit's)
            "device": attempt_device(),
            "models_saved": unsaved is None,
            "resolved_params": resolved,
            **({"full_fit": full_fit} if full_fit is not None else {}),
            **({"models_not_saved": unsaved} if unsaved else {}),
        }
        (attempt_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def _too_slow(self, attempt_dir: Path, started: float, folds_started: float, fits: int, deadline_s: float,
                  resolved: dict[str, Any], at_once: int = 1, n_fits: int | None = None) -> dict:
        """The result of an attempt stopped before its first cut could end: status "timeout",
        with `fit_seconds`, what one fit took here (folds side by side: the wall time per fold)."""
        drop_folds(attempt_dir, range(fits))
        per_fit = (clock() - folds_started) / min(fits + at_once - 1, n_fits or self.n_fits)
        needs = folds_started - started + per_fit * self.n_folds
        result = {"status": "timeout", "fold_scores": [], "metric": self.metric.name,
                  "duration_s": round(clock() - started, 3), "resolved_params": resolved,
                  "fit_seconds": round(per_fit, 3),
                  "error": (f"too slow for its time: {fits} of {self.n_folds} folds took {clock() - folds_started:.1f} s, so the "
                            f"first cut needs ~{needs:.1f} s and the attempt has {deadline_s:.1f} s; stopped there")}
        (attempt_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def _full_fit_plan(self, per_fit: list[dict[str, Any]] | None, score: float, fold_scores: list[float],
                       started: float, deadline_s: float | None, prune: dict[str, Any] | None) -> dict[str, Any]:
        """{"params": ...} for the fit on all rows, or {"skipped": why not}."""
        if per_fit is None:
            return {"skipped": "the Model defines no full_fit_params: it may need a validation part"}
        if prune:  # a refine candidate: only one that beats what it moved from is worth the fit
            best = prune.get("score")
            ours, theirs = (score, best) if best is not None else (float(np.mean(fold_scores)), float(np.mean(prune["best"])))
            if not self.metric.better(ours, theirs):
                return {"skipped": "a refine candidate no better than the attempt it moved from"}
        elapsed = clock() - started
        need = elapsed / max(1, len(fold_scores)) * full_fit_folds(self.n_folds)
        if deadline_s is not None and elapsed + need > deadline_s:
            return {"skipped": f"no time: it needs ~{need:.1f} s, {max(0.0, deadline_s - elapsed):.1f} s left of the attempt's"}
        return {"params": mean_params(per_fit)}

    def check_attempt(self, attempt_dir: str | Path, params: dict[str, Any], probe: dict[str, Any] | None = None) -> list[str]:
        """The dynamic interface check: run the modules on a small sample; list what breaks.

        probe: {"params": the attempt's own params (`params` may be the check's cheaper ones),
        "seconds": what timing may spend}: when the modules pass, the time of one fold's fit is
        predicted too (`_fit_timing`), for the framework to hold against the attempt's seconds.
        The list and the timing are written to check.json, which is what the framework reads.
        """
        started = time.perf_counter()
        self._ensure_loaded()
        attempt_dir = Path(attempt_dir)
        features_mod = load_module("features", attempt_dir / "features.py")
        model_mod = load_module("model", attempt_dir / "model.py")
        sample, encode_points = self._check_sample(features_mod, params)
        problems = self._sample_problems(features_mod, model_mod, params, sample)

        def report(timing: dict[str, Any] | None) -> None:
            # written before each timed fit too: a cell stopped in one still says the modules passed,
            # and since when that fit ran (runtime/budget.py `cut_short`)
            if timing is not None and "probing" in timing:
                timing["probing"]["since_s"] = round(time.perf_counter() - started, 3)
            (attempt_dir / "check.json").write_text(json.dumps({"problems": problems, "timing": timing}, indent=2))

        timing = None
        if probe is not None and not problems:
            try:
                timing = self._fit_timing(features_mod, model_mod, dict(probe["params"]), float(probe["seconds"]), sample,
                                          encode_points, report, int(probe.get("min_samples", 2)))
            except Exception as e:  # noqa: BLE001 - the modules passed; a sample they cannot fit predicts nothing
                timing = {"error": f"{type(e).__name__}: {e}"[:300]}
        report(timing)
        return problems

    def _check_sample(self, features_mod: types.ModuleType, params: dict[str, Any]) -> tuple[tuple, list | None]:
        """(X, y, X_test) of the check's sample, with Features.encode's columns; and (rows, seconds)
        of encoding a quarter of it and all of it, when encode had to run (nothing cached)."""
        rng = np.random.RandomState(0)
        n = min(SAMPLE_ROWS, len(self.y))
        idx = np.sort(rng.choice(len(self.y), n, replace=False))
        n_test = min(SAMPLE_ROWS // 3, len(self.X_test))
        encode_points = None
        if self._encode_key(features_mod, params) is not None and not self._encode_cached(features_mod, params):
            quarter = max(1, n // 4)
            started = time.perf_counter()
            self._with_encoding(features_mod, params, sample=(idx[:quarter], np.arange(min(n_test, quarter // 3))))
            encode_points = [(quarter + min(n_test, quarter // 3), time.perf_counter() - started)]
        started = time.perf_counter()
        X_all, X_test_all = self._with_encoding(features_mod, params, sample=(idx, np.arange(n_test)))
        if encode_points is not None:
            encode_points.append((n + n_test, time.perf_counter() - started))
        return (X_all.reset_index(drop=True), self.y[idx], X_test_all.reset_index(drop=True)), encode_points

    def _sample_problems(self, features_mod: types.ModuleType, model_mod: types.ModuleType, params: dict[str, Any],
                         sample: tuple) -> list[str]:
        problems: list[str] = []
        X, y, X_test = sample
        n, n_test = len(X), len(X_test)
        cut = int(n * 0.75)
        unit, j = unit_tasks(self.task, model_mod)[0]  # the features' checks on the first target's fit
        profile, (X, X_test) = repaired(self.profile, params, [X, X_test])
        feats = features_mod.Features(unit, profile, dict(params))
        feats.fit(X.iloc[:cut], y[:cut] if j is None else y[:cut, j])
        Ftr, Fva, Fte = (feats.transform(part) for part in (X.iloc[:cut], X.iloc[cut:], X_test))
        for label, out, rows in (("train", Ftr, cut), ("valid", Fva, n - cut), ("test", Fte, n_test)):
            if out.shape[0] != rows:
                problems.append(f"features.py: Features.transform returned {out.shape[0]} rows for {rows} {label} rows; it must keep the row count and order")
        if isinstance(Ftr, pd.DataFrame) and isinstance(Fte, pd.DataFrame) and list(Ftr.columns) != list(Fte.columns):
            problems.append("features.py: Features.transform gives different columns for train and test; fit must fix the column set")
        elif Ftr.shape[1] != Fte.shape[1]:
            problems.append(f"features.py: Features.transform gives {Ftr.shape[1]} columns for train and {Fte.shape[1]} for test")
        dense = to_dense_float(Ftr)
        if dense is not None and not np.isfinite(dense[~np.isnan(dense)]).all():
            problems.append("features.py: Features.transform output contains inf values")
        if problems:
            return problems
        X, X_test = sample[0], sample[2]
        preds = []
        for _ in range(2):  # twice: a fixed seed must give the same predictions
            try:
                _, (_, pred_test) = fit_fold(features_mod, model_mod, self.task, self.profile, params, X.iloc[:cut], y[:cut],
                                             X.iloc[cut:], y[cut:], [X_test])
            except ContractError as e:
                return [str(e)]
            preds.append(pred_test)
        if not np.allclose(preds[0], preds[1], rtol=1e-4, atol=1e-6, equal_nan=True):
            problems.append("model.py: Model is not deterministic: two fits with the same params gave different predictions; fix the random seed")
        return problems

    def _fit_timing(self, features_mod: types.ModuleType, model_mod: types.ModuleType, params: dict[str, Any],
                    seconds: float, sample: tuple, encode_points: list | None,
                    report: Callable[[dict[str, Any]], None] = lambda timing: None, min_samples: int = 2) -> dict[str, Any]:
        """The seconds one fold's fit takes at the first cut's size, predicted from the same fit
        timed on samples (runtime/fit_time.py: how, and how far to trust it), and the seconds
        Features.encode will take on all rows before the folds (0 when it is cached).

        Each sample keeps a fold's proportions: m training rows, m / (k - 1) held out, and the
        test rows in the share a fold predicts, so what grows with the predicted rows (a
        neighbours model) grows here too. Rows come from the whole table; when encode has yet to
        run on it, they are drawn from the check's encoded sample instead (with replacement):
        timing a fit must not cost the encoding it would save."""
        rows = len(self.y) * (self.n_folds - 1) // self.n_folds
        limit = params.get("max_train_rows")
        target = min(rows, int(limit)) if limit else rows
        if self._encode_key(features_mod, params) is None or self._encode_cached(features_mod, params):
            (X_pool, X_test_pool), y_pool = self._with_encoding(features_mod, params), self.y
        else:
            X_pool, y_pool, X_test_pool = sample
        rng = np.random.default_rng(int(params.get("seed", 0) or 0))  # draws m of n rows in O(m), whatever n
        at_once = min(folds_at_once(model_mod, self.task, self.profile, params, target), self.n_fits)
        setup_s = extrapolate(encode_points, len(self.y) + len(self.X_test))[0] if encode_points is not None else 0.0
        points: list[tuple[int, float]] = []
        spent, m, fitted = 0.0, min(PROBE_START_ROWS, target), None
        while True:
            report({"train_rows": target, "points": [[r, round(t, 4)] for r, t in points], "at_once": at_once,
                    "setup_s": round(setup_s, 3), "probing": {"rows": m}})
            n_va = max(1, round(m / max(1, self.n_folds - 1)))
            n_te = min(len(self.X_test), max(1, round(m * len(self.X_test) / max(1, rows)))) if len(self.X_test) else 0
            both = rng.choice(len(y_pool), m + n_va, replace=m + n_va > len(y_pool))
            tr, va = both[:m], both[m:]
            te = rng.choice(len(X_test_pool), n_te, replace=n_te > len(X_test_pool)) if n_te else np.arange(0)
            took: list[float] = []
            while not took or (took[0] < PROBE_REPEAT_S and len(took) < 2 and m < target):
                started = clock()  # the wall clock, plus what a test declares a fit costs
                fitted, _ = fit_fold(features_mod, model_mod, self.task, self.profile, params, X_pool.iloc[tr], y_pool[tr],
                                     X_pool.iloc[va], y_pool[va], [X_test_pool.iloc[te]])
                took.append(clock() - started)
            spent += sum(took)
            points.append((m, min(took)))
            settled = predict(points, target).kind != "at least"  # measured, or extrapolated on evidence
            # the next sample, twice the rows, costs 2^exponent this one (as the samples so far grow):
            # only while the seconds allow, and up to `min_samples` whenever the last left any
            nxt = points[-1][1] * 2 ** (fit_curve(points).exponent if len(points) >= 3 else 1.0)
            if m >= target or settled or (spent + nxt > seconds and (len(points) >= min_samples or spent >= seconds)):
                break
            m = min(target, 2 * m)
        prediction = predict(points, target)
        fit_s, curve = prediction.seconds, prediction.curve
        # a cap on training the model read (its resolved settings hold it), per fit of each target column
        cap = resolved_params(fitted).get("max_seconds") if fitted else None
        cap_s = (TIME_CAP_SLACK * cap * len(unit_tasks(self.task, model_mod))
                 if isinstance(cap, (int, float)) and not isinstance(cap, bool) else None)
        capped = cap_s is not None and fit_s > curve.fixed_s + cap_s
        if capped:
            fit_s = curve.fixed_s + cap_s
        return {"train_rows": target, "points": [[m, round(t, 4)] for m, t in points], "fit_s": round(fit_s, 3),
                "fixed_s": round(curve.fixed_s, 4), "per_row_s": curve.per_row_s, "exponent": curve.exponent,
                "kind": prediction.kind, "time_cap_s": cap if capped else None, "at_once": at_once,
                "setup_s": round(setup_s, 3), "encode_points": encode_points, "probe_s": round(spent, 3)}

    # -- the blueprint's measuring fit ----------------------------------------------------

    def measure(self, attempt_dir: str | Path, params: dict[str, Any], sizes: list[int], valid_rows: int,
                seed: int = 0) -> dict:
        """Fit the attempt's modules on seeded samples of `sizes` training rows of the run's
        columnar cache, each validated on the same `valid_rows` other rows (early stopping, as a
        fold's fit): the seconds of Features.fit with the training rows' transform, of Model.fit, and
        of transforming and predicting the valid rows; the rounds kept; the kernel's memory at each
        fit's peak.
        What the blueprint extrapolates a large table's plan from (runtime/costs.py); measure.json."""
        attempt_dir = Path(attempt_dir)
        started = time.time()
        # a node that does not share the run folder (a Ray actor's mirror) builds its own cache, once
        manifest = cached_manifest(self.run_dir) or build_cache(self.task, self.run_dir)
        positions = sample_positions(labelled_positions(self.run_dir, self.task, manifest), max(sizes) + valid_rows, seed)
        frame = read_cached(self.run_dir, list(manifest["columns"]), positions, manifest)
        order = np.random.RandomState(seed).permutation(len(frame))
        valid, rest = order[:valid_rows], order[valid_rows:]
        X = frame[feature_columns(self.task, frame.columns)]
        y = encode_target(frame, self.task)
        sample_mb = float(X.memory_usage(deep=True).sum() + y.nbytes) / 2 ** 20
        del frame
        features_mod = load_module("features", attempt_dir / "features.py")
        model_mod = load_module("model", attempt_dir / "model.py")
        X_va = X.iloc[valid].reset_index(drop=True)
        out: dict[str, Any] = {"rows": [], "features_s": [], "fit_s": [], "trees": [], "predict_s": [], "peak_mb": [],
                               "valid_rows": len(valid), "sample_mb": round(sample_mb, 1)}
        release_memory()
        out["base_mb"] = round(rss_mb(), 1)
        for size in sizes:
            tr = np.sort(rest[:size])
            steps = _StepClock(features_mod, model_mod)
            with PeakMemory() as peak:
                fitted, _ = fit_fold(steps.features_mod, steps.model_mod, self.task, self.profile, params, X.iloc[tr], y[tr],
                                     X_va, y[valid], [])
            kept = model_full_fit_params(fitted) or [{}]
            out["rows"].append(int(len(tr)))
            out["features_s"].append(round(steps.features_s, 3))
            out["fit_s"].append(round(steps.model_s, 3))
            out["predict_s"].append(round(steps.predict_s, 3))
            out["trees"].append(int(kept[0].get("n_estimators") or 0))
            out["peak_mb"].append(round(peak.mb, 1))
            fitted = None
            release_memory()
        out["seconds"] = round(time.time() - started, 2)
        (attempt_dir / "measure.json").write_text(json.dumps(out, indent=2))
        return out

    # -- internals ------------------------------------------------------------------------

    def _encode_key(self, features_mod: types.ModuleType, params: dict) -> str | None:
        """What Features.encode's output is cached by, or None when the module has no encode.

        Keyed by the params the features module can read (its source names them), so a
        model-only change (refine moving the head's C) reuses the embeddings."""
        if getattr(features_mod.Features, "encode", None) is None:
            return None
        source = features_source(features_mod)
        used = {k: v for k, v in params.items() if not source or f'"{k}"' in source or f"'{k}'" in source
                or k in REPAIR_PARAMS}
        return hashlib.sha1((encode_source(features_mod.Features) + json.dumps(used, sort_keys=True, default=str)).encode()).hexdigest()[:16]

    def _encode_cached(self, features_mod: types.ModuleType, params: dict) -> bool:
        key = self._encode_key(features_mod, params)
        return key is not None and (key in self._encoded or (self.run_dir / "cache" / f"encode_{key}.npy").exists())

    def _with_encoding(self, features_mod: types.ModuleType, params: dict, sample: tuple | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Raw columns plus the cached output of `Features.encode`, when the module has one.

        encode is row-wise and label-free, so it runs once on train + test and is cached by
        the source of the encode method and its params, across folds and attempts.
        """
        X, X_test = self.X, self.X_test
        if sample is not None:
            X, X_test = X.iloc[sample[0]], X_test.iloc[sample[1]]
        key = self._encode_key(features_mod, params)
        if key is None:
            return X, X_test
        if sample is not None and not self._encode_cached(features_mod, params):
            # The check needs only its sample: encode those rows (minutes less on long texts), cache nothing.
            rows = pd.concat([X, X_test], ignore_index=True)
            return join_encoded(X, X_test, encode_rows(features_mod, self.task, self.profile, params, rows))
        if key not in self._encoded:
            cache = self.run_dir / "cache" / f"encode_{key}.npy"
            if cache.exists():
                enc = np.load(cache)
            else:
                both = pd.concat([self.X, self.X_test], ignore_index=True)
                enc = encode_rows(features_mod, self.task, self.profile, params, both).to_numpy()
                cache.parent.mkdir(exist_ok=True)
                np.save(cache, enc)
            self._encoded[key] = pd.DataFrame(enc, columns=[f"enc_{i}" for i in range(enc.shape[1])])
        full, full_test = join_encoded(self.X, self.X_test, self._encoded[key])
        return full.loc[X.index], full_test.loc[X_test.index]

