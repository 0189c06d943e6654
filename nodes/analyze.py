"""analyze: the task folder -> TaskSpec.

Offline the rules below decide everything; with an LLM they check its answer against the
files. Every rule records why it decided, so the report can say how the task was read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from langgraph.runtime import Runtime

from graph.context import RunContext, Settings
from graph.llm import client_for
from graph.state import IMLState
from runtime.data import (
    COMPRESSIONS,
    IMAGE_SUFFIXES,
    TaskInputError,
    find_sample_submission,
    find_table,
    label_key,
    labelled,
    read_header,
    read_table,
)
from runtime.metrics import METRICS, default_metric, get_metric, metric_from_text
from runtime.records import ImageSource, SubmissionFormat, TaskSpec, TaskType

POSITIVE_LABELS = ("1", "yes", "true", "y", "t", "positive", "pos")
ID_NAMES = ("id", "index", "key", "row_id", "rowid")


def analyze(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    client = client_for(runtime.context)
    llm_update: dict = {}
    if client is None:
        task = read_task(Path(state["task_dir"]), runtime.context.settings)
    else:
        task, calls = read_task_with_llm(Path(state["task_dir"]), runtime.context.settings, client, runtime.context.events)
        llm_update = {"llm_usage": calls}
    runtime.context.events.emit("task", **task.model_dump(include={"task_type", "target", "metric", "id_column", "warnings"}))
    Path(state["run_dir"], "task.json").write_text(task.model_dump_json(indent=2))
    return {"task": task, **llm_update}


MOST_FEATURES_MISSING = 0.5  # a test file without more than this share of the features is refused


@dataclass
class TaskFiles:
    train: Path | None  # None: the rows are image files whose names carry the label (`named`)
    test: Path | None  # None: the test rows are the sample submission's ids, their images in a folder
    sample: Path | None
    description: str
    image_folders: dict[str, list[str]] = field(default_factory=dict)  # folder -> image suffixes seen in it
    named: ImageSource | None = None  # training rows from file names (train/cat.1.jpg) or folders (train/cat/1.jpg)


AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".aif", ".aiff", ".ogg", ".m4a", ".au")
# submission columns that hold boxes, masks or run-length encodings, not one value per row
DETECTION_COLUMNS = ("predictionstring", "encodedpixels", "bbox", "boxes", "rle")
MAX_FILES_LOOKED_AT = 5000
ENTRIES_PER_FOLDER = 400  # a folder's first entries tell what it holds; 200k files need not be listed
IMAGE_COLUMN_NAMES = ("image", "image_file", "_image")
KEY_SAMPLE = 40  # key values tried against the folders when looking for the image files
_COMPRESSED = ", ".join(COMPRESSIONS)


def locate_files(task_dir: Path) -> TaskFiles:
    """The task's tables under their usual names, in any format iml reads, and its image folders;
    a shape iml cannot do yet (audio, image-to-image, detection) is named in one line instead."""
    if not task_dir.is_dir():
        raise TaskInputError(f"task folder not found: {task_dir}")
    sample = find_sample_submission(task_dir)
    folders = image_folders(task_dir)
    unsupported = unsupported_shape(task_dir, sample, folders)
    if unsupported:
        raise TaskInputError(unsupported)
    description = next((p.read_text(errors="replace") for p in (task_dir / "description.md", task_dir / "description.txt")
                        if p.is_file()), "")
    train = find_table(task_dir, "train", "labels", "train_labels")
    test = find_table(task_dir, "test")
    if train is None:
        train = _table_holding_the_targets(task_dir, sample)
    named = None
    if train is None and folders:
        named = _labels_in_names(task_dir, folders)
    if train is None and named is None:
        if folders:
            raise TaskInputError(f"this is an image task ({_where(folders)}), but no table gives the training labels and "
                                 "the file names carry none: add train.csv (or labels.csv) with a column naming each image "
                                 "and its label, or name the files label.N.jpg, or put them in one folder per label")
        raise TaskInputError(f"train file not found in {task_dir}: expected train.csv or labels.csv (or .tsv, .json, .jsonl, "
                             f".parquet, each possibly compressed: {_COMPRESSED})")
    if test is None and not folders:
        where = f" (the sample submission {sample.name} lists the test ids, but their features are in no table)" if sample else ""
        raise TaskInputError(f"test file not found in {task_dir}: expected test.csv (or .tsv, .json, .jsonl, .parquet, each "
                             f"possibly compressed: {_COMPRESSED}){where}")
    if test is None and sample is None and named is None:
        raise TaskInputError(f"this is an image task ({_where(folders)}) without a test table: add the sample submission "
                             "(sample_submission.csv) that lists the test ids")
    return TaskFiles(train, test, sample, description, image_folders=folders, named=named)


def image_folders(task_dir: Path, depth: int = 3) -> dict[str, list[str]]:
    """Folders (relative to the task, "" for itself) holding image files -> the suffixes seen, as
    written (".jpg", ".JPG"), from each folder's first entries."""
    found: dict[str, list[str]] = {}
    looked = 0

    def walk(folder: Path, level: int) -> None:
        nonlocal looked
        subfolders = []
        try:
            entries = os.scandir(folder)
        except OSError:
            return
        with entries:
            for n, entry in enumerate(entries):
                if n >= ENTRIES_PER_FOLDER or looked >= MAX_FILES_LOOKED_AT:
                    break
                looked += 1
                if entry.name.startswith(".") or entry.name == "__MACOSX":
                    continue
                if entry.is_dir():
                    subfolders.append(Path(entry.path))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    rel = folder.relative_to(task_dir).as_posix()
                    suffixes = found.setdefault("" if rel == "." else rel, [])
                    suffix = os.path.splitext(entry.name)[1]
                    if suffix not in suffixes:
                        suffixes.append(suffix)
        if level < depth:
            for sub in sorted(subfolders):
                walk(sub, level + 1)

    walk(task_dir, 0)
    return found


