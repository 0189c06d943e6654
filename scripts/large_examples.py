"""Example tasks of any size, for tables far larger than the data that ships offline.

    taxi_fares   new-york-city-taxi-fare-prediction's shape (MLE-bench Lite's largest table:
                 55M rows, 5.7 GB): labels.csv with key, fare_amount, pickup_datetime written
                 `2012-04-21 08:30:00 UTC`, four coordinates with the real data's zeros, swaps
                 and outliers, passenger_count; test.csv of 9,914 clean rows; RMSE.

The rows are synthetic, drawn from a fare model with the real data's structure (a flag fall, a
rate per distance that rose over the years, rush-hour time, airport flat fares, tolls, noise),
so a model that reads distance from the coordinates and time from the stamp learns it, and one
that does not is measurably worse. Written in chunks through Arrow: 20M rows take about a
minute and never hold more than one chunk in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ANSWERS_DIR = ".answers"
TEST_ROWS = 9_914  # the competition's test table
CHUNK_ROWS = 1_000_000
DEFAULT_ROWS = 200_000
START = np.datetime64("2009-01-01T00:00:00", "s")
SPAN_S = int((np.datetime64("2015-06-30T23:59:59", "s") - START).astype(int))
CENTRE = (-73.975, 40.751)  # midtown Manhattan
AIRPORTS = {"jfk": (-73.7822, 40.6441), "lga": (-73.8740, 40.7769), "ewr": (-74.1745, 40.6895)}
KM_PER_DEG_LAT = 111.0
KM_PER_DEG_LON = 84.2  # at 40.75 degrees north

DESCRIPTION = """# New York City Taxi Fare Prediction (synthetic, {n_train:,} rows)

## Overview

Predict the fare amount (inclusive of tolls) for a taxi ride in New York City given the pickup
and dropoff locations, the pickup time and the number of passengers.

## Evaluation

Submissions are evaluated using the root mean-squared error (RMSE) between the predicted fares
and the actual fares.

## Submission File

```
key,fare_amount
{first_key},11.35
...
```

## Data

- **labels.csv** — the training set ({n_train:,} rows): `key` (a unique string of the pickup
  time and a number), `fare_amount` (the target, in dollars), `pickup_datetime`,
  `pickup_longitude`, `pickup_latitude`, `dropoff_longitude`, `dropoff_latitude`,
  `passenger_count`. Like the real data it has rides with zero coordinates, coordinates outside
  the city, negative and extreme fares.
- **test.csv** — the test set ({n_test:,} rows), the same columns without `fare_amount`.
- **sample_submission.csv** — a sample submission in the correct format.
"""


@dataclass(frozen=True)
class LargeExample:
    name: str
    task_type: str
    metric: str
    description: str
    source: str
    build: Callable[[Path, int | None, int, int], Path]  # (folder, rows or None: the default, seed, split seed)


def make_taxi_fares(out_dir: Path, rows: int | None = None, seed: int = 0, split_seed: int | None = None) -> Path:
    """Write the task: `rows` training rows in labels.csv, 9,914 test rows (fewer for a small
    `rows`: a fifth of them), their answers kept in .answers/. `split_seed` draws the test rows
    apart from the training rows' seed, as the other examples' splits do."""
    rows = DEFAULT_ROWS if rows is None else rows
    if rows < 100:
        raise ValueError(f"taxi_fares needs at least 100 rows, got {rows}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split_seed = seed if split_seed is None else split_seed
    n_test = min(TEST_ROWS, max(20, rows // 5))

    labels = out / "labels.csv"
    with labels.open("wb") as sink:
        for number, start in enumerate(range(0, rows, CHUNK_ROWS)):
            size = min(CHUNK_ROWS, rows - start)
            rng = np.random.default_rng([seed, number])
            table = _rides(rng, start, size, clean=False)
            _write(table, sink, header=number == 0)

    rng = np.random.default_rng([seed, 10_000 + split_seed])
    test = _rides(rng, rows, n_test, clean=True)
    answers = test.select(["key", "fare_amount"])
    _write(test.drop_columns(["fare_amount"]), out / "test.csv")
    _write(pa.table({"key": test["key"], "fare_amount": pa.array(np.full(n_test, 11.35))}), out / "sample_submission.csv")

    (out / "description.md").write_text(DESCRIPTION.format(n_train=rows, n_test=n_test, first_key=test["key"][0].as_py()))
    kept = out / ANSWERS_DIR
    kept.mkdir(exist_ok=True)
    _write(answers, kept / "answers.csv")
    meta = {"name": "taxi_fares", "metric": "rmse", "task_type": "regression", "target": "fare_amount", "id": "key",
            "submission": "label", "classes": [], "positive_class": None, "seed": seed, "split_seed": split_seed,
            "rows": rows, "source": "synthetic, in the shape of Kaggle's new-york-city-taxi-fare-prediction"}
    (kept / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _write(table: pa.Table, sink, header: bool = True) -> None:
    """A table as the competition's files are written: a bare header, no quotes."""
    if isinstance(sink, Path):
        with sink.open("wb") as f:
            return _write(table, f, header)
    if header:
        sink.write((",".join(table.column_names) + "\n").encode())
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))


