"""Where a task's files are: its tables under their usual names (in any format iml reads), its
description, the folders that hold its images, and where the file names carry the labels.

A shape iml does not solve (audio, image-to-image, detection) is named in one line here, from
the files alone, before anything is read. runtime/task_reader.py reads what is found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from runtime.data import COMPRESSIONS, IMAGE_SUFFIXES, TaskInputError, find_sample_submission, find_table, read_header
from runtime.records import ImageSource

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".aif", ".aiff", ".ogg", ".m4a", ".au")
# submission columns that hold boxes, masks or run-length encodings, not one value per row
DETECTION_COLUMNS = ("predictionstring", "encodedpixels", "bbox", "boxes", "rle")
MAX_FILES_LOOKED_AT = 5000
ENTRIES_PER_FOLDER = 400  # a folder's first entries tell what it holds; 200k files need not be listed
KEY_SAMPLE = 40  # key values tried against the folders when looking for the image files
_COMPRESSED = ", ".join(COMPRESSIONS)


@dataclass
class TaskFiles:
    train: Path | None  # None: the rows are image files whose names carry the label (`named`)
    test: Path | None  # None: the test rows are the sample submission's ids, their images in a folder
    sample: Path | None
    description: str
    image_folders: dict[str, list[str]] = field(default_factory=dict)  # folder -> image suffixes seen in it
    named: ImageSource | None = None  # training rows from file names (train/cat.1.jpg) or folders (train/cat/1.jpg)


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
        train = table_holding_the_targets(task_dir, sample)
    named = None
    if train is None and folders:
        named = labels_in_names(task_dir, folders)
    if train is None and named is None:
        if folders:
            raise TaskInputError(f"this is an image task ({images_where(folders)}), but no table gives the training labels and "
                                 "the file names carry none: add train.csv (or labels.csv) with a column naming each image "
                                 "and its label, or name the files label.N.jpg, or put them in one folder per label")
        raise TaskInputError(f"train file not found in {task_dir}: expected train.csv or labels.csv (or .tsv, .json, .jsonl, "
                             f".parquet, each possibly compressed: {_COMPRESSED})")
    if test is None and not folders:
        where = f" (the sample submission {sample.name} lists the test ids, but their features are in no table)" if sample else ""
        raise TaskInputError(f"test file not found in {task_dir}: expected test.csv (or .tsv, .json, .jsonl, .parquet, each "
                             f"possibly compressed: {_COMPRESSED}){where}")
    if test is None and sample is None and named is None:
        raise TaskInputError(f"this is an image task ({images_where(folders)}) without a test table: add the sample submission "
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


def images_where(folders: dict[str, list[str]]) -> str:
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


def labels_in_names(task_dir: Path, folders: dict[str, list[str]]) -> ImageSource | None:
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


def table_holding_the_targets(task_dir: Path, sample: Path | None) -> Path | None:
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
