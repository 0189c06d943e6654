"""Every recipe's parameters, declared once: name, type, default (a function of the data), the
range refine searches, its scale and what a value costs.

The recipes read their settings through `SPACES[recipe].resolve(params, data)` in the kernel
(solution.py inlines this module, as it does runtime.images); the blueprint estimates a plan's
cost from the same defaults evaluated on the profile; refine searches the declared ranges;
the LLM prompts and docs/recipe-parameters.md show `table()`. A plan's params hold only what differs from
these defaults, so a recipe's data-aware default is never overridden by a copy.

Light on purpose: no imports beyond the standard library, since the framework's process reads
it while kernels compute.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# params the harness reads itself, whatever the modules: the offline debug's repairs of columns,
# a cap on the rows each fold's fit sees (small budgets: a sample rather than a stretched clock),
# and a bag's own number of cuts of the folds, each cut with its own seed (long budgets)
REPAIR_PARAMS = ("drop_columns", "coerce_columns")
BAG_PARAMS = ("cuts", "seed_per_cut")
# what the harness does with each, before or around the modules: the coder's prompt says it, so
# that generated code does not do it again (a real model dropped a plan's drop_columns itself,
# told only that the harness "reads" them)
HARNESS_PARAMS = {
    "drop_columns": "done by the harness: these columns are gone from X and from profile['columns'] before "
                    "Features sees them; no code needed",
    "coerce_columns": "done by the harness: profile['columns'] gives these columns this kind before Features "
                      "sees them; no code needed",
    "max_train_rows": "done by the harness: each fold's fit sees a seeded sample of this many training rows; "
                      "every row is still predicted; no code needed",
    "cuts": "done by the harness: the folds are cut this many times, each cut's folds fitted and predicted; "
            "no code needed",
    "seed_per_cut": "done by the harness: each cut of the folds fits with its own seed (params['seed'] differs "
                    "per cut); no code needed",
}

WIDE = 200  # columns beyond which the data is wide (image features, pixels): sample columns, coarser bins


@dataclass(frozen=True)
class Data:
    """What a default depends on: the rows a fit trains on and what they look like."""

    n: int  # training rows of the fit (a fold's training part)
    columns: int = 0  # columns the model reads
    task_type: str = "binary"
    metric: str = ""
    text_pred: bool = False  # the features hand the model a text model's prediction (text_pred*)
    text_chars: float = 0.0  # characters of free text in the training rows
    images: bool = False
    gpu: bool = False
    positives: int = 0  # binary: training rows of the rarer class (0: not known, or not binary)


FEW_POSITIVES = 500       # a binary target with fewer rows of its rarer class than this ...
FEW_POSITIVES_SHARE = 0.2  # ... that are also under this share of the rows has few positives


def few_positives(d: Data) -> bool:
    """A binary target whose rarer class has few rows, in number and in share: trees sized by the
    rows fit the noise of those few (caravan, 222 positives of 3,700 rows a fold)."""
    return d.task_type == "binary" and 0 < d.positives < FEW_POSITIVES and d.positives < FEW_POSITIVES_SHARE * d.n


# Below this many rows a LightGBM fit takes one thread, and the harness fits the kernel's threads'
# worth of folds side by side instead (each fit's OpenMP team of one: under the kernels'
# OMP_WAIT_POLICY=PASSIVE two threads in one fit ran 5-12x slower than one; two single-thread
# folds at once ran 1.6x faster than one after the other on diamonds, 1.2x with the other core busy).
SINGLE_THREAD_ROWS = 100_000


def _threads() -> int:
    return max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1))


def folds_side_by_side(n_rows: int, text: bool = False, images: bool = False, threads: int | None = None) -> int:
    """Folds of a single-thread LightGBM recipe the harness may fit at once: one per kernel
    thread below SINGLE_THREAD_ROWS; one with text (its vectorizers hold Python's lock, and each
    fold's matrices would be held twice) or images (their feature blocks: memory)."""
    if n_rows >= SINGLE_THREAD_ROWS or text or images:
        return 1
    return _threads() if threads is None else max(1, threads)


@dataclass(frozen=True)
class Param:
    """One parameter. `low`/`high` make it searchable by refine (`log`: on a log scale);
    `steps` are refine's first moves from the current value (factors on a log scale, else
    amounts added); `cost` is the exponent of the relative duration, (value / current) ** cost."""

    name: str
    kind: type
    default: Any  # a value, or a function of Data; None: the recipe decides at fit time (see doc)
    doc: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    steps: tuple[float, ...] = ()
    cost: float = 0.0
    # at most this in the dynamic check, which tests the interface and determinism on 300 rows,
    # not the fit's quality (2,000 trees x 10 classes made digits' check 2.7 s of a 10 s run)
    check: float | None = None

    @property
    def searched(self) -> bool:
        return self.low is not None and self.high is not None

    def default_for(self, data: Data) -> Any:
        return self.default(data) if callable(self.default) else self.default

    def coerce(self, value: Any) -> Any:
        if value is None or self.kind is object:
            return value
        if self.kind is bool and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if self.kind is int:
            return int(round(float(value)))
        return self.kind(value)

    def clip(self, value: float) -> float | int:
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.kind is int else round(float(value), 6)

    def moved(self, current: float, step: float) -> float | int | None:
        """The value one of `steps` away from `current`, or None when the move changes nothing."""
        value = self.clip(current * step if self.log else current + step)
        return None if value == current else value

    def relative_cost(self, value: float, current: float) -> float:
        if not self.cost or not current or not value:
            return 1.0
        return float((value / current) ** self.cost)


class Space:
    """A recipe's parameters, in the order refine tries them (most promising first)."""

    def __init__(self, recipe: str, *params: Param):
        self.recipe = recipe
        self.params = {p.name: p for p in params}

    def __iter__(self):
        return iter(self.params.values())

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    @property
    def names(self) -> set[str]:
        return set(self.params)

    def for_check(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The params with each declared check cap applied."""
        out = dict(given)
        for p in self:
            if p.check is not None and (out.get(p.name) is None or out[p.name] > p.check):
                out[p.name] = p.kind(p.check)
        return out

    def resolve(self, given: Mapping[str, Any], data: Data) -> dict[str, Any]:
        """Every declared parameter's value for this fit: the given one, else the default."""
        out = {}
        for p in self:
            value = given.get(p.name)
            out[p.name] = p.coerce(value) if value is not None else p.default_for(data)
        return out

    def defaults(self, data: Data) -> dict[str, Any]:
        return self.resolve({}, data)

    def searched(self) -> list[Param]:
        return [p for p in self if p.searched]

    def table(self) -> str:
        """The parameters as the recipe docs and the prompts show them: name, default, meaning."""
        width = max(len(p.name) for p in self) + 2
        lines = []
        for p in self:
            rng = f"  [searched {p.low:g}..{p.high:g}{', log' if p.log else ''}]" if p.searched else ""
            lines.append(f"  {p.name.ljust(width)}{p.doc}{rng}")
        return "\n".join(lines)


def _seed() -> Param:
    return Param("seed", int, 0, "0   random seed of every fit")


SKEWED = 1.0  # a target's skewness above which absolute errors are learnt on log1p(y)
ABSOLUTE_ERRORS = ("mae", "medae")


def _log_target(absolute: bool = True) -> Param:
    if not absolute:
        return Param("log_target", bool, None, "learn log1p(y): for RMSLE; not for absolute errors, where averaging on "
                     "the log scale predicts below the median; true / false override (regression)")
    return Param("log_target", bool, None, "learn log1p(y): always for RMSLE; for MAE / median AE when the training "
                 f"target is >= 0 and right-skewed (skew > {SKEWED:g}); true / false override (regression)")


def learns_log(metric: str, given: bool | None, y: Any, absolute: bool = True) -> bool:
    """Whether a regression model learns log1p(y) from training target `y` (a float array; see
    `_log_target`). For absolute errors a robust loss on log1p(y) still estimates y's median
    (the median commutes with log1p) while trees split a multiplicative scale more evenly
    (diamonds' prices, MAE out of fold 342 -> 328). `absolute=False`: a model that averages
    (neighbours, a network) learns absolute errors on y itself: on log1p(y) its average is a
    geometric mean, below the median (diamonds_mae, 3 splits: knn 1-3% and the network 3% of
    2 splits worse on the test rows with the log)."""
    minimum = float(y.min())
    if given is not None:
        return bool(given) and minimum >= 0
    spread = float(y.std())
    skew = float(((y - y.mean()) ** 3).mean()) / spread ** 3 if spread > 0 else 0.0
    return metric == "rmsle" or (absolute and metric in ABSOLUTE_ERRORS and minimum >= 0 and skew > SKEWED)


TRADITIONAL = Space(
    "traditional",
    # the model: LightGBM
    # few positives (binary, < 500 rows of the rarer class and < 20% of the rows): trees sized by
    # the positives, not the rows. 5-fold out of fold / test AUC on caravan's 3 splits: 0.749 /
    # 0.750, 0.749 / 0.758, 0.739 / 0.770 with the row-sized defaults; 0.760 / 0.760, 0.762 / 0.776,
    # 0.755 / 0.767 with these (attrition's F1: 0.43 / 0.35 -> 0.49 / 0.42)
    Param("num_leaves", int, lambda d: 4 if few_positives(d) else 7 if d.text_pred else 15 if d.n < 2_000
          else 31 if d.n < 50_000 else 63,
          "15 (n < 2k), 31 (n < 50k), 63 above; 7 with a text_pred* column; 4 with few positives", 4, 255, True,
          (2.0, 0.5), 0.5),
    Param("min_child_samples", int, lambda d: min(200, max(20, d.positives // 3)) if few_positives(d)
          else 30 if d.text_pred else 10 if d.n < 2_000 else 20,
          "10 (n < 2k), 20 above; 30 with a text_pred* column; positives / 3 (20..200) with few positives", 2, 200, True,
          (2.5, 0.4)),
    # 0.8 on few columns too: out of fold it beat 1.0 on each of the 7 examples with < 20 columns
    Param("colsample_bytree", float, lambda d: 0.8 if d.columns <= WIDE else 0.3,
          "0.8 (<= 200 columns), 0.3 above   column share per tree", 0.2, 1.0, False, (-0.3, 0.2)),
    Param("learning_rate", float, lambda d: 0.02 if few_positives(d) else 0.05 if d.n < 50_000 else 0.1,
          "0.05 (n < 50k), 0.1 above; 0.02 with few positives", 0.005, 0.3, True, (0.5,), -1.0),
    Param("reg_lambda", float, 1.0, "1.0   L2 on leaf values", 1e-3, 100.0, True, (10.0, 0.1)),
    Param("subsample", float, 0.8, "0.8   row share per tree (bagging every iteration)", 0.4, 1.0, False, (-0.2, 0.15)),
    Param("min_data_per_group", int, lambda d: min(100, max(10, d.n // 50)),
          "min(100, max(10, n // 50))   rows per category in a categorical split", 2, 500, True, (0.3, 3.0)),
    Param("n_estimators", int, 2000, "2000   upper bound; early stopping picks the number of trees", check=50),
    Param("early_stopping_rounds", int, lambda d: 100 if d.n < 2_000 else 50, "100 (n < 2k), 50 above"),
    Param("min_delta", float, lambda d: 0.0 if d.task_type == "regression" else 1e-4,
          "1e-4 (classification), 0 (regression): the least validation-loss gain early stopping counts"),
    Param("objective", str, None, "the metric's: for MAE / median AE huber on log1p(y) (a skewed target >= 0) or "
          "l1 (any other), mape for MAPE, else squared error (regression; RMSLE learns log1p(y))"),
    Param("huber_delta", float, 0.1, "0.1   where the residual on log1p(y) turns from squared to absolute (huber)",
          0.02, 1.0, True, (2.0, 0.5)),
    _log_target(),
    Param("max_bin", int, lambda d: 255 if d.columns <= WIDE else 63, "255 (<= 200 columns), 63 above"),
    Param("n_jobs", int, lambda d: 1 if d.n < SINGLE_THREAD_ROWS else _threads(),
          "1 (n < 100k: the folds run side by side instead), else OMP_NUM_THREADS"),
    # the features: in-fold encodings, text, images
    Param("te_smoothing", float, 20.0, "20   target encoding = (sum + m * prior) / (count + m), m = this",
          0.5, 500.0, True, (0.25, 4.0)),
    Param("text_C", float, 4.0, "4.0   inverse regularisation of the text model (Ridge alpha = 1 / text_C)",
          0.01, 100.0, True, (3.0, 0.33)),
    Param("high_cardinality", int, 50, "50   categoricals with more levels get count + target encoding"),
    Param("inner_folds", int, 5, "5   inner folds for out-of-fold target encoding and text predictions"),
    Param("missing_indicator", float, 0.05, "0.05   add `<col>_isna` when this share of training rows is missing"),
    Param("text", bool, True, "true   the TF-IDF linear model on free text (false: lengths only)"),
    Param("text_max_features", int, 200_000, "200000   vocabulary cap per vectorizer (terms in at least 2 rows)"),
    Param("text_char", bool, lambda d: d.text_chars <= 1_000_000,
          "true when the training text has <= 1M characters: add char 2-5 grams"),
    Param("image_size", int, 64, "64   pixels (square) each image is decoded at for its features"),
    Param("thumbnail", int, 8, "8   side of the grey thumbnail kept as pixel columns (0: none)"),
    Param("hog", bool, True, "true   add HOG features"),
    _seed(),
)

NEURAL = Space(
    "neural",
    Param("dropout", float, 0.1, "0.1", 0.0, 0.6, False, (0.15, -0.1)),
    Param("weight_decay", float, 1e-4, "1e-4   AdamW weight decay", 1e-6, 1.0, True, (10.0, 0.1)),
    Param("lr", float, 2e-3, "2e-3   AdamW learning rate", 1e-5, 0.1, True, (0.5, 2.0), -0.38),
    Param("hidden", int, lambda d: 128 if d.n < 5_000 else 256,
          "128 (n < 5k), 256 above   width of the first hidden layer (second: half)", 16, 2048, True, (2.0, 0.5), 0.6),
    Param("batch_size", int, lambda d: 32 if d.n < 1_000 else 64 if d.n < 5_000 else 128 if d.n < 20_000
          else 256 if d.n < 100_000 else 512, "32 (n < 1k), 64 (< 5k), 128 (< 20k), 256 (< 100k), 512 above"),
    Param("max_epochs", int, 200, "200", check=3),
    Param("patience", int, lambda d: 10 if d.n < 5_000 else 6 if d.n < 50_000 else 4, "10 (n < 5k), 6 (< 50k), 4 above"),
    Param("max_seconds", float, lambda d: min(60.0, max(10.0, d.n / 50)) if d.images else min(20.0, max(3.0, d.n / 2000)),
          "clip(n / 2000, 3, 20); with images clip(n / 50, 10, 60)   time cap per fit"),
    Param("threads", int, lambda d: 1 if d.n < 50_000 and not d.images else _threads(),
          "1 (n < 50k, no images), else OMP_NUM_THREADS   torch CPU threads"),
    Param("conv_width", int, lambda d: 32 if d.gpu else 16,
          "16 on CPU, 32 on GPU   channels of the CNN's first block (cost grows with its square)"),
    Param("flip", bool, True, "true   random horizontal flips of training images"),
    Param("crop", bool, True, "true   random shifts of training images"),
    _log_target(absolute=False),
    # the features
    Param("max_levels", int, 1000, "1000   most levels a categorical keeps"),
    Param("min_count", int, lambda d: 1 if d.n < 5_000 else 2, "1 (n < 5k rows), 2 above   occurrences a level needs"),
    Param("text_dims", int, 64, "64   SVD components per text column (fewer when the vocabulary is small)"),
    Param("text_max_features", int, 20_000, "20000   TF-IDF vocabulary per text column"),
    Param("image_size", int, 32, "32   pixels (square) images are decoded at for the network"),
    _seed(),
)

PRETRAINED = Space(
    "pretrained",
    # the head
    Param("C", float, None, "searched by the inner folds from C_grid when not given   inverse regularisation of the "
          "head (Ridge alpha = 1 / C)", 1e-4, 1e4, True, (3.0, 0.33)),
    Param("C_grid", list, lambda d: [0.1, 0.3, 1, 3, 10], "[0.1, 0.3, 1, 3, 10]   values tried when C is not given"),
    Param("inner_folds", int, 5, "5"),
    Param("learning_rate", float, lambda d: 0.05 if d.n < 2_000 else 0.1, "0.05 (n < 2k), 0.1 above   (LightGBM)"),
    Param("num_leaves", int, lambda d: 15 if d.n < 2_000 else 31, "15 (n < 2k), 31 above"),
    Param("min_child_samples", int, 20, "20"),
    Param("n_estimators", int, 2000, "2000   upper bound; early stopping picks the number of trees", check=50),
    Param("early_stopping_rounds", int, lambda d: 100 if d.n < 2_000 else 50, "100 (n < 2k), 50 above"),
    Param("n_jobs", int, lambda d: 1 if d.n < SINGLE_THREAD_ROWS else _threads(), "1 (n < 100k), else OMP_NUM_THREADS"),
    # the encoders
    Param("model_name", object, None, "the bundled all-MiniLM-L6-v2   a local path or cached Hugging Face name"),
    Param("max_length", int, None, "128, cut on CPU to fit token_budget   tokens kept per text (truncation)"),
    Param("token_budget", float, lambda d: float("inf") if d.gpu else 200_000.0,
          "200_000 on CPU (~1 min on 2 cores), unlimited on GPU"),
    Param("batch_size", int, lambda d: 256 if d.gpu else 64, "64 on CPU, 256 on GPU"),
    Param("image_model", object, None, "efficientnet-lite0   or a local weights file (a torch module, a Lite0 state dict)"),
    Param("image_size", int, None, "224 on GPU; on CPU the largest that fits image_seconds (fine-tuning: 96)"),
    Param("image_seconds", float, 60.0, "60   CPU seconds the image encoder may take for all rows (sets image_size)"),
    # fine-tuning: the encoders trained per fold inside Model.fit (prompts/recipes/pretrained/finetune.py)
    Param("finetune", bool, False, "false   true: fine-tune the encoders per fold, early stopping on its validation "
          "part (the blueprint sets it when its estimate fits the time); false: frozen embeddings + the linear head"),
    Param("epochs", int, 3, "3   most passes over a fold's training rows when fine-tuning", check=1),
    Param("patience", int, 1, "1   epochs without a lower validation loss before fine-tuning stops (best epoch kept)"),
    Param("encoder_lr", float, lambda d: 1e-4 if d.images else 5e-5,
          "5e-5 (text), 1e-4 (images)   AdamW learning rate of the encoders when fine-tuning"),
    Param("head_lr", float, 1e-3, "1e-3   AdamW learning rate of the new head when fine-tuning"),
    Param("tune_batch_size", int, lambda d: 32 if d.gpu else 16, "16 on CPU, 32 on GPU   rows per fine-tuning step"),
    Param("max_steps", int, None, "none   most optimizer steps per fold when fine-tuning (the check takes 2)", check=2),
    Param("tune_seconds", float, None, "none   time cap per fold's fine-tuning: it stops after the step past it, "
          "keeping the best epoch (a capped fit depends on the machine's speed)"),
    _log_target(),
    _seed(),
)

LINEAR = Space(
    "linear",
    Param("C", float, 1.0, "1.0   inverse regularisation (Ridge alpha = 1 / C)", 1e-4, 1e4, True, (3.0, 0.33)),
    Param("min_count", int, 2, "2   occurrences a level needs for its own one-hot column"),
    Param("text_max_features", int, 50_000, "50000   TF-IDF vocabulary per text column"),
    _log_target(),
    _seed(),
)

CATBOOST = Space(
    "catboost",
    Param("depth", int, 6, "6   tree depth (cost doubles with each level)", 2, 10, False, (2, -2), 1.5),
    Param("l2_leaf_reg", float, 3.0, "3.0   L2 on leaf values", 0.1, 100.0, True, (3.0, 0.33)),
    Param("learning_rate", float, lambda d: 0.05 if d.n < 2_000 else 0.08 if d.n < 20_000 else 0.12,
          "0.05 (n < 2k), 0.08 (< 20k), 0.12 above", 0.01, 0.3, True, (0.5,), -1.0),
    # no check cap: CatBoost's check is its gate (MEMBER_CHECK_DEADLINE_S); its training loop
    # ignores interrupts, so a fold slower than its deadline costs the restart grace on top
    Param("iterations", int, 2000, "2000   upper bound; early stopping picks the number of trees"),
    Param("early_stopping_rounds", int, lambda d: 100 if d.n < 2_000 else 50, "100 (n < 2k), 50 above"),
    Param("thread_count", int, lambda d: _threads(), "OMP_NUM_THREADS (the kernel's cores)"),
    _log_target(),
    _seed(),
)

EXTRATREES = Space(
    "extratrees",
    Param("max_features", float, 0.5, "0.5   share of the columns each split considers", 0.1, 1.0, False, (0.2, -0.2), 1.0),
    Param("min_samples_leaf", int, lambda d: 1 if d.n < 2_000 else 3, "1 (n < 2k), 3 above", 1, 50, True, (3.0,), -0.3),
    Param("n_estimators", int, 300, "300", check=20),
    Param("n_jobs", int, lambda d: _threads(), "OMP_NUM_THREADS (the kernel's cores)"),
    _log_target(),
    _seed(),
)

KNN = Space(
    "knn",
    Param("n_neighbors", int, lambda d: 5 if d.n < 5_000 else 10, "5 (n < 5k), else 10", 1, 100, True, (2.0, 0.5), 0.3),
    Param("weights", object, "distance", "distance   or uniform: how the neighbours' votes count"),
    Param("scale", object, "auto", "auto   standard (each column by its spread), global (all by one), auto: global "
          "for 20+ non-negative columns in one range (pixels)"),
    Param("max_levels", int, 20, "20   one-hot columns per categorical (its commonest levels)"),
    Param("n_jobs", int, lambda d: _threads(), "OMP_NUM_THREADS (the kernel's cores)"),
    _log_target(absolute=False),
)  # no seed: the neighbours are the same whatever it is, so refine never reseeds it

# the ratio member: the traditional recipe on y / x (prompts/recipes/members/ratio), its params and the column x
RATIO = Space("ratio", *TRADITIONAL, Param(
    "per_column", object, None, "the profile's target.scale_column   the positive column the target is divided by"))

FALLBACK = Space("fallback", _seed())

# recipe name (a track's recipe, or a member of the traditional track's zoo) -> its parameters
SPACES: dict[str, Space] = {s.recipe: s for s in (TRADITIONAL, NEURAL, PRETRAINED, LINEAR, CATBOOST, EXTRATREES, KNN, RATIO,
                                                  FALLBACK)}


def params_markdown() -> str:
    """Every recipe's parameters as docs/recipe-parameters.md shows them (`iml params` prints the same)."""
    parts = []
    for space in SPACES.values():
        if space.recipe == "fallback":
            continue
        parts.append(f"`{space.recipe}`:\n\n```\n{space.table()}\n```")
    return "\n\n".join(parts) + "\n"


def space_for(track: str, member: str | None = None) -> Space:
    """The parameters of the recipe an attempt runs: its member's when it runs one."""
    return SPACES.get(member or track, FALLBACK)
