"""The pretrained recipe with its text encoder fine-tuned per fold (`finetune`), on the CPU at
tiny sizes: a few dozen short texts, one to a few epochs, max_length 16.

The texts say which of two animals did something to the other ("the horse chased the cat"), so
word order carries the label: a head on frozen, mean-pooled sentence embeddings sees nearly the
same vector for both orders, while a fine-tuned encoder learns it. Everything runs on the CPU
with fixed seeds, so the scores compared are the same on every run of this machine.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from langgraph.runtime import Runtime
from sklearn.metrics import roc_auc_score

from graph.context import RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.check import static_problems
from nodes.profile import profile
from prompts import RECIPES_DIR, render_recipe
from runtime.fold_loop import encode_rows, load_module
from runtime.harness import Harness
from runtime.metrics import get_metric
from runtime.params import SPACES

ANIMALS = ["mouse", "cat", "dog", "horse"]  # in order of size
VERBS = ["chased", "watched", "followed", "bit", "saw", "pushed", "found", "licked"]
TINY = {"finetune": True, "epochs": 1, "max_length": 16, "seed": 0}


def animal_frame(n: int, seed: int) -> pd.DataFrame:
    """Sentences "the A verb the B", a number and a category beside them; `bigger`: A is the larger."""
    rng = np.random.RandomState(seed)
    rows = []
    for _ in range(n):
        a, b = rng.choice(ANIMALS, 2, replace=False)
        rows.append({"note": f"the {a} {rng.choice(VERBS)} the {b}",
                     "size": np.nan if rng.rand() < 0.1 else rng.normal(),
                     "colour": rng.choice(["red", "green", None]),
                     "bigger": ANIMALS.index(a) > ANIMALS.index(b), "doer": a,
                     "gap": float(ANIMALS.index(a) - ANIMALS.index(b))})
    return pd.DataFrame(rows)


TARGETS = {  # kind -> (target column, description naming the metric)
    "binary": ("bigger", "Predict whether the doer is bigger. Submissions are evaluated on area under the ROC curve."),
    "multiclass": ("doer", "Predict who did it. The metric is multi-class log loss."),
    "regression": ("gap", "Predict the size gap. Submissions are scored on root mean squared error (RMSE)."),
}


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory):
    """One analysed, profiled and planned run folder per task kind (2 folds, one cut), 48 training rows."""
    from conftest import write_task

    root = tmp_path_factory.mktemp("finetune")
    ctx = RunContext(settings=Settings(time_budget_s=300, n_folds=2))
    out = {}
    for kind, (target, description) in TARGETS.items():
        frame = animal_frame(60, seed=1)
        frame = frame.drop(columns=[c for c in ("bigger", "doer", "gap") if c != target]).rename(columns={target: "outcome"})
        if kind == "binary":
            frame["outcome"] = np.where(frame.outcome, "yes", "no")
        frame.insert(0, "id", np.arange(len(frame)) + 100)
        task_dir = write_task(root / kind / "task", frame.iloc[:48], frame.iloc[48:].drop(columns="outcome"), None, description)
        run_dir = root / kind / "run"
        run_dir.mkdir(parents=True)
        state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
        for node in (analyze, profile, blueprint):
            state.update(node(state, Runtime(context=ctx)))
        plan = json.loads((run_dir / "blueprint.json").read_text())
        plan["validation"]["repeats"] = 1  # one cut of the folds: the tests compare fits, not noise
        (run_dir / "blueprint.json").write_text(json.dumps(plan))
        out[kind] = Harness(run_dir)
    ctx.close()
    return out


def _recipe_folder(folder):
    folder.mkdir(exist_ok=True)
    for module, source in render_recipe("pretrained").items():
        (folder / f"{module}.py").write_text(source)
    return folder


@pytest.mark.parametrize("kind", list(TARGETS))
def test_fine_tuning_checks_runs_and_predicts_each_fold_in_the_contract_shape(harnesses, tmp_path, kind):
    """The check (one epoch, two steps) passes; the folds fine-tune and predict the contract's
    shapes; the test rows get the mean of the fold models' predictions, which the kept models
    give back after pickling."""
    h = harnesses[kind]
    folder = _recipe_folder(tmp_path / "attempt")
    assert static_problems(render_recipe("pretrained")) == []
    assert h.check_attempt(folder, SPACES["pretrained"].for_check(TINY)) == []
    result = h.run_attempt(folder, TINY)
    assert result["status"] == "ok", result
    assert result["resolved_params"]["finetune"] is True and result["device"] == "cpu"
    oof, test = np.load(folder / "oof.npy"), np.load(folder / "test.npy")
    rows = {"multiclass": (len(h.y), h.n_classes), "binary": (len(h.y),), "regression": (len(h.y),)}[kind]
    assert oof.shape == rows and test.shape == (len(h.X_test), *rows[1:]) and np.isfinite(test).all()
    if kind == "multiclass":
        assert np.allclose(test.sum(axis=1), 1.0, atol=1e-4)

    features = load_module("features", folder / "features.py")
    _, X_test = h._with_encoding(features, TINY)
    kept = sorted((folder / "models").glob("fold_*.pkl"))
    assert len(kept) == 2
    preds = []
    for path in kept:
        (feats, model), = pickle.loads(path.read_bytes())
        assert model.tuned is not None and next(model.tuned.net.parameters()).device.type == "cpu"
        preds.append(model.predict(feats.transform(X_test.reset_index(drop=True))))
    assert np.allclose(np.mean(preds, axis=0), test, atol=1e-5)


def _inputs(h: Harness, params: dict, rows: np.ndarray):
    """The fitted Features' output for these training rows and for the others (the harness's encode first)."""
    features = load_module("features", RECIPES_DIR / "pretrained" / "features.py")
    X = pd.concat([h.X, encode_rows(features, h.task, h.profile, params, h.X).set_axis(h.X.index)], axis=1)
    inside = np.zeros(len(X), dtype=bool)
    inside[rows] = True
    feats = features.Features(h.task, h.profile, dict(params)).fit(X[inside].reset_index(drop=True), h.y[inside])
    return feats.transform(X[inside].reset_index(drop=True)), feats.transform(X[~inside].reset_index(drop=True)), inside


def test_fine_tuning_stops_early_and_keeps_the_best_epoch(harnesses):
    """Validation labels that contradict the training labels: every epoch of training makes the
    validation loss worse than the linear probe's the network starts from (epoch 0), so training
    stops after `patience` worse epochs and keeps the probe."""
    h = harnesses["binary"]
    params = {**TINY, "epochs": 6, "patience": 1}
    F_in, F_out, inside = _inputs(h, params, np.arange(32))
    model_mod = load_module("model", RECIPES_DIR / "pretrained" / "model.py")
    model = model_mod.Model(h.task, params).fit(F_in, h.y[inside], F_out, 1 - h.y[~inside])
    tuned = model.tuned
    assert tuned.stopped == "early stopping" and tuned.epochs_run < 6
    assert tuned.best_epoch == tuned.epochs_run - 1 == 0
    pred = model.predict(F_out)
    assert pred.shape == (len(F_out),) and ((pred >= 0) & (pred <= 1)).all()


def test_a_fine_tuned_encoder_beats_the_frozen_head_where_word_order_decides():
    """Trained on 48 sentences (16 more are the validation part), scored on 96 new ones, the text
    alone: the head on frozen embeddings stays near chance (0.50 on this machine), the encoder
    fine-tuned for 8 epochs learns who did it to whom (0.98)."""
    frame = animal_frame(160, seed=7)
    X, y = frame[["note"]], frame["bigger"].to_numpy().astype(int)
    task = {"task_type": "binary", "classes": ["no", "yes"], "metric": "auc", "target": "bigger"}
    profile_ = {"n_train": 64, "n_test": 96, "columns": [{"name": "note", "kind": "text", "cardinality": 64, "mean_length": 25}]}
    features = load_module("features", RECIPES_DIR / "pretrained" / "features.py")
    model_mod = load_module("model", RECIPES_DIR / "pretrained" / "model.py")
    scores = {}
    for name, params in (("frozen", {"seed": 0}),
                         ("fine-tuned", {"finetune": True, "epochs": 8, "patience": 3, "encoder_lr": 1e-4,
                                         "max_length": 16, "seed": 0})):
        full = pd.concat([X, encode_rows(features, task, profile_, params, X)], axis=1)
        train, valid, test = full.iloc[:48], full.iloc[48:64].reset_index(drop=True), full.iloc[64:].reset_index(drop=True)
        feats = features.Features(task, profile_, dict(params)).fit(train, y[:48])
        model = model_mod.Model(task, dict(params)).fit(feats.transform(train), y[:48], feats.transform(valid), y[48:64])
        scores[name] = roc_auc_score(y[64:], model.predict(feats.transform(test)))
    assert scores["fine-tuned"] >= scores["frozen"] + 0.2 and scores["fine-tuned"] >= 0.8, scores


@pytest.mark.gpu
def test_on_a_gpu_fine_tuning_runs_there_in_mixed_precision(harnesses, tmp_path):
    """On a CUDA machine the folds fine-tune on the GPU (result.json says so), twice the same
    (deterministic kernels), in bfloat16 where the device has it."""
    import torch

    h = harnesses["binary"]
    folder = _recipe_folder(tmp_path / "attempt")
    assert h.check_attempt(folder, SPACES["pretrained"].for_check(TINY)) == []
    params = {**TINY, "epochs": 4}
    result = h.run_attempt(folder, params)
    assert result["status"] == "ok" and result["device"].startswith("cuda:"), result
    first = np.load(folder / "test.npy")
    assert h.run_attempt(folder, params)["status"] == "ok"
    assert np.allclose(np.load(folder / "test.npy"), first, atol=1e-4)
    (feats, model), = pickle.loads((folder / "models" / "fold_0.pkl").read_bytes())
    assert model.tuned.bf16() == torch.cuda.is_bf16_supported()
    assert get_metric("auc").score(h.y, np.load(folder / "oof.npy")) > 0.5