def _rides(rng: np.random.Generator, first: int, n: int, clean: bool) -> pa.Table:
    """n rides numbered from `first`: the columns as the competition writes them, fare included."""
    seconds = rng.integers(0, SPAN_S, n)
    when = START + seconds.astype("timedelta64[s]")
    hour = (seconds // 3600 + 0) % 24  # START is midnight
    weekday = (seconds // 86400 + 3) % 7  # 2009-01-01 was a Thursday (0 = Monday)
    years = seconds / (365.25 * 86400)

    pickup = _points(rng, n)
    trip_km = np.clip(rng.gamma(1.6, 2.1, n), 0.05, 60)
    angle = rng.uniform(0, 2 * np.pi, n)
    dropoff = np.stack([pickup[:, 0] + trip_km * np.cos(angle) / KM_PER_DEG_LON,
                        pickup[:, 1] + trip_km * np.sin(angle) / KM_PER_DEG_LAT], axis=1)
    airport_trip = rng.random(n) < 0.03  # a ride to or from an airport
    towards = rng.choice(list(AIRPORTS), n)
    for name, (lon, lat) in AIRPORTS.items():
        at = airport_trip & (towards == name)
        ends = rng.random(n) < 0.5
        dropoff[at & ends] = np.array([lon, lat]) + rng.normal(0, 0.004, (int((at & ends).sum()), 2))
        pickup[at & ~ends] = np.array([lon, lat]) + rng.normal(0, 0.004, (int((at & ~ends).sum()), 2))

    km = np.hypot((dropoff[:, 0] - pickup[:, 0]) * KM_PER_DEG_LON, (dropoff[:, 1] - pickup[:, 1]) * KM_PER_DEG_LAT) * 1.3
    rush = ((hour >= 16) & (hour < 20) & (weekday < 5)) | ((hour >= 7) & (hour < 10) & (weekday < 5))
    night = (hour >= 20) | (hour < 6)
    minutes = km / np.where(rush, 14, np.where(night, 32, 22)) * 60 * rng.lognormal(0, 0.2, n)
    rate_km = np.where(years < 3.7, 1.25, 1.55)  # the September 2012 fare rise
    fare = 2.5 + rate_km * km + 0.35 * minutes + 0.5 * night + 1.0 * (rush & (hour >= 16))
    jfk = _near(pickup, AIRPORTS["jfk"]) | _near(dropoff, AIRPORTS["jfk"])
    fare = np.where(jfk & (years >= 3.7) & airport_trip, 52.0, fare)
    fare = fare + np.where(rng.random(n) < 0.04, rng.choice([5.33, 5.76, 2.44], n), 0.0)  # tolls
    fare = np.round(np.maximum(2.5, fare * rng.lognormal(0, 0.08, n) + rng.normal(0, 0.6, n)) * 2) / 2
    passengers = rng.choice([1, 2, 3, 4, 5, 6], n, p=[0.69, 0.15, 0.045, 0.02, 0.065, 0.03])

    if not clean:  # the real table's dirt: zero or swapped coordinates, odd fares and counts
        zero = rng.random(n) < 0.02
        pickup[zero] = 0.0
        dropoff[zero & (rng.random(n) < 0.9)] = 0.0
        swapped = rng.random(n) < 0.002
        pickup[swapped] = pickup[swapped][:, ::-1]
        wild = rng.random(n) < 0.0005
        dropoff[wild] = rng.uniform(-3000, 3000, (int(wild.sum()), 2))
        fare = np.where(rng.random(n) < 0.0004, -fare, fare)
        fare = np.where(rng.random(n) < 0.0002, rng.uniform(300, 1300, n).round(2), fare)
        passengers = np.where(rng.random(n) < 0.0035, 0, passengers)
        passengers = np.where(rng.random(n) < 0.00002, 208, passengers)

    stamps = pc.strftime(pa.array(when, type=pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")
    numbers = pa.array(np.char.zfill((np.arange(first, first + n) + 1).astype(str), 7))
    return pa.table({
        "key": pc.binary_join_element_wise(stamps, numbers, "."),
        "fare_amount": pa.array(fare.round(2)),
        "pickup_datetime": pc.binary_join_element_wise(stamps, pa.scalar("UTC"), " "),
        "pickup_longitude": pa.array(pickup[:, 0].round(6)),
        "pickup_latitude": pa.array(pickup[:, 1].round(6)),
        "dropoff_longitude": pa.array(dropoff[:, 0].round(6)),
        "dropoff_latitude": pa.array(dropoff[:, 1].round(6)),
        "passenger_count": pa.array(passengers.astype(np.int64)),
    })


def _points(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pickups: most in Manhattan, the rest spread over the boroughs."""
    spread = np.where(rng.random(n) < 0.85, 0.02, 0.08)
    return np.stack([CENTRE[0] + rng.normal(0, 1, n) * spread * 0.8, CENTRE[1] + rng.normal(0, 1, n) * spread], axis=1)


def _near(points: np.ndarray, place: tuple[float, float], km: float = 1.5) -> np.ndarray:
    return np.hypot((points[:, 0] - place[0]) * KM_PER_DEG_LON, (points[:, 1] - place[1]) * KM_PER_DEG_LAT) < km


LARGE_EXAMPLES = {
    "taxi_fares": LargeExample("taxi_fares", "regression", "rmse",
                               f"NYC taxi rides, coordinates and times (any size: --rows N, default {DEFAULT_ROWS:,})",
                               "synthetic, in the shape of new-york-city-taxi-fare-prediction", make_taxi_fares),
}
