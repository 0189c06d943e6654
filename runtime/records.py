"""The records of a run: what the task is, what the data holds, the plan, and what each attempt,
track, ensemble and LLM request came to.

Everything here is serialisable (pydantic models), because the checkpointer stores it and the
run folder keeps it as JSON. The graph's states (graph/state.py) hold these records; runtime code
(the harness, the blend, the readers) uses them without knowing about the graph.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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
    # regression: the strictly positive numeric column whose size the target's spread follows
    # (an amount: profit = sales x margin), and its rank correlation with |y - median(y)|
    scale_column: str | None = None
    scale_correlation: float | None = None


class DataProfile(BaseModel):
    n_train: int
    n_test: int
    columns: list[ColumnProfile]
    target: TargetProfile
    warnings: list[str] = Field(default_factory=list)
    # a large table (runtime/columnar.py): the columns' kinds, examples and the warnings come from a
    # seeded sample of this many rows (missing shares, the target and the row counts from all rows;
    # a column distinct on most sampled rows has its cardinality scaled to all rows). None: all rows
    sampled_rows: int | None = None

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


class MeasuredFit(BaseModel):
    """The blueprint's measuring fit of the traditional recipe on samples of a large table (the
    harness's `measure`): what its cost model (runtime/costs.py's `MeasuredCost`) extrapolates."""

    rows: list[int]  # the training rows of each fit
    features_s: list[float]  # Features.fit and the transform of its training rows
    fit_s: list[float]  # Model.fit (early stopping on the valid rows)
    trees: list[int]  # the rounds early stopping kept in each fit
    predict_s: list[float]  # Features.transform + Model.predict of the valid rows, per fit
    valid_rows: int
    peak_mb: list[float]  # the kernel's memory at each fit's peak (its baseline included)
    base_mb: float  # the kernel's memory before the fits, the sample loaded
    sample_mb: float  # the sample's own bytes in the kernel (rows x their compact dtypes)
    seconds: float  # the whole measuring cell


class DataPlan(BaseModel):
    """How a large table's rows are used (the blueprint's, from a measured fit): the kernels read
    the run folder's columnar cache (runtime/columnar.py) and cross-validate `rows` of its `n_rows`
    (a seeded sample when fewer), each fold's fit on the other folds' rows; every choice with its
    reason."""

    n_rows: int  # the training table's rows
    rows: int  # the rows the folds are cut over (oof predictions, scores): a seeded sample when < n_rows
    seed: int = 0
    rounds: int | None = None  # the cap on boosting rounds the plan's time assumes (the plan's n_estimators)
    measured: MeasuredFit | None = None
    estimate_s: float | None = None  # the traditional attempt's seconds at this plan, from the measure
    memory_mb: float | None = None  # a kernel's estimated peak at this plan
    memory_limit_mb: float | None = None  # what a kernel may use: past it, it is stopped and reported out of memory
    reasons: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """The plan in one line, as the progress and the report show it."""
        head = f"fitting on {self.rows:,} of {self.n_rows:,} rows" if self.rows < self.n_rows else \
            f"fitting on all {self.n_rows:,} rows"
        return head + (f": {self.reasons[0]}" if self.reasons else "")


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
    # a member (of `members`) that runs before the track's own recipe: the one that suits the
    # data, or fits the time, where the recipe does not (nodes/blueprint.py: lead_member)
    lead: str | None = None


class BaggingPlan(BaseModel):
    """A long budget's last step before the ensemble: the best attempt of each of the best model
    families of the refined track fitted again with its folds cut `cuts` times, each cut with its own
    seed, every fold model averaged for the test rows (AutoGluon's repeated k-fold bagging). Refine's
    search leaves it `reserve_s`; a bag is kept only when it beats the attempt it bags beyond fold
    noise (runtime/verdict.py)."""

    reserve_s: float
    cuts: int
    families: int


class Blueprint(BaseModel):
    validation: ValidationScheme
    tracks: list[TrackPlan]
    skipped: dict[str, str] = Field(default_factory=dict)  # track -> why not
    budget_s: float
    notes: list[str] = Field(default_factory=list)  # how the plan was decided (the LLM's proposal: kept or why not)
    # how many times slower than the cost constants the machine computed when the plan was made
    # (runtime/costs.py: measure_slowness); the plan's estimates and the members' deadlines are scaled by it
    slowness: float = 1.0
    data: DataPlan | None = None  # a large table: which rows, read how, measured how; None: all rows, read whole
    bagging: BaggingPlan | None = None  # long budgets: the bags after refine's search (runtime/budget.py)
    stack: bool = False  # long budgets: the ensemble weighs a stacker over the model families too (runtime/stack.py)


# repair: the offline debug's fix of the failing attempt (a column's kind changed, or the column left out)
# member: another model family of the track's zoo (recipes/members/<name>), tried after its own recipe
# bag: a long budget's last step, the best attempt of a model family with its folds cut several times
AttemptSource = Literal["recipe", "fallback", "llm", "debug", "refine", "repair", "member", "bag"]
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
    # one fold's wall seconds: measured over its folds (scored, or stopped as too slow after its
    # first), or predicted by its check when that stopped it before any fold (status "timeout")
    fit_seconds: float | None = None
    # the part of duration_s its fit on all rows took (0: none); a refine candidate's folds cost the rest
    refit_s: float = 0.0
    # a refine candidate that beat its chain's base beyond fold noise: only then does its score
    # stand as a result (runtime/verdict.py)
    kept: bool = False


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
    # stacked: a second-level model over each model family's out-of-fold predictions (runtime/stack.py)
    kind: Literal["single", "weighted", "stacked", "baseline"]
    weights: dict[str, float]  # member name (track or track/attempt) -> weight (stacked: its share of the stacker's weights)
    score: float
    oof_path: str
    test_path: str
    reason: str
    # binary tasks scored on labels (accuracy, F1, MCC): P(positive) at or above this is the positive class
    threshold: float = 0.5
    # log loss: the probabilities are raised to this power, renormalised (one over a temperature)
    power: float = 1.0
    # stacked: the stacker the test predictions come from: {"link", "weights": member -> weight, "bias"}
    stacker: dict[str, Any] | None = None
    # what was weighed beside the result: the blend, the stacker; each with its score and whether it was kept
    candidates: list[dict[str, Any]] = Field(default_factory=list)


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
