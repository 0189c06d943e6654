"""Image tasks laid out as real competitions lay them out: where the files are, what names them,
where the labels come from; and the decoding every recipe reads them through."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from graph.context import Settings
from runtime import images as images_module
from runtime.data import TaskInputError, read_test, read_train
from runtime.data_profile import profile_data
from runtime.task_reader import read_task


def picture(path, colour=(200, 30, 30), size=(12, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)


def sample(folder, ids, columns=("label",), value=0.5, name="sample_submission.csv"):
    pd.DataFrame({"id": ids, **{c: value for c in columns}}).to_csv(folder / name, index=False)


def ids(prefix, n):
    return [f"{prefix}{i:03d}" for i in range(n)]


def refused(folder) -> str:
    with pytest.raises(TaskInputError) as info:
        read_task(folder, Settings())
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_table_of_ids_and_labels_without_a_test_table(tmp_path):
    """dog-breed-identification: labels.csv (id, breed), train/<id>.jpg, test/<id>.jpg, one
    probability column per class, no test table."""
    train_ids, test_ids = ids("0a", 30), ids("f9", 10)
    for i in train_ids:
        picture(tmp_path / "train" / f"{i}.jpg")
    for i in test_ids:
        picture(tmp_path / "test" / f"{i}.jpg")
    pd.DataFrame({"id": train_ids, "breed": ["beagle", "pug", "akita"] * 10}).to_csv(tmp_path / "labels.csv", index=False)
    sample(tmp_path, test_ids, columns=("akita", "beagle", "pug"))
    task = read_task(tmp_path, Settings())
    assert task.test_file is None and task.train_file == "labels.csv"
    assert task.images.key == "id" and task.images.train_pattern == "train/{}.jpg" and task.images.test_pattern == "test/{}.jpg"
    assert task.feature_columns == [task.images.column]
    assert task.task_type == "multiclass" and task.submission_format == "proba_cols"
    test = read_test(task.model_dump())
    assert list(test["id"]) == test_ids
    assert test[task.images.column].iloc[0] == str(tmp_path / "test" / f"{test_ids[0]}.jpg")


def test_ids_that_carry_the_extension_and_a_test_table(tmp_path):
    """aerial-cactus-identification: the id column holds `abc.jpg`, the files sit in train/."""
    train_ids, test_ids = [f"{i}.jpg" for i in ids("c", 30)], [f"{i}.jpg" for i in ids("t", 10)]
    for i in train_ids:
        picture(tmp_path / "train" / i)
    for i in test_ids:
        picture(tmp_path / "test" / i)
    pd.DataFrame({"id": train_ids, "has_cactus": [0, 1, 1] * 10}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"id": test_ids}).to_csv(tmp_path / "test.csv", index=False)
    sample(tmp_path, test_ids, columns=("has_cactus",))
    task = read_task(tmp_path, Settings())
    assert task.images.train_pattern == "train/{}" and task.images.test_pattern == "test/{}"
    assert task.test_file == "test.csv" and task.task_type == "binary"


def test_one_folder_for_both_and_one_hot_targets(tmp_path):
    """plant-pathology-2020: train.csv (image_id + one 0/1 column per class), images/Train_0.jpg
    and images/Test_0.jpg in one folder."""
    classes = ["healthy", "rust", "scab"]
    train_ids, test_ids = [f"Train_{i}" for i in range(30)], [f"Test_{i}" for i in range(10)]
    for i in train_ids + test_ids:
        picture(tmp_path / "images" / f"{i}.jpg")
    frame = pd.DataFrame({"image_id": train_ids})
    for j, c in enumerate(classes):
        frame[c] = [int(k % 3 == j) for k in range(30)]
    frame.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"image_id": test_ids}).to_csv(tmp_path / "test.csv", index=False)
    pd.DataFrame({"image_id": test_ids, **{c: 0.33 for c in classes}}).to_csv(tmp_path / "sample_submission.csv", index=False)
    task = read_task(tmp_path, Settings())
    assert task.one_hot and task.classes == classes
    assert task.images.key == "image_id" and task.images.train_pattern == task.images.test_pattern == "images/{}.jpg"


def test_a_table_of_features_beside_the_images(tmp_path):
    """leaf-classification / siim-isic: the table's columns are features, the image one more; a
    column only train has (the diagnosis) is dropped as ever."""
    for i in range(40):
        picture(tmp_path / "images" / f"{i}.png")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"id": range(40), "margin1": rng.normal(size=40), "age": rng.randint(20, 80, 40),
                          "diagnosis": ["x"] * 40, "species": ["oak", "elm"] * 20})
    frame.iloc[:30].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[30:].drop(columns=["species", "diagnosis"]).to_csv(tmp_path / "test.csv", index=False)
    pd.DataFrame({"id": range(30, 40), "species": "oak"}).to_csv(tmp_path / "sample_submission.csv", index=False)
    task = read_task(tmp_path, Settings(target="species"))
    assert task.feature_columns == ["margin1", "age", task.images.column]
    assert task.images.train_pattern == "images/{}.png"
    assert any("DROPPED" in w and "diagnosis" in w for w in task.warnings)


def test_labels_in_the_file_names(tmp_path):
    """dogs-vs-cats-redux: train/cat.1.jpg, train/dog.7.jpg, test/1.jpg; the submission is
    id, label = P(dog), which the description quotes."""
    for k in range(20):
        picture(tmp_path / "train" / f"{'cat' if k % 2 else 'dog'}.{k}.jpg")
    for k in range(1, 9):
        picture(tmp_path / "test" / f"{k}.jpg")
    sample(tmp_path, list(range(1, 9)), columns=("label",))
    (tmp_path / "description.md").write_text("Predict the probability that the image is a 'dog'. Evaluation: log loss.")
    task = read_task(tmp_path, Settings())
    assert task.train_file is None and task.test_file is None
    assert task.images.labels_from == "file_name" and task.images.test_pattern == "test/{}.jpg"
    assert task.task_type == "binary" and task.classes == ["cat", "dog"] and task.submission_format == "proba"
    assert task.metric == "log_loss"
    train = read_train(task.model_dump())
    assert len(train) == 20 and set(train["label"]) == {"cat", "dog"}
    assert train[task.images.column].map(lambda p: p.endswith(".jpg")).all()
    assert list(read_test(task.model_dump())["id"]) == [str(k) for k in range(1, 9)]


def test_one_folder_per_label(tmp_path):
    for label in ("ants", "bees"):
        for k in range(8):
            picture(tmp_path / "train" / label / f"{label}{k}.png")
    for k in range(4):
        picture(tmp_path / "test" / f"q{k}.png")
    sample(tmp_path, [f"q{k}" for k in range(4)], columns=("label",), value="ants")
    task = read_task(tmp_path, Settings())
    assert task.images.labels_from == "folder" and task.classes and set(task.classes) == {"ants", "bees"}
    assert task.submission_format == "label"
    train = read_train(task.model_dump())
    assert sorted(set(train["label"])) == ["ants", "bees"] and len(train) == 16


def test_test_images_that_are_not_there_are_named_in_one_line(tmp_path):
    for i in ids("a", 20):
        picture(tmp_path / "train" / f"{i}.png")
    pd.DataFrame({"id": ids("a", 20), "y": [0, 1] * 10}).to_csv(tmp_path / "labels.csv", index=False)
    sample(tmp_path, ids("zz", 5), columns=("y",))
    assert "the test rows' values name no image files" in refused(tmp_path)


def test_image_to_image_and_no_labels_at_all_stay_refused(tmp_path):
    for i in range(6):
        picture(tmp_path / "train" / f"{i}.png")
        picture(tmp_path / "train_cleaned" / f"{i}.png")
    assert "image-to-image" in refused(tmp_path)
    other = tmp_path / "other"
    for i in range(6):
        picture(other / "pictures" / f"{i}.png")
    assert "no table gives the training labels" in refused(other)


def test_the_profile_describes_the_files_and_warns_about_broken_ones(tmp_path):
    train_ids = ids("p", 30)
    for i in train_ids[:-1]:
        picture(tmp_path / "train" / f"{i}.png", size=(16, 8), mode="L")
    (tmp_path / "train" / f"{train_ids[5]}.png").write_bytes(b"not a png")  # one broken, one missing (the last)
    for i in ids("q", 5):
        picture(tmp_path / "test" / f"{i}.png")
    pd.DataFrame({"id": train_ids, "y": [0, 1] * 15}).to_csv(tmp_path / "labels.csv", index=False)
    sample(tmp_path, ids("q", 5), columns=("y",))
    task = read_task(tmp_path, Settings())
    column = next(c for c in profile_data(task).columns if c.kind == "image")
    stats = column.images
    assert stats.count == 35 and stats.missing == 1 and stats.unreadable == 1
    assert stats.width["max"] == 16 and stats.height["min"] == 8 and set(stats.modes) == {"L", "RGB"}
    assert any("1 of 35 files are missing" in w for w in profile_data(task).warnings)


def test_load_images_decodes_once_and_blacks_out_what_it_cannot(tmp_path):
    good, grey, alpha, deep = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png", tmp_path / "d.tif"
    picture(good, colour=(255, 0, 0), size=(20, 10))
    picture(grey, colour=(128,), mode="L")
    Image.new("RGBA", (8, 8), (0, 0, 255, 128)).save(alpha)
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(deep)  # 16-bit, like microscopy
    broken = tmp_path / "e.png"
    broken.write_bytes(b"\x89PNG broken")
    paths = [good, grey, alpha, deep, broken, tmp_path / "missing.png"]
    out = images_module.load_images(paths, 6)
    assert out.shape == (6, 6, 6, 3) and out.dtype == np.uint8
    assert out[0, ..., 0].min() == 255 and out[0, ..., 1].max() == 0
    assert (out[1] == 128).all() and out[2, ..., 2].min() > 200
    assert out[3].max() > 230 and out[3].min() < 30  # 16 bits stretched into 8, not clipped to white
    assert out[4].max() == 0 and out[5].max() == 0
    before = images_module.stats()
    assert before["failed"] >= 2
    again = images_module.load_images(paths[:2], 6)
    assert np.array_equal(again, out[:2]) and images_module.stats()["cached"] == before["cached"]
