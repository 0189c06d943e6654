"""The three tracks' recipes on an image task, through the real harness (in-process).

The task: small RGB pictures of three shapes (a disc, a square, a cross), each class in its
own colour family, at random places over noise, named by an id column of labels.csv, with no
test table, and a numeric column beside the images. Each recipe with empty params must pass
the static and dynamic checks and cross-validate well below the constant's log loss; encode
(image features, embeddings, pixels) runs once and is reused by the next attempt; a missing
and a broken file cost their rows' signal, not the run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from langgraph.runtime import Runtime
from machine_speed import UNCAPPED, scaled
from PIL import Image, ImageDraw

from graph.context import RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.check import static_problems
from nodes.profile import profile
from prompts import render_recipe
from runtime.harness import Harness
from runtime.metrics import get_metric

SHAPES = ("disc", "square", "cross")
COLOURS = ((200, 40, 40), (40, 180, 60), (50, 70, 210))
N_TRAIN, N_TEST, SIDE = 150, 30, 24


def draw(shape: int, rng: np.random.RandomState) -> Image.Image:
    noise = rng.randint(0, 60, size=(SIDE, SIDE, 3)).astype(np.uint8)
    img = Image.fromarray(noise)
    pen = ImageDraw.Draw(img)
    x, y, r = rng.randint(6, SIDE - 6), rng.randint(6, SIDE - 6), rng.randint(3, 6)
    colour = tuple(int(c + rng.randint(-30, 30)) for c in COLOURS[shape])
    if shape == 0:
        pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif shape == 1:
        pen.rectangle((x - r, y - r, x + r, y + r), fill=colour)
    else:
        pen.rectangle((x - r, y - 1, x + r, y + 1), fill=colour)
        pen.rectangle((x - 1, y - r, x + 1, y + r), fill=colour)
    return img


def write_image_task(folder):
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 3, N_TRAIN + N_TEST)
    ids = [f"im{i:04d}" for i in range(N_TRAIN + N_TEST)]
    for part, rows in (("train", range(N_TRAIN)), ("test", range(N_TRAIN, N_TRAIN + N_TEST))):
        (folder / part).mkdir(parents=True)
        for i in rows:
            draw(labels[i], rng).save(folder / part / f"{ids[i]}.png")
    (folder / "train" / f"{ids[3]}.png").write_bytes(b"broken")  # one unreadable file
    (folder / "train" / f"{ids[4]}.png").unlink()  # and one missing
    pd.DataFrame({"id": ids[:N_TRAIN], "size_cm": rng.normal(size=N_TRAIN), "shape": [SHAPES[k] for k in labels[:N_TRAIN]]}
                 ).to_csv(folder / "labels.csv", index=False)
    pd.DataFrame({"id": ids[N_TRAIN:], "size_cm": rng.normal(size=N_TEST)}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": ids[N_TRAIN:], **{s: 1 / 3 for s in SHAPES}}).to_csv(folder / "sample_submission.csv", index=False)
    (folder / "description.md").write_text("Tell the shape in each picture. Evaluation: multi-class log loss.")
    return folder


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    task_dir = write_image_task(root / "task")
    run_dir = root / "run"
    run_dir.mkdir()
    ctx = RunContext(settings=Settings(time_budget_s=300, n_folds=3))
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
    for node in (analyze, profile, blueprint):
        state.update(node(state, Runtime(context=ctx)))
    ctx.close()
    return Harness(run_dir)


def test_the_task_reads_as_images_beside_a_column(harness):
    kinds = {c["name"]: c["kind"] for c in harness.profile["columns"]}
    assert kinds == {"size_cm": "numeric", "image": "image"}
    assert harness.task["metric"] == "log_loss" and harness.task["classes"] == list(SHAPES)  # the sample submission's order
    stats = next(c["images"] for c in harness.profile["columns"] if c["kind"] == "image")
    assert stats["missing"] == 1 and stats["count"] == N_TRAIN + N_TEST


def constant_log_loss(h: Harness) -> float:
    prior = np.bincount(h.y, minlength=h.n_classes) / len(h.y)
    return get_metric("log_loss").score(h.y, np.tile(prior, (len(h.y), 1)))


@pytest.mark.parametrize("recipe", ["traditional", "pretrained", "neural", "fallback"])
def test_each_recipe_reads_the_images(harness, tmp_path, recipe):
    code = render_recipe(recipe)
    assert static_problems(code) == []
    for module, source in code.items():
        (tmp_path / f"{module}.py").write_text(source)
    params = UNCAPPED if recipe == "neural" else {}  # the defaults, but for the time cap that reads the clock
    assert harness.check_attempt(tmp_path, params) == []
    result = harness.run_attempt(tmp_path, params)
    base = constant_log_loss(harness)
    assert result["score"] < 0.6 * base, f"{recipe}: log loss {result['score']:.3f} against the constant's {base:.3f}"
    assert np.isfinite(np.load(tmp_path / "test.npy")).all()
    # encode ran once; an attempt that changes only the model's params reuses it
    caches = sorted((harness.run_dir / "cache").glob("encode_*.npy"))
    model_param = {"traditional": {"num_leaves": 7}, "pretrained": {"C": 1.0}, "neural": {"lr": 0.003, "max_epochs": 3},
                   "fallback": {"unused": 1}}[recipe]
    harness.run_attempt(tmp_path, model_param)
    assert sorted((harness.run_dir / "cache").glob("encode_*.npy")) == caches


def test_pretrained_embeddings_are_efficientnet_features(harness, tmp_path):
    from runtime.fold_loop import encode_rows, load_module

    features = load_module("features", _write(tmp_path, "pretrained")["features"])
    enc = encode_rows(features, harness.task, harness.profile, {"image_size": 64}, harness.X.iloc[:8])
    assert enc.shape == (8, 1280)
    assert np.isfinite(enc.to_numpy()).all() and enc.to_numpy().std() > 0


def test_the_cnn_is_deterministic_and_honours_its_time_cap(harness, tmp_path):
    import time

    from runtime.fold_loop import encode_rows, load_module

    paths = _write(tmp_path, "neural")
    features_mod, model_mod = load_module("features", paths["features"]), load_module("model", paths["model"])
    X = pd.concat([harness.X, encode_rows(features_mod, harness.task, harness.profile, {}, harness.X)], axis=1)
    feats = features_mod.Features(harness.task, harness.profile, {}).fit(X, harness.y)
    F = feats.transform(X)
    assert sum(c.startswith("img__image__") for c in F.columns) == 32 * 32 * 3
    params = {"max_epochs": 3, **UNCAPPED}  # three epochs, whatever they take: the cap would cut a busy machine's short
    preds = [model_mod.Model(harness.task, params).fit(F, harness.y).predict(F) for _ in range(2)]
    assert np.array_equal(preds[0], preds[1]) and np.allclose(preds[0].sum(axis=1), 1.0, atol=1e-4)
    limit = scaled(10)  # ~0.5 s of training on free cores, then the epoch under way
    started = time.time()
    model_mod.Model(harness.task, {"max_seconds": 0.5, "patience": 10_000, "max_epochs": 100_000}).fit(F, harness.y, F, harness.y)
    assert time.time() - started < limit


def test_the_image_encoder_fine_tunes_per_fold(harness, tmp_path):
    """finetune: EfficientNet-Lite0 trained on each fold's pictures (decoded once per kernel, at
    48 px here, three epochs): the check passes, the folds learn the shapes well below the
    constant's log loss, and the missing and broken files cost only their rows."""
    from runtime.params import SPACES

    _write(tmp_path, "pretrained")
    params = {"finetune": True, "epochs": 3, "image_size": 48, "seed": 0}
    assert harness.check_attempt(tmp_path, SPACES["pretrained"].for_check(params)) == []
    result = harness.run_attempt(tmp_path, params)
    assert result["status"] == "ok" and result["resolved_params"]["finetune"] is True, result
    assert result["score"] < 0.7 * constant_log_loss(harness), result["score"]
    assert np.isfinite(np.load(tmp_path / "test.npy")).all()


def _write(folder, recipe):
    paths = {}
    for module, source in render_recipe(recipe).items():
        paths[module] = folder / f"{module}.py"
        paths[module].write_text(source)
    return paths


@pytest.mark.gpu
@pytest.mark.parametrize("recipe", ["pretrained", "pretrained-finetune", "neural"])
def test_on_a_gpu_the_torch_recipes_compute_there(harness, tmp_path, recipe):
    """On a CUDA machine the encoder (frozen or fine-tuned) and the CNN run on the GPU (mixed
    precision) and still score as they do on the CPU; result.json says where."""
    from runtime.params import SPACES

    _write(tmp_path, recipe.split("-")[0])
    params = {"image_size": 96} if recipe == "pretrained" else {"finetune": True, "image_size": 96} \
        if recipe == "pretrained-finetune" else {}
    assert harness.check_attempt(tmp_path, SPACES[recipe.split("-")[0]].for_check(params)) == []
    for cache in (harness.run_dir / "cache").glob("encode_*.npy"):
        cache.unlink()  # encode again, on the GPU
    harness._encoded.clear()
    result = harness.run_attempt(tmp_path, params)
    assert result["device"].startswith("cuda:"), result
    assert result["score"] < 0.6 * constant_log_loss(harness)
