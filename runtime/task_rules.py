"""The rules that read a task from its files: which column is the id, the target, the metric,
the task type, the positive class, the submission's format, the usable features, and whether
the test rows and the sample submission agree.

Each rule decides one thing from the headers and values, and records why in `reasons` (or a
loud line in `warnings`), so the report can say how the task was read; what cannot be decided
is refused in one line (TaskInputError) that says what to do. runtime/task_reader.py applies
them; offline they decide everything, with an LLM they check its answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from runtime.data import TaskInputError, label_key, read_header, read_table
from runtime.metrics import default_metric, get_metric, metric_from_text
from runtime.records import SubmissionFormat, TaskType
from runtime.task_files import TaskFiles

POSITIVE_LABELS = ("1", "yes", "true", "y", "t", "positive", "pos")
ID_NAMES = ("id", "index", "key", "row_id", "rowid")
MOST_FEATURES_MISSING = 0.5  # a test file without more than this share of the features is refused


def find_id(train_cols: list[str], test_cols: list[str], sample_cols: list[str] | None, given: str | None, reasons: list[str],
            unique_in_test=None) -> str | None:
    if given:
        if given not in test_cols:
            raise TaskInputError(f"id column '{given}' is not in the test file; its columns are {', '.join(test_cols[:10])}")
        reasons.append(f"id: '{given}' from --id")
        return given
    if sample_cols is not None:
        shared = [c for c in sample_cols if c in test_cols]
        ids = [c for c in shared if unique_in_test is None or unique_in_test(c)]
        if ids:
            reasons.append(f"id: '{ids[0]}' is the column test and sample submission share" +
                           (" with a distinct value on every row" if len(shared) > 1 else ""))
            return ids[0]
        if shared:
            reasons.append(f"id: none; the columns test and sample submission share ({', '.join(shared)}) repeat values, "
                           "so they are copied from the test rows, and rows are matched by their order")
            return None
    for col in test_cols:
        if _named_like_id(col):
            reasons.append(f"id: '{col}' is named like an id")
            return col
    reasons.append("id: none found; rows are identified by their order")
    return None


def identifies_test_rows(test: Path, column: str) -> bool:
    """Whether a column is meant to identify the test rows: values that are keys (000123, t3_abc),
    not sentences (a unique comment is text), and named like an id or nearly distinct on every
    row. An id column with a few repeats is still the id (and is refused for them later); a
    column of dates that repeat is not."""
    values = read_table(test, "test file", keys=[column], columns=[column])[column]
    distinct = values.nunique()
    if _named_like_id(column) and distinct == len(values):
        return True  # taxi fares' `key`, "2015-01-27 13:08:24.0000002": a distinct value per row under an id's name
    keylike = not values.astype(str).str.contains(r"\s").mean() > 0.5
    return keylike and (_named_like_id(column) or distinct >= 0.9 * len(values))


def _named_like_id(column: str) -> bool:
    return column.lower() in ID_NAMES or column.lower().endswith("_id") or column.endswith("Id")


def find_target(train_cols, test_cols, sample, id_column, description, given, reasons) -> str:
    if given:
        if given not in train_cols:
            raise TaskInputError(f"target '{given}' is not a column of the train file; its columns are {', '.join(train_cols[:10])}")
        reasons.append(f"target: '{given}' from --target")
        return given
    only_train = [c for c in train_cols if c not in test_cols and c != id_column]
    if len(only_train) == 1:
        reasons.append(f"target: '{only_train[0]}' is the one train column missing from test")
        return only_train[0]
    if sample is not None:
        in_sample = [c for c in only_train if c in sample.columns]
        if len(in_sample) == 1:
            reasons.append(f"target: '{in_sample[0]}' is missing from test and named in the sample submission")
            return in_sample[0]
    mentioned = [c for c in only_train if c.lower() in description.lower()]
    if len(mentioned) == 1:
        reasons.append(f"target: '{mentioned[0]}' is missing from test and named in the description")
        return mentioned[0]
    if not only_train:
        raise TaskInputError("cannot tell the target: every train column is also in test; pass --target NAME")
    raise TaskInputError(f"cannot tell the target among {', '.join(only_train[:8])}; pass --target NAME")


def several_targets(train_cols, test_cols, sample, id_column, settings, passthrough=()) -> list[str]:
    """The sample submission's value columns, when there are several and train holds each of them
    (and test none): several targets per row. Else [] (one target, today's path)."""
    if sample is None or settings.target:
        return []
    values = [c for c in sample.columns if c != id_column and c not in passthrough]
    targets = [c for c in values if c in train_cols and c not in test_cols]
    return targets if len(values) > 1 and targets == values else []


def refuse_free_text_target(y: pd.Series, target: str) -> None:
    """A target of free text (a distinct string on most rows) asks for text to be written, not
    for a class or a value to be predicted: a sequence-to-sequence task."""
    if pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y) or len(y) < 50:
        return
    distinct = y.astype(str).nunique()
    if distinct > 0.5 * len(y):
        raise TaskInputError(f"this is a sequence-to-sequence task: the target '{target}' is free text ({distinct:,} distinct "
                             f"values in {len(y):,} rows), not classes or numbers; iml does not solve it yet")


