"""Typed state of an iML run.

Everything here is serialisable (pydantic models, paths as strings, numbers), because the
checkpointer stores it. Kernels, clients and locks live in `graph.context.RunContext`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

# multilabel: several 0/1 labels per row (a probability each); multitarget: several numeric targets
TaskType = Literal["binary", "multiclass", "regression", "multilabel", "multitarget"]
TrackName = Literal["traditional", "pretrained", "neural"]
# image: a column holding each row's image file (the path, as the harness builds it)
ColumnKind = Literal["numeric", "categorical", "text", "datetime", "id", "constant", "image"]
# How predictions become submission columns:
#   label       one column of class labels (or values for regression)
#   proba       one column holding the positive class's probability (binary)
#   proba_cols  one column per class with its probability (multiclass, or binary with two)
#   columns     one column per target: its value (multitarget) or its label's probability (multilabel)
SubmissionFormat = Literal["label", "proba", "proba_cols", "columns"]


class ImageSource(BaseModel):
    """Where a task's rows have their images, as analyze found them (runtime/data.py reads it).

    The frames the harness builds get a column `column` holding each row's image file, from
    `key` (the table column whose values name the files) through the patterns, relative to the
    task folder: "train/{}.jpg" with key id 42 is train/42.jpg. Without a train table the rows
    are the files themselves (`labels_from`: the label is the part of the name before the
    first "." as in train/cat.1.jpg, or the folder as in train/cat/1.jpg)."""

    column: str = "image"
    key: str | None = None
    train_pattern: str
    test_pattern: str
    labels_from: Literal["table", "file_name", "folder"] = "table"
    train_folder: str | None = None  # labels from names: the folder listed for training rows


class TaskSpec(BaseModel):
    """What the task asks for, as `analyze` understood it from the files and the description."""

    task_dir: str
    task_type: TaskType
    target: str
    id_column: str | None
    metric: str
    greater_is_better: bool
    submission_format: SubmissionFormat
    submission_columns: list[str]
    # Class labels in the order the harness encodes them (0..k-1); for binary, index 1 is
    # the positive class. Strings, so labels like 0/1 and "Yes"/"No" are treated alike.
    classes: list[str] = Field(default_factory=list)
    train_file: str | None = "train.csv"  # None: the rows are image files whose names carry the label
    test_file: str | None = "test.csv"  # None: the test rows are the sample submission's ids (their images)
    sample_submission_file: str | None = "sample_submission.csv"
    # The train columns the models see: every train column but the target and the id that the
    # test file has too. Empty (older runs): all of them.
    feature_columns: list[str] = Field(default_factory=list)
    # Several targets: the train columns predicted (multilabel, multitarget), or the one-hot
    # class columns of a multiclass task (one_hot). Empty: the one `target`.
    targets: list[str] = Field(default_factory=list)
    one_hot: bool = False
    passthrough_columns: list[str] = Field(default_factory=list)  # copied from the test rows into the submission
    images: ImageSource | None = None
    column_metric: str | None = None  # several targets: the metric each column is scored by (auc, rmsle, ...)
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # what was dropped or ignored, said loudly

    @property
    def key_columns(self) -> list[str]:
        from runtime.data import key_columns

        return key_columns(self.model_dump(include={"id_column", "target", "task_type", "targets"}))

    @property
    def target_columns(self) -> list[str]:
        return self.targets or [self.target]


class ImageStats(BaseModel):
    """An image column's files, from their headers (a sample of them decoded)."""

    count: int
    missing: int = 0  # rows whose file does not exist
    unreadable: int = 0  # of the sampled files, those that do not decode
    sampled: int = 0
    width: dict[str, int] = Field(default_factory=dict)  # min, median, max over the sample
    height: dict[str, int] = Field(default_factory=dict)
    modes: dict[str, int] = Field(default_factory=dict)  # PIL mode (RGB, L, RGBA, ...) -> files in the sample
    formats: dict[str, int] = Field(default_factory=dict)  # JPEG, PNG, TIFF, ... -> files in the sample
    examples: list[str] = Field(default_factory=list)  # a few paths relative to the task folder


