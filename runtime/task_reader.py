"""A task folder -> TaskSpec, by the rules alone (runtime/task_rules.py) over the files found
(runtime/task_files.py): one target, several targets (one-hot classes, labels, values), or
image files whose names carry the labels; an image task's images attached to its rows.

The analyze node reads a task with it (offline, or to check an LLM's reading); `iml run` and
`iml validate` and the bench read one before any run exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from runtime.data import TaskInputError, label_key, labelled, read_header, read_table
from runtime.metrics import METRICS, get_metric
from runtime.records import ImageSource, SubmissionFormat, TaskSpec, TaskType
from runtime.task_files import KEY_SAMPLE, TaskFiles, image_pattern, images_where, locate_files
from runtime.task_rules import (
    check_rows,
    check_test_ids,
    find_id,
    find_metric,
    find_target,
    identifies_test_rows,
    infer_task_type,
    metric_by_default,
    natural_order,
    order_binary,
    refuse_free_text_target,
    several_targets,
    shown_names,
    single_column_format,
    usable_features,
)


class Overrides(Protocol):
    """What the user said (--target, --id, --metric; graph.settings.Settings has them): each beats the rules."""

    target: str | None
    id_column: str | None
    metric: str | None


MIN_IMAGE_SHARE = 0.8  # of the sampled key values, the share that must name existing files
IMAGE_COLUMN_NAMES = ("image", "image_file", "_image")


def read_task(task_dir: Path, settings: Overrides) -> TaskSpec:
    files = locate_files(task_dir)
    if files.train is None:
        return _read_named_images(task_dir, files, settings)
    reasons: list[str] = []
    warnings: list[str] = []
    train_cols = read_header(files.train, "train file")
    sample_cols = read_header(files.sample, "sample submission") if files.sample is not None else None
    # no test table (images only): the test rows are the sample submission's ids
    test_cols = read_header(files.test, "test file") if files.test is not None else list(sample_cols[:1])
    test_rows = files.test or files.sample
    for name, path in (("train", files.train), ("test", files.test), ("sample submission", files.sample)):
        if path is not None and path.name not in ("train.csv", "test.csv", "sample_submission.csv"):
            reasons.append(f"{name}: read from {path.name}" + (" (the table that holds the targets)" if name == "train" and
                           not path.name.lower().startswith(("train", "labels")) else ""))
    if files.test is None:
        reasons.append(f"test: no test table; the rows are the ids of {files.sample.name}, their images in the task's folders")
    description = files.description

    id_column = find_id(train_cols, test_cols, sample_cols, settings.id_column, reasons,
                         unique_in_test=lambda c: identifies_test_rows(test_rows, c))
    # columns the submission repeats from the test rows (detecting-insults: Date, Comment)
    passthrough = [c for c in (sample_cols or []) if c in test_cols and c != id_column]
    if passthrough:
        reasons.append(f"submission: {', '.join(passthrough)} copied from the test rows, as the sample submission shows")
    sample = read_table(files.sample, "sample submission", keys=[id_column] if id_column else []) if files.sample else None
    several = several_targets(train_cols, test_cols, sample, id_column, settings, passthrough)
    if several:
        return _read_several_targets(task_dir, files, several, id_column, sample, train_cols, test_cols, settings,
                                     reasons, warnings)
    target = find_target(train_cols, test_cols, sample, id_column, description, settings.target, reasons)
    features = usable_features(train_cols, test_cols, [target], id_column, warnings, files)

    metric_name = find_metric(description, settings.metric, reasons)
    y = read_table(files.train, "train file", columns=[target])[target].dropna()
    if y.empty:
        raise TaskInputError(f"target column '{target}' has no values in the train file")
    refuse_free_text_target(y, target)
    task_type = infer_task_type(y, metric_name, sample, target, reasons)
    if metric_name is None:
        metric_name = metric_by_default(task_type, sample, target, y, reasons)
    metric = get_metric(metric_name)
    if task_type not in metric.task_types:
        raise TaskInputError(f"metric '{metric.name}' does not apply to a {task_type} task; pass --metric with one that does")
    check_rows(files, id_column, warnings)

    classes: list[str] = []
    fmt: SubmissionFormat = "label"
    sub_cols = [c for c in (sample.columns if sample is not None else [id_column, target]) if c and c != id_column
                and c not in passthrough]
    if task_type != "regression":
        # Class labels as the exact strings the file holds ("01" stays "01"), so they go out as written.
        exact = read_table(files.train, "train file", keys=[target], columns=[target])[target]
        exact = exact[exact != ""]
        labels = sorted(set(exact), key=natural_order)
        if len(sub_cols) > 1:
            missing = [c for c in labels if c not in sub_cols]
            if missing:
                raise TaskInputError(f"sample submission has columns {sub_cols}, but classes {missing} have no column")
            classes, fmt = [c for c in sub_cols if c in labels], "proba_cols"
            reasons.append("format: one probability column per class, as the sample submission shows")
        else:
            classes = labels
            if task_type == "binary":
                classes = order_binary(labels, exact, description, reasons)
            fmt = single_column_format(sample, sub_cols[0], [label_key(v) for v in y.unique()], metric.needs, reasons)
    return _attach_images(TaskSpec(
        task_dir=str(task_dir.resolve()),
        task_type=task_type,
        target=target,
        id_column=id_column,
        metric=metric.name,
        greater_is_better=metric.greater_is_better,
        submission_format=fmt,
        submission_columns=list(sample.columns) if sample is not None else ([id_column] if id_column else []) + sub_cols,
        passthrough_columns=passthrough,
        classes=classes,
        train_file=files.train.name,
        test_file=files.test.name if files.test is not None else None,
        sample_submission_file=files.sample.name if files.sample is not None else None,
        feature_columns=features,
        reasons=reasons,
        warnings=warnings,
    ), files, train_cols, test_cols)


def _read_several_targets(task_dir, files, targets, id_column, sample, train_cols, test_cols, settings, reasons,
                          warnings) -> TaskSpec:
    """Several value columns in the submission, each a train column: one-hot classes (multiclass
    with their probabilities), several 0/1 labels (multilabel), or several numbers (multitarget)."""
    names = ", ".join(targets)
    frame = labelled(read_table(files.train, "train file", columns=targets), targets)
    if frame.empty:
        raise TaskInputError(f"no train row has a value for every target ({names})")
    not_numeric = [c for c in targets if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    if not_numeric:
        raise TaskInputError(f"the submission asks for {len(targets)} columns ({names}), but train's {', '.join(not_numeric)} "
                             "hold labels, not numbers or 0/1 flags; pass --target NAME for a single target")
    values = frame.astype(float)
    in_unit = bool(((values >= 0) & (values <= 1)).all().all())
    zero_one = in_unit and bool(values.isin([0.0, 1.0]).all().all())
    one_hot = zero_one and bool(np.allclose(values.sum(axis=1), 1.0))
    text_metric = find_metric(files.description, settings.metric, reasons)
    if one_hot:
        task_type: TaskType = "multiclass"
        metric = get_metric(text_metric or "log_loss")
        metric = METRICS[metric.base] if metric.base else metric
        reasons.append(f"type: multiclass; the classes are train's one-hot columns {names}, and the submission wants "
                       "their probabilities")
    else:
        # 0/1 columns are labels; probabilities are labels only when the metric scores labels
        ranked = text_metric is not None and get_metric(text_metric).name in ("auc", "log_loss", "mean_columnwise_auc",
                                                                               "mean_columnwise_log_loss")
        task_type = "multilabel" if zero_one or (in_unit and ranked) else "multitarget"
        base = get_metric(text_metric or ("auc" if task_type == "multilabel" else "rmse"))
        metric = base.columnwise()
        what = "0/1 labels" if task_type == "multilabel" else "numeric targets"
        reasons.append(f"type: {task_type}; {len(targets)} {what} per row ({names}), one column each in the submission")
        reasons.append(f"metric: {metric.name}, the mean over the columns of {metric.base}"
                       + ("" if text_metric else " (the description names none)"))
    if task_type not in metric.task_types:
        raise TaskInputError(f"metric '{metric.name}' does not apply to a {task_type} task; pass --metric with one that does")
    features = usable_features(train_cols, test_cols, targets, id_column, warnings, files)
    check_rows(files, id_column, warnings)
    sub_cols = [c for c in sample.columns if c != id_column]
    return _attach_images(TaskSpec(
        task_dir=str(task_dir.resolve()), task_type=task_type, target=targets[0], id_column=id_column,
        metric=metric.name, greater_is_better=metric.greater_is_better,
        submission_format="proba_cols" if one_hot else "columns",
        submission_columns=([id_column] if id_column else []) + sub_cols,
        classes=list(targets) if one_hot else [], targets=list(targets), one_hot=one_hot,
        column_metric=None if one_hot else metric.base,
        train_file=files.train.name, test_file=files.test.name if files.test is not None else None,
        sample_submission_file=files.sample.name, feature_columns=features, reasons=reasons, warnings=warnings,
    ), files, train_cols, test_cols)


def _attach_images(spec: TaskSpec, files: TaskFiles, train_cols: list[str], test_cols: list[str]) -> TaskSpec:
    """The task with its images: the train column whose values name image files (the id first),
    the folders and suffixes they are found under, and the image column among the features. A
    task whose tables hold no features and no column naming its images is refused in one line."""
    if not files.image_folders:
        return spec
    task_dir = Path(spec.task_dir)
    targets = set(spec.target_columns)
    candidates = [c for c in [spec.id_column, *train_cols] if c and c not in targets]
    for key in dict.fromkeys(candidates):
        values = read_table(files.train, "train file", keys=[key], columns=[key], nrows=KEY_SAMPLE * 5)[key]
        values = [label_key(v) for v in values.dropna().head(KEY_SAMPLE)]
        found = image_pattern(task_dir, values, files.image_folders, "train")
        if found is None or found[1] < MIN_IMAGE_SHARE:
            continue
        test_source = files.test if key in test_cols and files.test is not None else files.sample
        if test_source is None or key not in read_header(test_source, "test rows"):
            continue
        test_values = read_table(test_source, "test rows", keys=[key], columns=[key], nrows=KEY_SAMPLE * 5)[key]
        test_found = image_pattern(task_dir, [label_key(v) for v in test_values.dropna().head(KEY_SAMPLE)],
                                   files.image_folders, "test")
        if test_found is None or test_found[1] < MIN_IMAGE_SHARE:
            raise TaskInputError(f"'{key}' names the training images ({found[0]}), but the test rows' values name no image "
                                 f"files in {', '.join(f'{f}/' for f in files.image_folders)}; put the test images beside them")
        column = _image_column_name([*train_cols, *test_cols])
        images = ImageSource(column=column, key=key, train_pattern=found[0], test_pattern=test_found[0])
        features = [c for c in spec.feature_columns if c != key] + [column]
        reasons = [*spec.reasons, f"images: '{key}' names each row's image file, {found[0]} for training rows and "
                                  f"{test_found[0]} for test rows (column '{column}')"]
        return spec.model_copy(update={"images": images, "feature_columns": features, "reasons": reasons})
    if spec.feature_columns:
        warning = f"{images_where(files.image_folders)} are not used: no column of {files.train.name} names them"
        return spec.model_copy(update={"warnings": [*spec.warnings, warning]})
    raise TaskInputError(f"this is an image task ({images_where(files.image_folders)}), but no column of {files.train.name} "
                         f"names the image files (columns: {shown_names(train_cols)}); give a column whose values are the "
                         "files' names, with or without the extension")


def _image_column_name(taken: list[str]) -> str:
    return next(n for n in (*IMAGE_COLUMN_NAMES, "_image_path") if n not in taken)


def _read_named_images(task_dir: Path, files: TaskFiles, settings: Overrides) -> TaskSpec:
    """A task without a train table whose image files carry their labels (train/cat.1.jpg or
    train/cat/1.jpg): the rows are the files; the sample submission says the id and the
    columns wanted (dogs-vs-cats-redux: id, label = P(dog))."""
    from runtime.data import labelled_files

    named = files.named
    reasons = [f"train: no table; the rows are the images in {named.train_folder}/, the label "
               + ("the folder each is in" if named.labels_from == "folder" else "the part of each file's name before the first '.'")]
    sample = read_table(files.sample, "sample submission", nrows=KEY_SAMPLE * 5) if files.sample is not None else None
    id_column = str(sample.columns[0]) if sample is not None else "id"
    value_cols = [str(c) for c in sample.columns[1:]] if sample is not None else ["label"]
    target = settings.target or (value_cols[0] if len(value_cols) == 1 else "label")
    frame = labelled_files(task_dir, named.model_dump(), target, id_column)
    y = frame[target]
    labels = sorted(set(y), key=natural_order)
    metric_name = find_metric(files.description, settings.metric, reasons)
    if len(labels) < 2:
        raise TaskInputError(f"every image in {named.train_folder}/ has the label '{labels[0]}'; there is nothing to learn")
    task_type: TaskType = "binary" if len(labels) == 2 else "multiclass"
    reasons.append(f"type: {task_type} ({len(labels)} labels in the file names: {shown_names(labels)})")
    if metric_name is None:
        metric_name = metric_by_default(task_type, sample, target, y, reasons)
    metric = get_metric(metric_name)
    if task_type not in metric.task_types:
        raise TaskInputError(f"metric '{metric.name}' does not apply to a {task_type} task; pass --metric with one that does")
    if len(value_cols) > 1:
        missing = [c for c in labels if c not in value_cols]
        if missing:
            raise TaskInputError(f"sample submission has columns {value_cols}, but labels {missing} have no column")
        classes, fmt = [c for c in value_cols if c in labels], "proba_cols"
    else:
        classes = order_binary(labels, y, files.description, reasons) if task_type == "binary" else labels
        fmt = single_column_format(sample, target, labels, metric.needs, reasons)
    test_ids = [label_key(v) for v in read_table(files.sample, "sample submission", keys=[id_column], columns=[id_column],
                                                 nrows=KEY_SAMPLE * 5)[id_column].head(KEY_SAMPLE)] if sample is not None else []
    test_folders = {f: sfx for f, sfx in files.image_folders.items() if not f.startswith(named.train_folder)}
    found = image_pattern(task_dir, test_ids, test_folders, "test") if test_ids else None
    if found is None or found[1] < MIN_IMAGE_SHARE:
        tests = [f for f in test_folders if f.lower().startswith("test")]
        if sample is not None or not tests:
            raise TaskInputError(f"the test images are not found: no folder beside {named.train_folder}/ holds files named "
                                 f"by the sample submission's '{id_column}' values")
        found = (f"{tests[0]}/{{}}{test_folders[tests[0]][0]}", 1.0)
    column = _image_column_name([id_column, target])
    images = named.model_copy(update={"column": column, "test_pattern": found[0]})
    reasons.append(f"images: {named.train_folder}/ for training rows, {found[0]} for test rows (column '{column}')")
    if files.sample is not None:
        check_test_ids(files.sample, id_column)
    return TaskSpec(
        task_dir=str(task_dir.resolve()), task_type=task_type, target=target, id_column=id_column,
        metric=metric.name, greater_is_better=metric.greater_is_better, submission_format=fmt,
        submission_columns=[id_column, *value_cols] if sample is not None else [id_column, target],
        classes=classes, train_file=None, test_file=None,
        sample_submission_file=files.sample.name if files.sample is not None else None,
        feature_columns=[column], images=images, reasons=reasons,
    )