def find_metric(description: str, given: str | None, reasons: list[str]) -> str | None:
    if given:
        name = get_metric(given).name  # raises the one-line unknown-metric error
        reasons.append(f"metric: {name} from --metric")
        return name
    found = metric_from_text(description)
    if found:
        reasons.append(f"metric: {found}, named in the description")
    return found


def infer_task_type(y: pd.Series, metric_name: str | None, sample: pd.DataFrame | None, target: str, reasons: list[str]) -> TaskType:
    n_unique = y.nunique()
    metric = get_metric(metric_name) if metric_name else None
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    integral = numeric and bool((y.astype(float) % 1 == 0).all())
    if metric is not None and metric.task_types == frozenset({"regression"}):
        if not numeric:
            raise TaskInputError(f"metric '{metric.name}' needs a numeric target, but '{target}' holds labels")
        reasons.append(f"type: regression, because {metric.name} scores values")
        return "regression"
    classification = metric is not None and "regression" not in metric.task_types
    if not classification:
        if not numeric:
            classification = True
        elif integral and n_unique <= 20 and n_unique < 0.05 * len(y) + 3:
            classification = True
        elif sample is not None and len(sample.columns) > 2:
            classification = True
    if not classification:
        reasons.append(f"type: regression ('{target}' has {n_unique} distinct numeric values)")
        return "regression"
    if n_unique < 2:
        raise TaskInputError(f"target '{target}' has a single class; there is nothing to learn")
    kind: TaskType = "binary" if n_unique == 2 else "multiclass"
    reasons.append(f"type: {kind} ('{target}' has {n_unique} classes)")
    return kind


def metric_by_default(task_type: TaskType, sample: pd.DataFrame | None, target: str, y: pd.Series, reasons: list[str]) -> str:
    """No metric named: a sample submission of labels asks for labels, so score labels."""
    if task_type != "regression" and sample is not None and target in sample.columns:
        shown = {label_key(v) for v in sample[target].dropna()}
        if shown and shown <= {label_key(v) for v in y.unique()}:
            reasons.append("metric: the description names none and the sample submission holds labels; accuracy")
            return "accuracy"
    name = default_metric(task_type)
    reasons.append(f"metric: the description names none; default for {task_type} is {name}")
    return name


def order_binary(labels: list[str], y: pd.Series, description: str, reasons: list[str]) -> list[str]:
    """[negative, positive]: the positive class is the one a probability column describes."""
    for label in labels:
        if label.lower() in POSITIVE_LABELS:
            reasons.append(f"positive class: '{label}'")
            return [c for c in labels if c != label] + [label]
    text = description.lower()
    said = [lab for lab in labels if quoted(lab, text)]
    if len(said) == 1:
        reasons.append(f"positive class: '{said[0]}', quoted in the description")
        return [c for c in labels if c != said[0]] + said
    if len(said) > 1:
        # both quoted ("PD" and "control"): the one quoted where the page speaks of what the
        # submission's probability is of; the minority class would be a guess (control was)
        near = {lab for sentence in re.split(r"(?<=[.!?:])\s+|\n+", text) if any(w in sentence for w in PROBABILITY_WORDS)
                for lab in said if quoted(lab, sentence)}
        if len(near) == 1:
            [label] = near
            reasons.append(f"positive class: '{label}', quoted where the description speaks of the probability")
            return [c for c in labels if c != label] + [label]
    counts = y.map(label_key).value_counts()
    minority = str(counts.idxmin())
    reasons.append(f"positive class: '{minority}', the minority class")
    return [c for c in labels if c != minority] + [minority]


PROBABILITY_WORDS = ("probab", "likelihood", "positive class", "chance")


def quoted(label: str, text: str) -> bool:
    """Whether lower-cased `text` quotes the label ('...', "..." or `...`)."""
    low = label.lower()
    return f"'{low}'" in text or f'"{low}"' in text or f"`{low}`" in text


def single_column_format(sample, column, labels, needs, reasons) -> SubmissionFormat:
    if needs == "proba":
        reasons.append("format: the positive class's probability (the metric ranks scores)")
        return "proba"
    if sample is not None:
        values = sample[column].dropna()
        as_labels = {label_key(v) for v in values}
        if as_labels and not as_labels <= set(labels) and pd.api.types.is_float_dtype(values):
            reasons.append("format: a probability, as the sample submission's values show")
            return "proba"
    reasons.append("format: class labels")
    return "label"


