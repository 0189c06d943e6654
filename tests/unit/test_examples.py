"""Example tasks: layout, determinism, hidden answers, grading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime.metrics import get_metric, metric_from_text
from scripts.examples import (
    ANSWERS_DIR,
    EXAMPLES,
    PUBLIC_FILES,
    GradeError,
    grade,
    list_examples,
    make_example,
)

NAMES = [s.name for s in list_examples()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every example, built once for the module (all take well under a second)."""
    root = tmp_path_factory.mktemp("examples")
    return {name: make_example(name, root / name) for name in NAMES}


def _meta(task: Path) -> dict[str, object]:
    return json.loads((task / ANSWERS_DIR / "meta.json").read_text())


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _perfect_submission(task: Path) -> pd.DataFrame:
    """The true answers in the task's own submission layout."""
    meta = _meta(task)
    answers = _read(task / ANSWERS_DIR / "answers.csv")
    sample = _read(task / "sample_submission.csv")
    target, id_col = str(meta["target"]), str(meta["id"])
    truth = answers[target].astype(str)
    out = pd.DataFrame({id_col: answers[id_col]})
    if meta["submission"] == "per_class":
        for c in sample.columns[1:]:
            out[c] = (truth == str(c)).astype(float)
    elif meta["submission"] == "proba":
        out[target] = (truth == str(meta["positive_class"])).astype(float)
    else:
        out[target] = answers[target]
    # Shuffle rows: grading must align by id, not by position.
    return out.sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_registry_and_listing() -> None:
    assert len(EXAMPLES) >= 8
    assert NAMES == list(EXAMPLES)
    kinds = {s.task_type for s in list_examples()}
    assert kinds == {"binary", "multiclass", "regression"}
    for spec in list_examples():
        get_metric(spec.metric)  # every example names a registered metric
        assert spec.description and "\n" not in spec.description
        assert spec.source


