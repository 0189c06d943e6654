"""The three tracks' recipes through the real harness (in-process), on tiny generated tasks.

Each recipe, with empty params (its defaults must suit any data), must pass the static check,
the harness's dynamic check (shapes, ranges, determinism), and cross-validate to a score
clearly better than a constant prediction, for a binary, a multiclass and a regression task.
The tasks mix numeric, categorical (with missing values), high-cardinality, datetime (tz-aware,
mixed offsets and naive in one column) and short free-text columns, and all of them carry signal, so a recipe that ignores or mangles a
kind of column loses score.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from langgraph.runtime import Runtime
from machine_speed import UNCAPPED, scaled

from graph.context import RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.check import static_problems
from nodes.profile import profile
from prompts import RECIPES_DIR, render_recipe
from runtime.harness import Harness
from runtime.metrics import get_metric

RECIPES = ("traditional", "pretrained", "neural")
KINDS = ("binary", "multiclass", "regression")
N_ROWS = 150  # 120 train + 30 test; the pretrained encoder embeds ~150 short texts per task

GOOD = ["excellent", "wonderful", "delightful", "superb", "lovely"]
BAD = ["terrible", "awful", "dreadful", "horrible", "disappointing"]
THINGS = ["service", "meal", "product", "visit", "delivery"]


def mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    mood = rng.choice([-1, 1], size=n)
    frame = pd.DataFrame({
        "row_key": np.arange(n) + 5000,
        "alpha": rng.normal(size=n),
        "beta": np.where(rng.rand(n) < 0.15, np.nan, rng.uniform(0, 10, size=n)),
        "colour": rng.choice(["red", "green", "blue"], size=n),
        "grade": rng.choice(["a", "b", None], size=n),
        "city": [f"city_{i}" for i in rng.randint(0, 70, size=n)],  # > 50 levels
        "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.randint(0, 365, size=n), unit="D"),
        "note": [
            f"The {rng.choice(THINGS)} was {rng.choice(GOOD if m > 0 else BAD)} and the staff seemed "
            f"{rng.choice(GOOD if m > 0 else BAD)} today"
            for m in mood
        ],
    })
    # timestamps as exports write them: UTC with a Z, local with an offset, and naive, in one column
    # (pandas refuses mixed offsets unless told to read them as UTC)
    stamps = frame["day"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    frame["day"] = [s + ("Z" if i % 3 == 0 else "+02:00" if i % 3 == 1 else "") for i, s in enumerate(stamps)]
    frame["signal"] = (1.5 * frame.alpha + 1.2 * (frame.colour == "red") + 1.5 * mood
                       + rng.normal(scale=0.3, size=n))
    return frame


def task_frames(kind: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    frame = mixed_frame(N_ROWS)
    if kind == "binary":
        frame["outcome"] = np.where(frame.signal > frame.signal.median(), "yes", "no")
        description = "Predict the outcome. Submissions are evaluated on area under the ROC curve."
    elif kind == "multiclass":
        frame["outcome"] = pd.qcut(frame.signal, 3, labels=["low", "mid", "high"]).astype(str)
        description = "Predict the outcome class. The metric is multi-class log loss."
    else:
        frame["outcome"] = np.round(20 * np.exp(0.4 * frame.signal), 2)
        description = "Predict the outcome. Submissions are scored on root mean squared logarithmic error (RMSLE)."
    frame = frame.drop(columns="signal")
    cut = int(N_ROWS * 0.8)
    return frame.iloc[:cut], frame.iloc[cut:].drop(columns="outcome"), description


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory):
    """One analysed, profiled and planned run folder (3 folds) and its harness per task kind."""
    from conftest import write_task

    root = tmp_path_factory.mktemp("recipes")
    ctx = RunContext(settings=Settings(time_budget_s=300, n_folds=3))
    runtime = Runtime(context=ctx)
    out = {}
    for kind in KINDS:
        train, test, description = task_frames(kind)
        task_dir = write_task(root / kind / "task", train, test, None, description)
        run_dir = root / kind / "run"
        run_dir.mkdir(parents=True)
        state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
        for node in (analyze, profile, blueprint):
            state.update(node(state, runtime))
        out[kind] = Harness(run_dir)
    ctx.close()
    return out


def test_the_generated_tasks_have_every_kind_of_column(harnesses):
    h = harnesses["binary"]
    kinds = {c["name"]: c["kind"] for c in h.profile["columns"]}
    assert kinds["note"] == "text" and kinds["day"] == "datetime" and kinds["colour"] == "categorical"
    assert [c["cardinality"] for c in h.profile["columns"] if c["name"] == "city"][0] > 50
    assert {k: harnesses[k].task["metric"] for k in KINDS} == {"binary": "auc", "multiclass": "log_loss", "regression": "rmsle"}


def constant_score(h: Harness) -> float:
    """The score of predicting the training prior (or mean) for every row."""
    metric = get_metric(h.task["metric"])
    if h.task["task_type"] == "regression":
        return metric.score(h.y, np.full(len(h.y), np.expm1(np.log1p(h.y).mean())))
    prior = np.bincount(h.y, minlength=h.n_classes) / len(h.y)
    pred = np.tile(prior, (len(h.y), 1))
    return metric.score(h.y, pred[:, 1] if h.task["task_type"] == "binary" else pred)


# How much better than the constant prediction each metric must be: the signal is strong.
MARGIN = {"auc": lambda s, base: s >= 0.75,
          "log_loss": lambda s, base: s <= 0.8 * base,
          "rmsle": lambda s, base: s <= 0.8 * base}


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("kind", KINDS)
def test_recipe_checks_and_beats_a_constant(harnesses, tmp_path, recipe, kind):
    code = render_recipe(recipe)
    assert static_problems(code) == []
    folder = tmp_path / recipe
    folder.mkdir()
    for module, source in code.items():
        (folder / f"{module}.py").write_text(source)
    h = harnesses[kind]
    params = UNCAPPED if recipe == "neural" else {}  # the defaults, but for the time cap that reads the clock
    assert h.check_attempt(folder, params) == []
    result = h.run_attempt(folder, params)
    base = constant_score(h)
    score = result["score"]
    assert np.isfinite(score)
    assert MARGIN[h.task["metric"]](score, base), f"{recipe} on {kind}: {h.task['metric']} {score:.4f} vs constant {base:.4f}"
    oof, test = np.load(folder / "oof.npy"), np.load(folder / "test.npy")
    assert len(oof) == len(h.y) and len(test) == len(h.X_test)
    assert np.isfinite(test).all()


def test_pretrained_embeds_the_text_once_and_reuses_it(harnesses, tmp_path):
    """encode runs once per run (cached on disk), its columns are L2-normalised 384-d embeddings,
    and a second attempt with a model-only param change reuses the cache."""
    h = harnesses["binary"]
    folder = tmp_path / "pretrained"
    folder.mkdir()
    for module, source in render_recipe("pretrained").items():
        (folder / f"{module}.py").write_text(source)
    h.run_attempt(folder, {})
    every = sorted((h.run_dir / "cache").glob("encode_*.npy"))  # the other recipes' encodings too (no columns here)
    caches = [c for c in every if np.load(c).shape[1] > 0]
    assert len(caches) == 1
    enc = np.load(caches[0])
    assert enc.shape == (len(h.X) + len(h.X_test), 384)
    assert np.allclose(np.linalg.norm(enc, axis=1), 1.0, atol=1e-3)
    h.run_attempt(folder, {"C": 1.0})
    assert sorted((h.run_dir / "cache").glob("encode_*.npy")) == every


def test_neural_recipe_is_deterministic_and_honours_its_time_cap(harnesses, tmp_path):
    from runtime.fold_loop import load_module

    h = harnesses["multiclass"]
    model_mod = load_module("model", RECIPES_DIR / "neural" / "model.py")
    features_mod = load_module("features", RECIPES_DIR / "neural" / "features.py")
    feats = features_mod.Features(h.task, h.profile, {}).fit(h.X, h.y)
    X = feats.transform(h.X)
    assert any(c.startswith("cat__") for c in X.columns)  # categoricals go to embeddings
    # deterministic as long as the time cap does not cut training short: lifted here, so that a busy
    # machine's fewer epochs in the cap's seconds cannot tell the two fits apart
    preds = [model_mod.Model(h.task, UNCAPPED).fit(X, h.y).predict(X) for _ in range(2)]
    assert np.array_equal(preds[0], preds[1])
    assert np.allclose(preds[0].sum(axis=1), 1.0)
    import time

    limit = scaled(5)  # ~0.5 s of training on free cores, then the epoch under way
    started = time.time()
    model_mod.Model(h.task, {"max_seconds": 0.5, "patience": 10_000, "max_epochs": 100_000}).fit(X, h.y, X, h.y)
    assert time.time() - started < limit


def test_recipes_read_only_declared_params():
    """Each recipe reads its settings through runtime/params.py's declaration and names no
    param that is not declared there (the blueprint, refine and the prompts read the same)."""
    from prompts import member_recipes
    from runtime.params import SPACES

    for recipe in (*RECIPES, *(f"members/{m}" for m in sorted(member_recipes()))):
        name = recipe.split("/")[-1]
        if name == "fallback":
            continue
        space = SPACES[name]
        for module, source in render_recipe(recipe).items():
            assert "params.get(" not in source and 'params["' not in source, f"{recipe}/{module}.py reads params directly"
            for key in _settings_read(source):
                assert key in space, f"{recipe}/{module}.py reads {key!r}, which SPACES[{name!r}] does not declare"
        assert any(_settings_read(source) for source in render_recipe(recipe).values()), recipe


def _settings_read(source: str) -> list[str]:
    import re

    return re.findall(r"\b(?:r|p|resolved|self\.resolved|settings\(device\))\[\"(\w+)\"\]", source)


def test_traditional_target_encoding_is_out_of_fold_on_training_rows(harnesses):
    """On the rows fit saw, target encodings come from other rows; elsewhere from all of them."""
    from runtime.fold_loop import load_module

    h = harnesses["regression"]
    mod = load_module("features", RECIPES_DIR / "traditional" / "features.py")
    X = h.X.reset_index(drop=True)
    feats = mod.Features(h.task, h.profile, {}).fit(X, h.y)
    assert "city" in feats.high
    inside = feats.transform(X)["city_te0"].to_numpy()
    outside = feats.transform(X.copy().iloc[::-1].reset_index(drop=True))["city_te0"].to_numpy()[::-1]
    assert not np.allclose(inside, outside)  # the same rows, seen as new rows, use all labels
    # out of fold: a level's encoding on a training row does not include that row's own label
    own = X.groupby("city").size()
    single = X["city"].map(own) == 1
    if single.any():  # a level seen once has nothing else to learn from: the prior
        assert np.allclose(inside[single.to_numpy()], feats.prior[0])


def test_an_mae_task_is_fitted_with_an_absolute_loss():
    """A heavy-tailed target scored by MAE: the recipes' default objective (L1) beats squared error,
    whose mean chases the outliers."""
    from runtime.fold_loop import load_module

    rng = np.random.RandomState(0)
    n = 1200
    x = rng.normal(size=(n, 3))
    noise = rng.standard_t(1.2, size=n) * 3  # rare, huge errors
    y = 2 * x[:, 0] + np.sign(x[:, 1]) + noise
    X = pd.DataFrame(x, columns=["a", "b", "c"])
    task = {"task_type": "regression", "metric": "mae", "classes": [], "target": "y"}
    profile = {"n_train": n, "columns": [{"name": c, "kind": "numeric", "cardinality": n} for c in X.columns]}
    tr, va, te = slice(0, 800), slice(800, 1000), slice(1000, n)
    truth = 2 * x[te, 0] + np.sign(x[te, 1])  # the noise is symmetric: the clean signal is its median
    model_mod = load_module("model", RECIPES_DIR / "traditional" / "model.py")
    errors = {}
    for objective in (None, "regression"):
        params = {} if objective is None else {"objective": objective}
        model = model_mod.Model(task, params).fit(X.iloc[tr], y[tr], X.iloc[va], y[va])
        errors[objective or "default"] = float(np.mean(np.abs(model.predict(X.iloc[te]) - truth)))
    assert errors["default"] < 0.8 * errors["regression"], errors
    import torch

    neural = load_module("model", RECIPES_DIR / "neural" / "model.py").Model(task, {})
    loss = neural._loss(torch.zeros((2, 1)), torch.tensor([1.0, 3.0]))
    assert loss.item() == 2.0  # the mean absolute error; squared error would be 5


@pytest.mark.parametrize("member", ["linear", "extratrees", "catboost", "knn", "ratio"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_member_of_the_zoo_checks_and_beats_a_constant(harnesses, tmp_path, member, kind):
    """The traditional track's members obey the contract and learn on every task kind. Half the
    signal here is in the free text, which extra-trees and CatBoost read as lengths only (the
    LightGBM recipe's TF-IDF reads it): they must beat the constant, not reach the recipes' margin."""
    from prompts import render_member

    code = render_member(member)
    assert static_problems(code) == []
    for module, source in code.items():
        (tmp_path / f"{module}.py").write_text(source)
    h = harnesses[kind]
    assert h.check_attempt(tmp_path, {}) == []
    score = h.run_attempt(tmp_path, {})["score"]
    assert get_metric(h.task["metric"]).better(score, constant_score(h)), f"{member} on {kind}: {score:.4f}"


EXTENDED_MODEL = '''from prompts.recipes.traditional.model import Model as Base


class Model(Base):
    """The LightGBM recipe's model with the Huber loss."""

    def objective(self):
        return "huber"
'''


def test_a_module_that_extends_a_recipe_checks_and_runs_in_a_kernel(harnesses, tmp_path):
    """The recipes are a library: modules that import a recipe's class and override one step (the
    contract's example, and a model) pass the static check, and the harness checks, runs and
    scores them in a real kernel, where the overrides take effect (the quarter column, the Huber
    objective)."""
    import json

    from graph.settings import HARNESS_STARTUP
    from runtime.kernel import KernelSession

    from conftest import contract_example

    code = {"features": contract_example(), "model": EXTENDED_MODEL}
    assert static_problems(code) == []
    for module, source in code.items():
        (tmp_path / f"{module}.py").write_text(source)
    h = harnesses["regression"]
    cell = (f"import json\nfrom runtime.harness import load_module\n"
            f"problems = H.check_attempt({str(tmp_path)!r}, {{}})\n"
            f"result = H.run_attempt({str(tmp_path)!r}, {{}})\n"
            f"f = load_module('features', __import__('pathlib').Path({str(tmp_path / 'features.py')!r}))\n"
            f"m = load_module('model', __import__('pathlib').Path({str(tmp_path / 'model.py')!r}))\n"
            f"columns = list(f.Features(H.task, H.profile, {{}}).fit(H.X, H.y).transform(H.X).columns)\n"
            f"objective = m.Model(H.task, {{}}).fit(H.X[['alpha']], H.y).model.objective\n"
            f"print(json.dumps({{'problems': problems, 'score': result['score'], 'columns': columns, 'objective': objective}}))\n")
    with KernelSession(tmp_path, startup_code=HARNESS_STARTUP.format(run_dir=str(h.run_dir))) as kernel:
        outcome = kernel.execute(cell, timeout=300)
    assert outcome.status == "ok", (outcome.error_name, outcome.error_value, outcome.output[-2000:])
    seen = json.loads(outcome.output.strip().splitlines()[-1])
    assert seen["problems"] == [] and "day_quarter" in seen["columns"] and seen["objective"] == "huber"
    assert MARGIN[h.task["metric"]](seen["score"], constant_score(h)), seen["score"]
