"""The fit on all rows: the blueprint plans it (unless the settings say not), the harness fits each
attempt once more on every training row with what its fold fits chose (the rounds early stopping
kept), and the test predictions are half that fit's, half the folds' mean. A model that cannot
say how to fit without a validation part, a failing one and a refine candidate that lost keep the
folds' mean, with the reason in result.json; so does an attempt whose time would not cover the fit."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from langgraph.runtime import Runtime

from graph.context import RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.profile import profile
from prompts import render_recipe
from runtime.harness import Harness
from runtime.saved_models import FULL_MODEL, MODELS_DIR


def _planned(root, n_folds: int, refit: bool = True):
    from conftest import tabular_frame, write_task

    frame = tabular_frame(300, seed=3)
    frame["outcome"] = frame.signal * 10 + 50
    frame = frame.drop(columns="signal")
    task_dir = write_task(root / "task", frame.iloc[:240], frame.iloc[240:].drop(columns="outcome"), None,
                          "Predict the outcome. Scored by root mean squared error.")
    run_dir = root / "run"
    run_dir.mkdir()
    ctx = RunContext(settings=Settings(time_budget_s=60, n_folds=n_folds, refit=refit))
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
    for node in (analyze, profile, blueprint):
        state.update(node(state, Runtime(context=ctx)))
    ctx.close()
    return run_dir, state["blueprint"]


@pytest.fixture(scope="module")
def refit_run(tmp_path_factory):
    return _planned(tmp_path_factory.mktemp("refit"), 3)


def _attempt(run_dir, name: str, recipe: str = "traditional", model: str | None = None):
    folder = run_dir / name
    folder.mkdir()
    code = render_recipe(recipe)
    (folder / "features.py").write_text(code["features"])
    (folder / "model.py").write_text(model if model is not None else code["model"])
    return folder


def _predict(path, X_test) -> np.ndarray:
    (feats, model), = pickle.loads(path.read_bytes())
    return model.predict(feats.transform(X_test.reset_index(drop=True)))


def test_the_plan_refits_unless_the_settings_say_not(refit_run, tmp_path):
    run_dir, plan = refit_run
    assert plan.validation.refit and any("fitted once more on all rows" in n for n in plan.notes)
    off_dir, off = _planned(tmp_path, 3, refit=False)
    assert not off.validation.refit and not any("fitted once more" in n for n in off.notes)
    folder = _attempt(off_dir, "lgbm")
    result = Harness(off_dir).run_attempt(folder, {})
    assert "full_fit" not in result and not (folder / MODELS_DIR / FULL_MODEL).exists()


def test_lightgbm_is_fitted_on_all_rows_with_the_rounds_its_folds_chose(refit_run):
    run_dir, _ = refit_run
    h = Harness(run_dir)
    folder = _attempt(run_dir, "lgbm")
    result = h.run_attempt(folder, {})
    assert result["status"] == "ok"
    models = folder / MODELS_DIR
    folds = [pickle.loads((models / f"fold_{k}.pkl").read_bytes())[0][1] for k in range(h.n_fits)]
    rounds = [m.model.best_iteration_ for m in folds]
    assert result["full_fit"]["params"] == {"n_estimators": int(round(np.mean(rounds)))}
    assert result["full_fit"]["seconds"] > 0
    full = pickle.loads((models / FULL_MODEL).read_bytes())[0][1]
    assert full.model.n_estimators == result["full_fit"]["params"]["n_estimators"]
    folds_mean = sum(_predict(models / f"fold_{k}.pkl", h.X_test) for k in range(h.n_fits)) / h.n_fits
    full_pred = _predict(models / FULL_MODEL, h.X_test)
    assert not np.allclose(full_pred, folds_mean)  # the fit on all rows is another model
    np.testing.assert_allclose(np.load(folder / "test.npy"), (folds_mean + full_pred) / 2, rtol=1e-9)


def test_what_does_not_refit_keeps_the_folds_mean_and_says_why(refit_run):
    run_dir, _ = refit_run
    h = Harness(run_dir)
    plain = render_recipe("fallback")["model"]
    # the recipe inherits full_fit_params (runtime.recipe_steps.EstimatorModel): these override it
    silent = plain + "\n\nModel.full_fit_params = None  # says nothing about a fit without a validation part\n"
    failing = plain + "\n\ndef _no(self):\n    raise RuntimeError('no')\n\n\nModel.full_fit_params = _no\n"
    cases = {
        "silent": (silent, {}, "defines no full_fit_params"),
        "failing": (failing, {}, "failed: full_fit_params: RuntimeError: no"),
        "lost": (plain, {"prune": {"after": 99, "best": [1e-9] * h.n_folds, "score": 1e-9}}, "no better than the attempt"),
    }
    for name, (model, kwargs, why) in cases.items():
        folder = _attempt(run_dir, name, "fallback", model)
        result = h.run_attempt(folder, {}, **kwargs)
        assert result["status"] == "ok", name
        assert why in result["full_fit"]["skipped"], (name, result["full_fit"])
        assert not (folder / MODELS_DIR / FULL_MODEL).exists()
        kept = sorted((folder / MODELS_DIR).glob("fold_*.pkl"))
        assert len(kept) == result["cuts"] * h.n_folds
        folds_mean = sum(_predict(path, h.X_test) for path in kept) / len(kept)
        np.testing.assert_allclose(np.load(folder / "test.npy"), folds_mean, rtol=1e-9)
    # the same model that says {} is refitted, with nothing added to its params
    folder = _attempt(run_dir, "plain", "fallback", plain)
    assert h.run_attempt(folder, {})["full_fit"]["params"] == {}
    assert (folder / MODELS_DIR / FULL_MODEL).exists()
    assert json.loads((folder / "result.json").read_text())["full_fit"]["params"] == {}


def test_an_attempt_whose_time_would_not_cover_the_fit_skips_it(refit_run, monkeypatch):
    """About a fold's fit times k / (k - 1) must fit in what the attempt's deadline leaves: decided
    from the attempt's own elapsed time on the harness's clock, which stands still here, so the
    machine's load cannot move it."""
    from runtime import harness

    h = Harness(refit_run[0])
    k = h.n_folds
    monkeypatch.setattr(harness, "clock", lambda: 1000.0)
    started = 1000.0 - 3.0  # three fits of 1 s each
    late = h._full_fit_plan([{"n_estimators": 10}], 1.0, [1.0] * 3, started, deadline_s=3.0 + 0.9 * k / (k - 1), prune=None)
    assert "no time" in late["skipped"]
    on_time = h._full_fit_plan([{"n_estimators": 10}], 1.0, [1.0] * 3, started, deadline_s=3.0 + 1.5 * k / (k - 1), prune=None)
    assert on_time == {"params": {"n_estimators": 10}}
    assert h._full_fit_plan([{}], 1.0, [1.0] * 3, started, deadline_s=None, prune=None) == {"params": {}}