def _where(folders: dict[str, list[str]]) -> str:
    names = ", ".join(f"{f or '.'}/" for f in list(folders)[:3]) + (", …" if len(folders) > 3 else "")
    return f"images in {names}"


def unsupported_shape(task_dir: Path, sample: Path | None, folders: dict[str, list[str]]) -> str | None:
    """One line naming a task shape iml does not solve yet, from the files alone (else None)."""
    audio: dict[str, int] = {}
    for n, path in enumerate(p for p in task_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if n >= MAX_FILES_LOOKED_AT:
            break
        if path.suffix.lower() in AUDIO_SUFFIXES:
            audio[path.suffix.lower()] = audio.get(path.suffix.lower(), 0) + 1
    if audio:
        return (f"this is an audio task ({sum(audio.values())} {', '.join(audio)} files): iml solves tables, text and "
                "images, not sound, yet")
    if sample is not None:
        columns = [c.lower() for c in read_header(sample, "sample submission")]
        found = [c for c in columns if c in DETECTION_COLUMNS]
        if found:
            return (f"this is a detection / segmentation task (the submission's '{found[0]}' column holds boxes or masks, "
                    "not one value per row): iml does not solve it yet")
    named = [f for f in folders if any(w in f.lower().rsplit("/", 1)[-1] for w in ("clean", "mask", "target", "output"))]
    for folder in named:
        stems = _stems(task_dir / folder)
        twins = [f for f in folders if f != folder and not f.startswith(folder + "/") and stems & _stems(task_dir / f)]
        if twins:
            return (f"this is an image-to-image task ({twins[0]}/ and {folder}/ hold images of the same names): "
                    "iml does not solve it yet")
    return None


def _stems(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {os.path.splitext(e.name)[0] for _, e in zip(range(ENTRIES_PER_FOLDER), entries) if e.is_file()}


def _labels_in_names(task_dir: Path, folders: dict[str, list[str]]) -> ImageSource | None:
    """No table of labels: a training folder whose files' names start with their label
    (train/cat.1.jpg, train/dog.2.jpg) or whose subfolders are the labels (train/cat/1.jpg)."""
    train = [f for f in folders if f.split("/")[0].lower().startswith("train")]
    parents = sorted({f.rsplit("/", 1)[0] for f in train if "/" in f})
    for parent in parents:  # one folder per label: train/cat/, train/dog/
        labels = [f for f in train if f.rsplit("/", 1)[0] == parent]
        if len(labels) >= 2:
            return ImageSource(train_pattern=f"{parent}/{{}}", test_pattern="", labels_from="folder", train_folder=parent)
    for folder in train:
        with os.scandir(task_dir / folder) as entries:
            names = [e.name for _, e in zip(range(ENTRIES_PER_FOLDER), entries) if e.is_file()]
        prefixes = [n.split(".")[0] for n in names if n.count(".") >= 2]
        distinct = set(prefixes)
        if len(prefixes) >= 0.9 * len(names) and 2 <= len(distinct) <= max(2, len(prefixes) // 5):
            return ImageSource(train_pattern=f"{folder}/{{}}", test_pattern="", labels_from="file_name", train_folder=folder)
    return None


def image_pattern(task_dir: Path, values: list[str], folders: dict[str, list[str]], prefer: str) -> tuple[str, float] | None:
    """The pattern ("train/{}.jpg") under which most of `values` name existing image files, and
    the share they are; folders whose name starts with `prefer` (train, test) first on a tie."""
    values = [v for v in values if v][:KEY_SAMPLE]
    if not values:
        return None
    best: tuple[float, int, str] | None = None
    for folder, suffixes in folders.items():
        base = f"{folder}/" if folder else ""
        tail = folder.rsplit("/", 1)[-1].lower()
        rank = 1 if tail.startswith(prefer) or folder.lower().startswith(prefer) else 0
        for suffix in ["", *suffixes]:
            hits = sum((task_dir / f"{base}{v}{suffix}").is_file() for v in values)
            if hits and (best is None or (hits, rank) > (best[0], best[1])):
                best = (hits, rank, f"{base}{{}}{suffix}")
    if best is None:
        return None
    return best[2], best[0] / len(values)


def _image_column_name(taken: list[str]) -> str:
    return next(n for n in (*IMAGE_COLUMN_NAMES, "_image_path") if n not in taken)


def _table_holding_the_targets(task_dir: Path, sample: Path | None) -> Path | None:
    """No train.* or labels.*: the one other table that holds the sample submission's value columns."""
    if sample is None:
        return None
    wanted = set(read_header(sample, "sample submission")[1:])
    found = []
    for path in sorted(task_dir.iterdir()):
        if path == sample or not path.is_file() or find_table(task_dir, path.name.split(".")[0]) != path:
            continue
        if path.name.split(".")[0].lower() in ("test", "description"):
            continue
        try:
            if wanted and wanted <= set(read_header(path, "table")):
                found.append(path)
        except TaskInputError:
            continue
    return found[0] if len(found) == 1 else None


def read_task(task_dir: Path, settings: Settings) -> TaskSpec:
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

    id_column = _find_id(train_cols, test_cols, sample_cols, settings.id_column, reasons,
                         unique_in_test=lambda c: _unique(test_rows, c))
    # columns the submission repeats from the test rows (detecting-insults: Date, Comment)
    passthrough = [c for c in (sample_cols or []) if c in test_cols and c != id_column]
    if passthrough:
        reasons.append(f"submission: {', '.join(passthrough)} copied from the test rows, as the sample submission shows")
    sample = read_table(files.sample, "sample submission", keys=[id_column] if id_column else []) if files.sample else None
    several = _several_targets(train_cols, test_cols, sample, id_column, settings, passthrough)
    if several:
        return _read_several_targets(task_dir, files, several, id_column, sample, train_cols, test_cols, settings,
                                     reasons, warnings)
    target = _find_target(train_cols, test_cols, sample, id_column, description, settings.target, reasons)
    features = _usable_features(train_cols, test_cols, [target], id_column, warnings, files)

    metric_name = _find_metric(description, settings.metric, reasons)
    y = read_table(files.train, "train file", columns=[target])[target].dropna()
    if y.empty:
        raise TaskInputError(f"target column '{target}' has no values in the train file")
    _refuse_free_text_target(y, target)
    task_type = _task_type(y, metric_name, sample, target, reasons)
    if metric_name is None:
        metric_name = _default_metric(task_type, sample, target, y, reasons)
    metric = get_metric(metric_name)
    if task_type not in metric.task_types:
        raise TaskInputError(f"metric '{metric.name}' does not apply to a {task_type} task; pass --metric with one that does")
    _check_rows(files, id_column, warnings)

    classes: list[str] = []
    fmt: SubmissionFormat = "label"
    sub_cols = [c for c in (sample.columns if sample is not None else [id_column, target]) if c and c != id_column
                and c not in passthrough]
    if task_type != "regression":
        # Class labels as the exact strings the file holds ("01" stays "01"), so they go out as written.
        exact = read_table(files.train, "train file", keys=[target], columns=[target])[target]
        exact = exact[exact != ""]
        labels = sorted(set(exact), key=_natural)
        if len(sub_cols) > 1:
            missing = [c for c in labels if c not in sub_cols]
            if missing:
                raise TaskInputError(f"sample submission has columns {sub_cols}, but classes {missing} have no column")
            classes, fmt = [c for c in sub_cols if c in labels], "proba_cols"
            reasons.append("format: one probability column per class, as the sample submission shows")
        else:
            classes = labels
            if task_type == "binary":
                classes = _order_binary(labels, exact, description, reasons)
            fmt = _single_column_format(sample, sub_cols[0], [label_key(v) for v in y.unique()], metric.needs, reasons)
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


def _several_targets(train_cols, test_cols, sample, id_column, settings, passthrough=()) -> list[str]:
    """The sample submission's value columns, when there are several and train holds each of them
    (and test none): several targets per row. Else [] (one target, today's path)."""
    if sample is None or settings.target:
        return []
    values = [c for c in sample.columns if c != id_column and c not in passthrough]
    targets = [c for c in values if c in train_cols and c not in test_cols]
    return targets if len(values) > 1 and targets == values else []


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
    text_metric = _find_metric(files.description, settings.metric, reasons)
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
    features = _usable_features(train_cols, test_cols, targets, id_column, warnings, files)
    _check_rows(files, id_column, warnings)
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


MIN_IMAGE_SHARE = 0.8  # of the sampled key values, the share that must name existing files


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
        warning = f"{_where(files.image_folders)} are not used: no column of {files.train.name} names them"
        return spec.model_copy(update={"warnings": [*spec.warnings, warning]})
    raise TaskInputError(f"this is an image task ({_where(files.image_folders)}), but no column of {files.train.name} "
                         f"names the image files (columns: {_names(train_cols)}); give a column whose values are the "
                         "files' names, with or without the extension")


def _read_named_images(task_dir: Path, files: TaskFiles, settings: Settings) -> TaskSpec:
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
    labels = sorted(set(y), key=_natural)
    metric_name = _find_metric(files.description, settings.metric, reasons)
    if len(labels) < 2:
        raise TaskInputError(f"every image in {named.train_folder}/ has the label '{labels[0]}'; there is nothing to learn")
    task_type: TaskType = "binary" if len(labels) == 2 else "multiclass"
    reasons.append(f"type: {task_type} ({len(labels)} labels in the file names: {_names(labels)})")
    if metric_name is None:
        metric_name = _default_metric(task_type, sample, target, y, reasons)
    metric = get_metric(metric_name)
    if task_type not in metric.task_types:
        raise TaskInputError(f"metric '{metric.name}' does not apply to a {task_type} task; pass --metric with one that does")
    if len(value_cols) > 1:
        missing = [c for c in labels if c not in value_cols]
        if missing:
            raise TaskInputError(f"sample submission has columns {value_cols}, but labels {missing} have no column")
        classes, fmt = [c for c in value_cols if c in labels], "proba_cols"
    else:
        classes = _order_binary(labels, y, files.description, reasons) if task_type == "binary" else labels
        fmt = _single_column_format(sample, target, labels, metric.needs, reasons)
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
        _check_test_ids(files.sample, id_column)
    return TaskSpec(
        task_dir=str(task_dir.resolve()), task_type=task_type, target=target, id_column=id_column,
        metric=metric.name, greater_is_better=metric.greater_is_better, submission_format=fmt,
        submission_columns=[id_column, *value_cols] if sample is not None else [id_column, target],
        classes=classes, train_file=None, test_file=None,
        sample_submission_file=files.sample.name if files.sample is not None else None,
        feature_columns=[column], images=images, reasons=reasons,
    )


def _refuse_free_text_target(y: pd.Series, target: str) -> None:
    """A target of free text (a distinct string on most rows) asks for text to be written, not
    for a class or a value to be predicted: a sequence-to-sequence task."""
    if pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y) or len(y) < 50:
        return
    distinct = y.astype(str).nunique()
    if distinct > 0.5 * len(y):
        raise TaskInputError(f"this is a sequence-to-sequence task: the target '{target}' is free text ({distinct:,} distinct "
                             f"values in {len(y):,} rows), not classes or numbers; iml does not solve it yet")


def _usable_features(train_cols: list[str], test_cols: list[str], targets: list[str], id_column: str | None,
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
        warnings.append(f"ignored {len(test_only)} column(s) that only the test file has: {_names(test_only)}")
    missing = [c for c in candidates if c not in test_cols]
    if candidates and len(missing) > MOST_FEATURES_MISSING * len(candidates):
        raise TaskInputError(f"the test file lacks {len(missing)} of the {len(candidates)} feature columns of train "
                             f"({_names(missing)}): predictions would be made without most of the signal; give a test file "
                             "with the train file's columns")
    if missing:
        warnings.append(f"DROPPED {len(missing)} train column(s) that the test file lacks: {_names(missing)}; the models "
                        "are trained without them")
    features = [c for c in candidates if c in test_cols]
    if not features and not (files is not None and files.image_folders):
        raise TaskInputError("train and test share no feature column; nothing can be learnt that applies to the test rows")
    return features


def _unique(test: Path, column: str) -> bool:
    """Whether a column is meant to identify the test rows: values that are keys (000123, t3_abc),
    not sentences (a unique comment is text), and named like an id or nearly distinct on every
    row. An id column with a few repeats is still the id (and is refused for them later); a
    column of dates that repeat is not."""
    values = read_table(test, "test file", keys=[column], columns=[column])[column]
    keylike = not values.astype(str).str.contains(r"\s").mean() > 0.5
    return keylike and (_named_like_id(column) or values.nunique() >= 0.9 * len(values))


def _named_like_id(column: str) -> bool:
    return column.lower() in ID_NAMES or column.lower().endswith("_id") or column.endswith("Id")


def _check_test_ids(test: Path, id_column: str) -> pd.Series:
    ids = read_table(test, "test file", keys=[id_column], columns=[id_column])[id_column]
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        raise TaskInputError(f"the test file has {ids.duplicated().sum()} repeated id(s) in '{id_column}' "
                             f"(e.g. {_shown(repeated.unique())}); each test row needs its own id")
    return ids


def _check_rows(files: TaskFiles, id_column: str | None, warnings: list[str]) -> None:
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
            _check_test_ids(files.sample, id_column)
        return
    if not id_column:
        if files.sample is not None:
            n_test, n_sample = (len(read_table(path, what, columns=read_header(path, what)[:1]))
                                for path, what in ((files.test, "test file"), (files.sample, "sample submission")))
            if n_test != n_sample:
                warnings.append(f"ROWS BY POSITION: the sample submission has {n_sample} rows and the test file {n_test}, "
                                f"and no id column ties them; the submission has one row per test row, in its order")
        return
    test_ids = _check_test_ids(files.test, id_column)
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


def _names(columns: list[str], limit: int = 6) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", … ({len(columns) - limit} more)" if len(columns) > limit else "")


def _find_id(train_cols: list[str], test_cols: list[str], sample_cols: list[str] | None, given: str | None, reasons: list[str],
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


def _find_target(train_cols, test_cols, sample, id_column, description, given, reasons) -> str:
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


def _find_metric(description: str, given: str | None, reasons: list[str]) -> str | None:
    if given:
        name = get_metric(given).name  # raises the one-line unknown-metric error
        reasons.append(f"metric: {name} from --metric")
        return name
    found = metric_from_text(description)
    if found:
        reasons.append(f"metric: {found}, named in the description")
    return found


def _task_type(y: pd.Series, metric_name: str | None, sample: pd.DataFrame | None, target: str, reasons: list[str]) -> TaskType:
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


def _default_metric(task_type: TaskType, sample: pd.DataFrame | None, target: str, y: pd.Series, reasons: list[str]) -> str:
    """No metric named: a sample submission of labels asks for labels, so score labels."""
    if task_type != "regression" and sample is not None and target in sample.columns:
        shown = {label_key(v) for v in sample[target].dropna()}
        if shown and shown <= {label_key(v) for v in y.unique()}:
            reasons.append("metric: the description names none and the sample submission holds labels; accuracy")
            return "accuracy"
    name = default_metric(task_type)
    reasons.append(f"metric: the description names none; default for {task_type} is {name}")
    return name


def _order_binary(labels: list[str], y: pd.Series, description: str, reasons: list[str]) -> list[str]:
    """[negative, positive]: the positive class is the one a probability column describes."""
    for label in labels:
        if label.lower() in POSITIVE_LABELS:
            reasons.append(f"positive class: '{label}'")
            return [c for c in labels if c != label] + [label]
    text = description.lower()
    said = [lab for lab in labels if f"'{lab.lower()}'" in text or f'"{lab.lower()}"' in text or f"`{lab.lower()}`" in text]
    if len(said) == 1:
        reasons.append(f"positive class: '{said[0]}', quoted in the description")
        return [c for c in labels if c != said[0]] + said
    counts = y.map(label_key).value_counts()
    minority = str(counts.idxmin())
    reasons.append(f"positive class: '{minority}', the minority class")
    return [c for c in labels if c != minority] + [minority]


def _single_column_format(sample, column, labels, needs, reasons) -> SubmissionFormat:
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


def _natural(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# -- with an LLM: it reads the description, the rules above check it against the files ----------


def read_task_with_llm(task_dir: Path, settings: Settings, client, events=None) -> tuple[TaskSpec, list]:
    """The LLM names target, id and metric from the description; each is used only when the
    files allow it (the target a train column absent from test, the id a test column, the
    metric a known one that fits the task), and the rules decide the rest. Flags beat both.
    Every correction is a reason in the TaskSpec."""
    import dataclasses

    from graph.llm import LLMError, TaskReading
    from prompts.render import analyze_messages

    files = locate_files(task_dir)
    sample_cols = read_header(files.sample, "sample submission") if files.sample is not None else None
    # image files without a table (labels in their names): the columns iml builds for them
    train_cols = read_header(files.train, "train file") if files.train is not None else [*(sample_cols or ["id"])[:1], "label"]
    test_cols = read_header(files.test, "test file") if files.test is not None else list((sample_cols or ["id"])[:1])
    description = files.description
    try:
        answer = client.ask(TaskReading, analyze_messages(task_dir, description, train_cols, test_cols, sample_cols),
                            role="analyze", node="analyze", events=events)
    except LLMError as e:
        task = read_task(task_dir, settings)
        task.reasons.append(f"LLM: no usable answer ({str(e)[:200]}); the rules decided alone")
        return task, e.calls
    reading = answer.value
    hints, notes = _verified_hints(reading, train_cols, test_cols, sample_cols, settings)
    trials = [hints]
    if "metric" in hints:
        trials.append({k: v for k, v in hints.items() if k != "metric"})
    if hints:
        trials.append({})
    task = None
    for trial in trials:
        try:
            task = read_task(task_dir, dataclasses.replace(settings, **trial))
            break
        except TaskInputError as e:
            if not trial:
                raise
            notes.append(f"LLM: {', '.join(f'{k} {v!r}' for k, v in trial.items())} rejected by the files: {e}")
    assert task is not None
    flag = {"target": ("target", "--target"), "id_column": ("id", "--id"), "metric": ("metric", "--metric")}
    for key, value in trial.items():
        name, option = flag[key]
        shown = f"'{value}'" if key != "metric" else value
        task.reasons = [r.replace(f"{name}: {shown} from {option}", f"{name}: {shown}, the LLM's reading of the description"
                                  + {"target": " (checked: a train column that test lacks)", "id_column": " (checked: a test column)",
                                     "metric": " (checked: a known metric that fits the task)"}[key])
                        for r in task.reasons]
    if reading.task_type and reading.task_type != task.task_type:
        notes.append(f"LLM: task type {reading.task_type} rejected: the target's values and the metric make it {task.task_type}")
    text_metric = metric_from_text(description)
    if "metric" in trial and text_metric and text_metric != task.metric:
        notes.append(f"LLM: chose {task.metric} where the rules read {text_metric} in the description")
    if reading.notes.strip():
        notes.append(f"LLM notes: {reading.notes.strip()[:300]}")
    task.reasons += notes
    return task, answer.calls


def _verified_hints(reading, train_cols: list[str], test_cols: list[str], sample_cols: list[str] | None,
                    settings: Settings) -> tuple[dict, list[str]]:
    """The parts of the LLM's reading that can be true of these files, and why the rest cannot."""
    hints: dict = {}
    notes: list[str] = []

    def column(name: str, among: list[str]) -> str | None:
        if name in among:
            return name
        folded = [c for c in among if c.lower() == name.strip().lower()]
        return folded[0] if len(folded) == 1 else None

    values = [c for c in (sample_cols or []) if c not in test_cols]
    several = len(values) > 1 and all(c in train_cols for c in values)
    if reading.target and not settings.target and several:
        # the files name several targets (the sample's value columns): one named by the LLM
        # would turn the task into something else
        notes.append(f"LLM: target '{reading.target}' not used: the sample submission asks for {len(values)} target "
                     f"columns ({', '.join(values[:6])})")
    elif reading.target and not settings.target:
        name = column(reading.target, train_cols)
        if name is None:
            notes.append(f"LLM: target '{reading.target}' rejected: train.csv has no such column")
        elif name in test_cols:
            notes.append(f"LLM: target '{name}' rejected: test.csv has it too, so it cannot be what is predicted")
        else:
            hints["target"] = name
    if reading.id_column and not settings.id_column:
        name = column(reading.id_column, test_cols)
        if name is None:
            notes.append(f"LLM: id '{reading.id_column}' rejected: test.csv has no such column")
        elif sample_cols is not None and name not in sample_cols:
            notes.append(f"LLM: id '{name}' rejected: sample_submission.csv has no such column")
        elif name == hints.get("target"):
            notes.append(f"LLM: id '{name}' rejected: it is also the target")
        else:
            hints["id_column"] = name
    if reading.metric and not settings.metric:
        try:
            hints["metric"] = get_metric(reading.metric).name
        except ValueError:
            notes.append(f"LLM: metric '{reading.metric}' rejected: not a known metric")
    return hints, notes