def natural_order(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def usable_features(train_cols: list[str], test_cols: list[str], targets: list[str], id_column: str | None,
                    warnings: list[str], files: TaskFiles | None = None) -> list[str]:
    """The train columns the models may use: those the test file has too. Test-only columns are
    ignored; train columns missing from test are dropped, loudly, and a test file that lacks most
    of them is refused: predictions from columns that are not there would be worthless. With
    images (the image column is added later) the table may have no feature column at all."""
    candidates = [c for c in train_cols if c not in (*targets, id_column)]
    if files is not None and files.image_folders and files.test is None:
        return []  # no test table: the images are the features
    test_only = [c for c in test_cols if c not in train_cols and c != id_column]
    if test_only:
        warnings.append(f"ignored {len(test_only)} column(s) that only the test file has: {shown_names(test_only)}")
    missing = [c for c in candidates if c not in test_cols]
    if candidates and len(missing) > MOST_FEATURES_MISSING * len(candidates):
        raise TaskInputError(f"the test file lacks {len(missing)} of the {len(candidates)} feature columns of train "
                             f"({shown_names(missing)}): predictions would be made without most of the signal; give a test file "
                             "with the train file's columns")
    if missing:
        warnings.append(f"DROPPED {len(missing)} train column(s) that the test file lacks: {shown_names(missing)}; the models "
                        "are trained without them")
    features = [c for c in candidates if c in test_cols]
    if not features and not (files is not None and files.image_folders):
        raise TaskInputError("train and test share no feature column; nothing can be learnt that applies to the test rows")
    return features


def check_test_ids(test: Path, id_column: str) -> pd.Series:
    ids = read_table(test, "test file", keys=[id_column], columns=[id_column])[id_column]
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        raise TaskInputError(f"the test file has {ids.duplicated().sum()} repeated id(s) in '{id_column}' "
                             f"(e.g. {_shown(repeated.unique())}); each test row needs its own id")
    return ids


def check_rows(files: TaskFiles, id_column: str | None, warnings: list[str]) -> None:
    """The test rows have distinct ids, and the sample submission asks for rows the test file has.

    The sample submission is the format the task asks for, its ids the rows the grader scores, so
    against the test file's ids (exact strings on both sides):
    - the same ids, in any order: the submission follows the sample's order;
    - only some of the test's ids, nothing else: those are the rows asked for (a test file may hold
      rows that are not scored); the submission holds them, and a loud warning says how many test
      rows are left out (runtime/submission.py's `ids_asked_for` decides the same from the files);
    - any id the test file lacks (none of them match, or only some): refused, since those rows
      have no features to be predicted from, and a submission of the test's ids would not be the
      one asked for; so is a sample that repeats an id;
    - no id column: rows are matched by position, so a sample of another length than the test
      file is said loudly; the submission has one row per test row, in the test file's order."""
    if files.test is None:  # the test rows are the sample submission's ids
        if id_column:
            check_test_ids(files.sample, id_column)
        return
    if not id_column:
        if files.sample is not None:
            n_test, n_sample = (len(read_table(path, what, columns=read_header(path, what)[:1]))
                                for path, what in ((files.test, "test file"), (files.sample, "sample submission")))
            if n_test != n_sample:
                warnings.append(f"ROWS BY POSITION: the sample submission has {n_sample} rows and the test file {n_test}, "
                                f"and no id column ties them; the submission has one row per test row, in its order")
        return
    test_ids = check_test_ids(files.test, id_column)
    if files.sample is None or id_column not in read_header(files.sample, "sample submission"):
        return
    sample_ids = read_table(files.sample, "sample submission", keys=[id_column], columns=[id_column])[id_column]
    known = set(test_ids)
    unknown = sample_ids[~sample_ids.isin(known)].unique()
    if len(unknown) == sample_ids.nunique():
        alike = " (they are the same ids written differently: write them alike in both files)" \
            if {_loose_id(v) for v in sample_ids} == {_loose_id(v) for v in test_ids} else ""
        raise TaskInputError(f"none of the sample submission's {sample_ids.nunique()} ids in '{id_column}' (e.g. "
                             f"{_shown(sample_ids.unique())}) is an id of the test file (e.g. {_shown(test_ids)}){alike}: "
                             f"which rows the submission must hold cannot be told; give the sample submission that goes "
                             f"with {files.test.name}")
    if len(unknown):
        raise TaskInputError(f"the sample submission lists {len(unknown)} id(s) in '{id_column}' that the test file lacks "
                             f"(e.g. {_shown(unknown)}): those rows have no features to predict from; give the test file "
                             f"that holds them, or a sample submission of {files.test.name}'s ids")
    repeated = sample_ids[sample_ids.duplicated()].unique()
    if len(repeated):
        raise TaskInputError(f"the sample submission repeats {len(repeated)} id(s) in '{id_column}' (e.g. {_shown(repeated)});"
                             " each row of the submission needs its own id")
    left_out = test_ids[~test_ids.isin(set(sample_ids))]
    if len(left_out):
        warnings.append(f"LEFT OUT {len(left_out)} of the test file's {len(test_ids)} rows (e.g. {_shown(left_out)}): the "
                        f"sample submission lists {len(sample_ids)} of its ids, and the submission holds those rows, as "
                        "the sample asks")


def _shown(values, limit: int = 3) -> str:
    return ", ".join(repr(v) for v in list(values)[:limit])


def _loose_id(value: str) -> str:
    """An id as a number where it reads as one ('000123', '123' and '123.0' alike), to tell a user
    that two files write the same ids differently."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value).strip()
    return str(int(number)) if number.is_integer() else repr(number)


def shown_names(columns: list[str], limit: int = 6) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", … ({len(columns) - limit} more)" if len(columns) > limit else "")