def test_unknown_example_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        make_example("nope", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "'nope'" in msg
    assert all(name in msg for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_layout(built: dict[str, Path], name: str) -> None:
    task = built[name]
    meta = _meta(task)
    assert {p.name for p in task.iterdir()} == set(PUBLIC_FILES) | {ANSWERS_DIR}
    assert {p.name for p in (task / ANSWERS_DIR).iterdir()} == {"answers.csv", "meta.json"}
    assert meta["metric"] == EXAMPLES[name].metric and meta["task_type"] == EXAMPLES[name].task_type

    train, test = _read(task / "train.csv"), _read(task / "test.csv")
    sample, answers = _read(task / "sample_submission.csv"), _read(task / ANSWERS_DIR / "answers.csv")
    target, id_col = str(meta["target"]), str(meta["id"])
    assert target != "target" and target in train.columns and target not in test.columns
    assert id_col in train.columns and id_col in test.columns
    assert list(train.columns.drop(target)) == list(test.columns)

    # 80/20 split with disjoint, unique ids; sample submission and answers follow test.
    n = len(train) + len(test)
    assert abs(len(test) - 0.2 * n) <= 1
    assert train[id_col].is_unique and test[id_col].is_unique
    assert not set(train[id_col]) & set(test[id_col])
    assert sample[id_col].tolist() == test[id_col].tolist()
    assert answers[id_col].tolist() == test[id_col].tolist()
    assert sample.columns[0] == id_col


@pytest.mark.parametrize("name", NAMES)
def test_answers_stay_out_of_the_public_files(built: dict[str, Path], name: str) -> None:
    task = built[name]
    meta = _meta(task)
    test = _read(task / "test.csv")
    sample = _read(task / "sample_submission.csv")
    answers = _read(task / ANSWERS_DIR / "answers.csv")
    target = str(meta["target"])
    assert target not in test.columns
    assert "answers" not in (task / "description.md").read_text().lower()
    # The sample submission is a constant, not the truth.
    pred_cols = [c for c in sample.columns if c != meta["id"]]
    assert all(sample[c].nunique() == 1 for c in pred_cols)
    assert answers[target].nunique() > 1


@pytest.mark.parametrize("name", NAMES)
def test_description_reads_like_a_competition_page(built: dict[str, Path], name: str) -> None:
    text = (built[name] / "description.md").read_text()
    for heading in ("## Overview", "## Evaluation", "## Submission File", "## Data"):
        assert heading in text
    header = (built[name] / "sample_submission.csv").read_text().splitlines()[0]
    assert header in text
    assert "{" not in text.replace("```", "")  # no unfilled template field
    # The rule-based reader must recover each task's metric from its prose.
    assert metric_from_text(text) == EXAMPLES[name].metric


@pytest.mark.parametrize("name", NAMES)
def test_perfect_submission_beats_the_constant_sample(built: dict[str, Path], name: str, tmp_path: Path) -> None:
    task = built[name]
    metric = get_metric(EXAMPLES[name].metric)
    perfect_path = tmp_path / "perfect.csv"
    _perfect_submission(task).to_csv(perfect_path, index=False)

    perfect = grade(task, perfect_path)
    constant = grade(task, task / "sample_submission.csv")
    assert perfect.metric == metric.name and perfect.greater_is_better == metric.greater_is_better
    if metric.name in {"auc", "accuracy", "f1", "f1_macro", "balanced_accuracy", "mcc", "qwk", "r2"}:
        assert perfect.score == pytest.approx(1.0)
    else:
        assert perfect.score == pytest.approx(0.0, abs=1e-6)
    assert metric.better(perfect.score, constant.score)


def test_build_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = make_example("penguins", tmp_path / "a", seed=3)
    b = make_example("penguins", tmp_path / "b", seed=3)
    c = make_example("penguins", tmp_path / "c", seed=4)
    for f in PUBLIC_FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()


def test_classification_split_is_stratified(built: dict[str, Path]) -> None:
    task = built["churn"]
    train = _read(task / "train.csv")
    answers = _read(task / ANSWERS_DIR / "answers.csv")
    assert train["churn"].eq("Yes").mean() == pytest.approx(answers["churn"].eq("Yes").mean(), abs=0.01)


def test_penguins_keeps_missing_values_and_categoricals(built: dict[str, Path]) -> None:
    df = pd.concat([_read(built["penguins"] / "train.csv"), _read(built["penguins"] / "test.csv")])
    assert df.isna().any().any()
    assert df["island"].dtype == object or str(df["island"].dtype).startswith("str")
    assert list(_read(built["penguins"] / "sample_submission.csv").columns) == ["id", "Adelie", "Chinstrap", "Gentoo"]


def test_per_class_grading_follows_the_submission_column_order(built: dict[str, Path], tmp_path: Path) -> None:
    task = built["penguins"]
    sub = _perfect_submission(task)
    reordered = sub[["id", "Gentoo", "Adelie", "Chinstrap"]]
    path = tmp_path / "sub.csv"
    reordered.to_csv(path, index=False)
    assert grade(task, path).score == pytest.approx(0.0, abs=1e-6)


def test_binary_accepts_labels_and_probabilities(built: dict[str, Path], tmp_path: Path) -> None:
    task = built["churn"]
    answers = _read(task / ANSWERS_DIR / "answers.csv")
    labels = answers.copy()  # class names instead of probabilities
    labels.to_csv(tmp_path / "labels.csv", index=False)
    assert grade(task, tmp_path / "labels.csv").score == pytest.approx(1.0)

    # Probabilities that rank every churner above every stayer, but are not 0/1.
    proba = answers.assign(churn=np.where(answers["churn"] == "Yes", 0.6, 0.4))
    proba.to_csv(tmp_path / "proba.csv", index=False)
    assert grade(task, tmp_path / "proba.csv").score == pytest.approx(1.0)

    flipped = answers.assign(churn=np.where(answers["churn"] == "Yes", 0.1, 0.9))
    flipped.to_csv(tmp_path / "flipped.csv", index=False)
    assert grade(task, tmp_path / "flipped.csv").score == pytest.approx(0.0)


def test_multiclass_labels_grade_with_a_probability_metric(built: dict[str, Path], tmp_path: Path) -> None:
    task = built["penguins"]
    (_read(task / ANSWERS_DIR / "answers.csv")).to_csv(tmp_path / "labels.csv", index=False)
    assert grade(task, tmp_path / "labels.csv").score == pytest.approx(0.0, abs=1e-6)


def test_grade_errors_are_one_line(built: dict[str, Path], tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    sub = built["iris"] / "sample_submission.csv"
    with pytest.raises(GradeError) as err:
        grade(bare, sub)
    assert "\n" not in str(err.value) and "answers" in str(err.value)

    short = _read(sub).iloc[:-1]
    short.to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(GradeError, match="missing") as err:
        grade(built["iris"], tmp_path / "short.csv")
    assert "\n" not in str(err.value)

    wrong = _read(sub).assign(species="tulip")
    wrong.to_csv(tmp_path / "wrong.csv", index=False)
    with pytest.raises(GradeError, match="unknown classes"):
        grade(built["iris"], tmp_path / "wrong.csv")

    no_id = _read(sub).drop(columns=["id"])
    no_id.to_csv(tmp_path / "no_id.csv", index=False)
    with pytest.raises(GradeError, match="id column"):
        grade(built["iris"], tmp_path / "no_id.csv")


def test_the_examples_of_known_failures_carry_their_cause(built: dict[str, Path]) -> None:
    """reviews_dated: tz-aware, mixed-offset and naive stamps in one column beside text, read as a
    date column (so every recipe's date features meet them); diamonds_mae: a heavy right tail
    scored by absolute error; ames: the Kaggle wording of "RMSE of the logs" (read as RMSLE by
    test_description_reads_like_a_competition_page)."""
    from graph.context import Settings
    from runtime.data_profile import profile_data
    from runtime.task_reader import read_task

    stamps = _read(built["reviews_dated"] / "train.csv")["posted_at"]
    assert stamps.str.endswith("Z").any() and stamps.str.contains(r"[+-]\d\d:\d\d$").any()
    assert (~stamps.str.contains(r"Z$|[+-]\d\d:\d\d$")).any()
    task = read_task(built["reviews_dated"], Settings())
    kinds = {c.name: c.kind for c in profile_data(task).columns}
    assert kinds["posted_at"] == "datetime" and kinds["review"] == "text"
    price = _read(built["diamonds_mae"] / "train.csv")["price"]
    assert price.skew() > 1.0 and EXAMPLES["diamonds_mae"].metric == "mae"
    assert "logarithm of the" in (built["ames"] / "description.md").read_text()


def _table(task: Path) -> pd.DataFrame:
    """Every row of a split task with its true target: train plus the test rows joined to the kept answers."""
    id_col = str(_meta(task)["id"])
    train = _train(task)
    test = _read(task / "test.csv").merge(_read(task / ANSWERS_DIR / "answers.csv"), on=id_col)
    return pd.concat([train, test[train.columns]]).sort_values(id_col)


def _train(task: Path) -> pd.DataFrame:
    return _read(task / "train.csv") if (task / "train.csv").exists() else _read(task / "labels.csv")


@pytest.mark.parametrize("name", ["iris", "churn", "movie_reviews", "digits_labels", "wine_onehot"])
def test_split_seeds_cut_other_splits_of_the_same_rows(tmp_path: Path, name: str) -> None:
    """`iml bench --repeats`: split seed r holds out another fifth of the same rows (same ids, same
    values, the subsample too), its answers apart from its public files; split seed 0 is the split
    a build without one makes."""
    splits = [make_example(name, tmp_path / f"split{r}", seed=0, split_seed=r) for r in range(3)]
    default = make_example(name, tmp_path / "default")
    meta = _meta(splits[0])
    id_col = str(meta["id"])
    targets = [str(t) for t in meta.get("targets") or [meta["target"]]]
    public = [p.name for p in default.iterdir() if p.is_file()]
    for f in public:
        assert (default / f).read_bytes() == (splits[0] / f).read_bytes()

    tests = [set(_read(t / "test.csv")[id_col]) for t in splits]
    assert len({frozenset(t) for t in tests}) == 3  # three different held-out sets
    rows = [_table(t).reset_index(drop=True) for t in splits]
    for task, held_out, table in zip(splits, tests, rows):
        pd.testing.assert_frame_equal(table, rows[0])  # the same rows under the same ids
        train = _train(task)
        answers = _read(task / ANSWERS_DIR / "answers.csv")
        assert not held_out & set(train[id_col]) and len(held_out) + len(train) == len(table)
        assert set(answers[id_col]) == held_out and not set(targets) & set(_read(task / "test.csv").columns)
        assert abs(len(held_out) - 0.2 * len(table)) <= 1
    assert [_meta(t)["split_seed"] for t in splits] == [0, 1, 2]

    again = make_example(name, tmp_path / "again", seed=0, split_seed=2)  # deterministic per split seed
    for f in public:
        assert (again / f).read_bytes() == (splits[2] / f).read_bytes()


def test_taxi_fares_has_the_competition_shape_at_any_size(tmp_path):
    import scripts.large_examples as large
    from scripts.large_examples import CHUNK_ROWS

    large.CHUNK_ROWS = 700  # several chunks on a small table: the header once, rows numbered across chunks
    try:
        task = make_example("taxi_fares", tmp_path / "taxi", rows=2_000, split_seed=1)
        again = make_example("taxi_fares", tmp_path / "again", rows=2_000, split_seed=2)
    finally:
        large.CHUNK_ROWS = CHUNK_ROWS
    labels = pd.read_csv(task / "labels.csv", dtype={"key": str})
    test = pd.read_csv(task / "test.csv", dtype={"key": str})
    answers = pd.read_csv(task / ANSWERS_DIR / "answers.csv", dtype={"key": str})
    assert not (task / "train.csv").exists()
    assert list(labels.columns) == ["key", "fare_amount", "pickup_datetime", "pickup_longitude", "pickup_latitude",
                                    "dropoff_longitude", "dropoff_latitude", "passenger_count"]
    assert len(labels) == 2_000 and labels.key.is_unique and len(test) == 400
    assert "fare_amount" not in test.columns and set(answers.key) == set(test.key)
    assert not set(test.key) & set(labels.key)
    assert labels.pickup_datetime.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC").all()
    # the real table's dirt in training rows (zero coordinates, fares below zero or far above), none in the test rows
    assert (labels.pickup_longitude == 0).sum() > 10 and (test.pickup_longitude == 0).sum() == 0
    # deterministic, and another split seed draws other test rows from the same training rows
    assert (again / "labels.csv").read_bytes() == (task / "labels.csv").read_bytes()
    assert (again / "test.csv").read_bytes() != (task / "test.csv").read_bytes()
    # the answers grade: the kept fares score 0, the sample submission's constant does not
    perfect = tmp_path / "perfect.csv"
    answers.to_csv(perfect, index=False)
    assert grade(task, perfect).score == pytest.approx(0.0)
    assert grade(task, task / "sample_submission.csv").score > 1.0


def test_rows_cuts_an_example_to_the_first_of_its_shuffled_rows_and_never_grows_it(tmp_path):
    """A replayed run's fixture is rebuilt from (name, seed, rows): the cut keeps the first rows
    of the full example's shuffle, under the same ids, and splits them 80/20 as always."""
    import pandas as pd

    full = make_example("iris", tmp_path / "iris", seed=3)
    cut = make_example("iris", tmp_path / "cut", seed=3, rows=40)
    whole = pd.concat([pd.read_csv(full / "train.csv"), pd.read_csv(full / ".answers" / "answers.csv")])
    part = pd.concat([pd.read_csv(cut / "train.csv"), pd.read_csv(cut / ".answers" / "answers.csv")])
    assert len(pd.read_csv(cut / "train.csv")) == 32 and len(pd.read_csv(cut / "test.csv")) == 8
    assert sorted(part["id"]) == list(range(1, 41))
    kept = whole.set_index("id").loc[sorted(part["id"])]
    assert (part.set_index("id").sort_index()["species"] == kept["species"]).all()
    images = make_example("digits_images", tmp_path / "images", rows=100)
    assert len(pd.read_csv(images / "labels.csv")) == 80 and len(list((images / "test").glob("*.png"))) == 20
    with pytest.raises(ValueError, match="'iris' has 150 rows; give 10 to 150"):
        make_example("iris", tmp_path / "more", rows=151)
    with pytest.raises(ValueError, match="--rows cannot cut 'wine_onehot'"):
        make_example("wine_onehot", tmp_path / "wine", rows=50)


def test_the_shapes_iml_trailed_on_keep_their_shape(built: dict[str, Path]) -> None:
    """Issue 33's shapes: what made each one that shape (size, column kinds, imbalance, p >> n,
    a text column beside an id-like code, an arrival date) is in the files iml reads, and the
    profile sees it, so a bench on them measures that shape and not another."""
    from graph.context import Settings
    from runtime.data_profile import profile_data
    from runtime.task_reader import read_task

    for name in ("email_spam", "caravan_insurance", "parkinsons_speech", "food_reviews"):
        # the page names the positive class so the reader takes it (not the minority): an inverted
        # class order scores every system's probabilities upside down
        assert read_task(built[name], Settings()).classes[-1] == _meta(built[name])["positive_class"], name

    def kinds(name: str) -> dict[str, str]:
        return {c.name: c.kind for c in profile_data(read_task(built[name], Settings())).columns}

    def features(name: str) -> pd.DataFrame:
        meta = _meta(built[name])
        return _read(built[name] / "train.csv").drop(columns=[str(meta["id"]), str(meta["target"])])

    spam = features("email_spam")
    assert spam.shape[1] == 6 and set(kinds("email_spam").values()) == {"numeric"}
    assert (spam.skew() > 2).all()  # counts with long right tails

    caravan = _read(built["caravan_insurance"] / "train.csv")
    assert caravan.shape[1] - 2 == 85 and 0.05 < caravan["Purchase"].eq("Yes").mean() < 0.07

    store = kinds("superstore_profit")
    assert sum(k == "categorical" for k in store.values()) >= 7 and store["Country"] == "constant"
    profit = _read(built["superstore_profit"] / "train.csv")["Profit"]
    assert (profit < 0).mean() > 0.1 and profit.abs().max() > 50 * profit.abs().median()  # losses and a long tail

    pixels = features("mnist_784")
    assert pixels.shape[1] == 784 and pixels.to_numpy().max() == 255
    assert _read(built["mnist_784"] / "train.csv")["label"].nunique() == 10

    speech = features("parkinsons_speech")
    assert len(speech) == 201 and speech.shape[1] == 751 and speech.shape[1] > 3 * len(speech)

    reviews = features("food_reviews")
    assert kinds("food_reviews")["review"] == "text" and reviews["product"].nunique() > 0.9 * len(reviews)

    hotel = kinds("hotel_rates")
    assert hotel["arrival_date"] == "datetime" and sum(k == "categorical" for k in hotel.values()) >= 8