class ColumnProfile(BaseModel):
    name: str
    kind: ColumnKind
    dtype: str
    missing_share: float
    cardinality: int
    examples: list[str]
    mean_length: float | None = None  # text columns: mean characters per value
    images: ImageStats | None = None  # image columns: what the files are


class TargetProfile(BaseModel):
    kind: Literal["classes", "values"]
    class_counts: dict[str, int] = Field(default_factory=dict)
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    skew: float | None = None


class DataProfile(BaseModel):
    n_train: int
    n_test: int
    columns: list[ColumnProfile]
    target: TargetProfile
    warnings: list[str] = Field(default_factory=list)

    def columns_of(self, *kinds: ColumnKind) -> list[str]:
        return [c.name for c in self.columns if c.kind in kinds]


class ValidationScheme(BaseModel):
    kind: Literal["kfold", "stratified", "group", "time"]
    n_folds: int = 5
    seed: int = 0
    repeats: int = 1  # the folds cut this many times, each with its own seed (random k-fold only)
    # each attempt also fitted on all rows, its test predictions half that fit's, half the folds' mean
    refit: bool = False
    group_column: str | None = None
    time_column: str | None = None


class TrackPlan(BaseModel):
    track: TrackName
    reason: str
    model_family: str
    feature_steps: list[str]
    params: dict[str, Any] = Field(default_factory=dict)
    time_share: float  # fraction of the run's budget
    # other model families tried as attempts after the track's recipe, in order: name -> params
    members: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # members that did not fit the plan: name -> seconds they need; tried after the planned ones
    # while the track's share has that much left (the plan's estimates are pessimistic)
    members_if_time: dict[str, float] = Field(default_factory=dict)


class Blueprint(BaseModel):
    validation: ValidationScheme
    tracks: list[TrackPlan]
    skipped: dict[str, str] = Field(default_factory=dict)  # track -> why not
    budget_s: float
    notes: list[str] = Field(default_factory=list)  # how the plan was decided (the LLM's proposal: kept or why not)


# repair: the offline debug's fix of the failing attempt (a column's kind changed, or the column left out)
# member: another model family of the track's zoo (recipes/members/<name>), tried after its own recipe
AttemptSource = Literal["recipe", "fallback", "llm", "debug", "refine", "repair", "member"]
# pruned: a refine candidate stopped after its first folds, clearly worse than the best
AttemptStatus = Literal["ok", "check_failed", "error", "timeout", "died", "out_of_memory", "pruned"]


class AttemptResult(BaseModel):
    track: str
    attempt: int
    source: AttemptSource
    status: AttemptStatus
    score: float | None = None
    fold_scores: list[float] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    peak_memory_mb: float | None = None
    dir: str  # where features.py, model.py, log.txt, result.json, oof.npy, test.npy live
    member: str | None = None  # the member recipe it ran (source "member")
    # what the modules ran with, defaults included (the recipes record it; runtime/params.py)
    resolved_params: dict[str, Any] = Field(default_factory=dict)
    # one fit's seconds, measured, when the attempt stopped because its folds could not end in time
    fit_seconds: float | None = None
    # the part of duration_s its fit on all rows took (0: none); a refine candidate's folds cost the rest
    refit_s: float = 0.0


class TrackResult(BaseModel):
    track: str
    status: Literal["ok", "failed", "skipped"]
    reason: str = ""
    best_attempt: int | None = None
    score: float | None = None
    attempts: list[AttemptResult] = Field(default_factory=list)

    @property
    def best(self) -> AttemptResult | None:
        for a in self.attempts:
            if a.attempt == self.best_attempt:
                return a
        return None


class EnsembleResult(BaseModel):
    kind: Literal["single", "weighted", "baseline"]
    weights: dict[str, float]  # member name (track or track/attempt) -> weight
    score: float
    oof_path: str
    test_path: str
    reason: str
    # binary tasks scored on labels (accuracy, F1, MCC): P(positive) at or above this is the positive class
    threshold: float = 0.5
    # log loss: the probabilities are raised to this power, renormalised (one over a temperature)
    power: float = 1.0


LLMOutcome = Literal["ok", "parse_error", "http_error", "timeout", "unsupported", "error"]


class LLMCall(BaseModel):
    """One request to the LLM: who asked, what it cost, how it ended (graph/llm.py records it).

    outcome: ok (a valid structured answer), parse_error (the answer did not fit the schema;
    re-asked), http_error / timeout (after the client's own retries), unsupported (the server
    rejected the structured-output method; the next method was tried), error (anything else).
    """

    role: str  # analyze, blueprint, generate, debug, refine
    node: str
    track: str | None = None
    model: str
    method: str | None = None  # json_schema, function_calling, json_mode
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # None where the model's price is not known
    seconds: float = 0.0
    outcome: LLMOutcome = "ok"
    error: str | None = None


# -- refine's search (nodes/refine.py): checkpointed with the run's state -----------------------


class Candidate(BaseModel):
    """One thing to try: the chain's best modules with `params`, or `code` when a module was
    rewritten. `cost` is its expected duration relative to the chain's best."""

    params: dict[str, Any]
    note: str
    code: dict[str, str] | None = None
    cost: float = 1.0
    kind: Literal["move", "tpe", "reseed", "llm", "given"] = "given"
    move: str | None = None  # the parameter a move changes
    step: int = 0
    trial: int | None = None  # the study's trial number (TPE)
    attempt: int = 0
    timeout_s: float = 0.0


class Chain(BaseModel):
    """The search from one base attempt: where it stands and what it has left. Small on purpose:
    every step of refine checkpoints it, so what grows with the candidates (their results, what
    was tried) lives in the run folder (attempt.json, the study), not here."""

    base: int
    member: str | None = None
    current: int  # the attempt the chain stands on (its best so far)
    params: dict[str, Any]
    code_dir: str  # the attempt folder whose modules are the chain's code (a kept rewrite moves it)
    pending: list[tuple[str, int]] = Field(default_factory=list)  # declared steps still to try: (param, step)
    reseed: bool = True
    reseeds: int = 0
    turn: int = 0
    tried: int = 0
    kept: int = 0
    llm_asked: int = 0
    llm_given_up: bool = False
    study: str = ""
    stopped: str | None = None  # why the chain ended: "time", "candidates", "nothing left to try"


def merge_tracks(left: dict[str, TrackResult], right: dict[str, TrackResult]) -> dict[str, TrackResult]:
    """Parallel track branches each write their own key; a later write for a track wins."""
    return {**(left or {}), **(right or {})}


class IMLState(TypedDict, total=False):
    task_dir: str
    run_dir: str
    task: TaskSpec
    profile: DataProfile
    blueprint: Blueprint
    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    ensemble: EnsembleResult
    submission_path: str
    leaderboard: list[dict[str, Any]]
    llm_usage: Annotated[list[LLMCall], operator.add]  # every LLM request of the run, in order


class TrackState(TypedDict, total=False):
    """State of one track's subgraph (generate -> check -> execute -> debug)."""

    run_dir: str
    task: TaskSpec
    profile: DataProfile
    blueprint: Blueprint
    plan: TrackPlan
    code: dict[str, str]  # module name ("features", "model") -> source
    source: AttemptSource
    attempt: int
    last_error: str | None
    fell_back: bool
    # the offline debug's repairs, merged into the plan's params: drop_columns, coerce_columns,
    # and a too slow attempt's cheaper params
    repairs: dict[str, Any]
    # what a too slow attempt's retry needs at the speed measured: its timeout is at least this
    # while the track has no score (a retry that ends beats one more that cannot)
    needs_s: float | None
    member: str | None  # the member recipe the current attempt runs (None: the track's own code)
    attempts: Annotated[list[AttemptResult], operator.add]
    tracks: Annotated[dict[str, TrackResult], merge_tracks]
    llm_usage: Annotated[list[LLMCall], operator.add]
