"""How a fit's seconds grow with its training rows, from fits timed on samples.

The check (runtime/harness.py) times one fold's fit at doubling sample sizes and predicts the
fit at the fold's real rows from them (`predict`). What it may say depends on what it saw:

- measured: a sample was the fold's full size; its seconds are the prediction.
- extrapolated: three samples or more, the last taking GROWTH times the first (the part that
  grows with the rows shows above the fixed part and the noise), the last two steps growing
  alike (STEADY), and a curve through them that misses none by much (RESIDUAL). The curve is

      seconds(m) = fixed + per_row * m ** exponent

  `fixed` is what no row changes (imports, a model's set-up); on a few hundred rows it is most
  of a fit, so a line through the origin from one small sample would multiply it by the rows.
  The exponent is chosen among EXPONENTS by least relative squares: 1 for costs linear in the
  rows (linear models, encoders), up to 2 for those that grow as their square (neighbours,
  kernel methods, pairwise features). Never below 1 (a flatter curve on small samples is the
  fixed part, which fades) and never above 2 (steeper on small samples is noise, or a method no
  budget here could run): conservative, not absurd. Nor above the growth the samples before
  the last show (a jump at the last alone is a change of regime, see below), nor below the line
  through the first and last samples (a cost that grows at least linearly lies above it).
- at least: anything else, the seconds of the largest sample (a fold has more rows). Boosted
  trees are why: their time follows the rounds early stopping picks and the settings the
  recipes choose by size more than the rows (the traditional recipe on diamonds, measured on a
  busy 2-core machine: 0.4 s on 256 rows, 0.6 s on 2,048, 2.3-2.8 s on 4,096, 4 s on 34,000),
  so no curve through small samples extrapolates them: a line through two noisy samples said
  47x the truth, and three (0.5, 1.4, 2.3 s on 256..1,024 rows) grow 4x in two unlike steps.

Simulated with +-20% noise on each timing (the faster of two) and the check's rule (samples
double until the prediction is measured or extrapolated), the prediction at 40,000 and 400,000
rows came out within 0.85-1.4x of the truth (5th-95th percentile) for linear and n log n costs,
0.3-1.2x for rows^1.3 and 0.01-1.05x for quadratic ones with a fixed part: it errs low on
superlinear costs rather than calling what fits too slow; the harness's projection after the
first fold is the backstop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXPONENT_STEP = 0.1
EXPONENTS = tuple(np.round(np.arange(1.0, 2.0001, EXPONENT_STEP), 2))
GROWTH = 4.0     # the last sample's seconds over the first's from which the growing part shows
RESIDUAL = 0.25  # the curve's root mean squared relative miss over the samples, at most, to be extrapolated
STEADY = 1.5     # the last two samples' growth factors differ by at most this factor, to be extrapolated


@dataclass(frozen=True)
class FitCurve:
    fixed_s: float
    per_row_s: float
    exponent: float

    def seconds(self, rows: float) -> float:
        return self.fixed_s + self.per_row_s * max(0.0, rows) ** self.exponent

    def rows_for(self, seconds: float) -> int:
        """The most training rows whose fit takes `seconds` (0 when the fixed part alone does not fit)."""
        if seconds <= self.fixed_s:
            return 0
        if self.per_row_s <= 0:
            return np.iinfo(np.int64).max
        return int(((seconds - self.fixed_s) / self.per_row_s) ** (1.0 / self.exponent))


def full_fit_folds(n_folds: int) -> float:
    """What the fit on all rows costs, in folds' fits: it has k / (k - 1) times a fold's rows."""
    return n_folds / max(1, n_folds - 1)


@dataclass(frozen=True)
class Prediction:
    seconds: float
    kind: str  # "measured", "extrapolated" or "at least" (see the module's docstring)
    curve: FitCurve


def predict(points: Sequence[tuple[float, float]], rows: float) -> Prediction:
    """The seconds a fit on `rows` rows takes, from (rows, seconds) samples, and how it is known."""
    curve = fit_curve(points)
    largest = max(points)
    if largest[0] >= rows:
        return Prediction(float(largest[1]), "measured", curve)
    ordered = sorted(points)
    (m0, t0), (m1, t1), (_, t2) = ordered[-3:] if len(ordered) >= 3 else [(1, 1.0)] * 3
    steps = sorted([max(t1, 1e-6) / max(t0, 1e-6), max(t2, 1e-6) / max(t1, 1e-6)])
    # the last two steps grow alike (a jump at the last alone is a change of regime: trees'
    # settings by size, the rounds early stopping picks on a small sample), and that growth,
    # before the last, bounds the exponent
    if len(points) >= 3 and largest[1] >= GROWTH * ordered[0][1] and steps[1] <= STEADY * steps[0]:
        before = np.log(max(t1, 1e-6) / max(t0, 1e-6)) / np.log(m1 / m0) if m1 > m0 else 1.0
        curve = fit_curve(points, most=float(np.clip(before, 1.0, 2.0)))
        if miss(curve, points) <= RESIDUAL:
            return Prediction(extrapolate(points, rows, curve)[0], "extrapolated", curve)
    return Prediction(float(largest[1]), "at least", curve)


def miss(curve: FitCurve, points: Sequence[tuple[float, float]]) -> float:
    """The curve's root mean squared relative miss over the samples."""
    return float(np.sqrt(np.mean([((curve.seconds(m) - t) / max(t, 1e-6)) ** 2 for m, t in points])))


def extrapolate(points: Sequence[tuple[float, float]], rows: float, curve: FitCurve | None = None) -> tuple[float, FitCurve]:
    """The fitted curve's seconds at `rows` (or `curve`'s), never below the line through the
    first and last samples (a sample at `rows`: its seconds)."""
    curve = curve or fit_curve(points)
    for m, t in points:
        if m == rows:
            return float(t), curve
    (m0, t0), (m1, t1) = min(points), max(points)
    secant = t1 + max(0.0, (t1 - t0) / (m1 - m0)) * (rows - m1) if m1 > m0 else t1
    return max(curve.seconds(rows), secant), curve


def fit_curve(points: Sequence[tuple[float, float]], most: float = 2.0) -> FitCurve:
    """The curve through (rows, seconds) points, each weighted by its own size (relative errors):
    one point gives a line through the origin (the fixed part cannot be told apart); two, a line;
    three or more, the exponent up to `most` that fits them best."""
    rows = np.asarray([p[0] for p in points], dtype=float)
    secs = np.maximum(np.asarray([p[1] for p in points], dtype=float), 1e-6)
    if len(points) == 1:
        return FitCurve(0.0, float(secs[0] / max(rows[0], 1.0)), 1.0)
    best: tuple[float, FitCurve] | None = None
    # `most` rounds to the nearest exponent of the grid: samples growing 3.97x a doubling are rows^2
    # (a bound of 1.99 that excluded 2.0 extrapolated them as rows^1.9, 7% short at twice the rows)
    for exponent in ([e for e in EXPONENTS if e <= most + EXPONENT_STEP / 2] if len(points) >= 3 else (1.0,)):
        curve = _least_squares(rows, secs, float(exponent))
        residual = float(np.sum(((np.array([curve.seconds(m) for m in rows]) - secs) / secs) ** 2))
        if best is None or residual < best[0] - 1e-12:
            best = (residual, curve)
    return best[1]


def _least_squares(rows: np.ndarray, secs: np.ndarray, exponent: float) -> FitCurve:
    """fixed, per_row >= 0 minimising the relative squared error at this exponent."""
    weight = 1.0 / secs
    grown = rows ** exponent
    design = np.column_stack([weight, weight * grown])
    (fixed, per_row), *_ = np.linalg.lstsq(design, np.ones_like(secs), rcond=None)
    if per_row < 0:  # no growth measured: a constant
        return FitCurve(float(np.sum(weight) / np.sum(weight * weight)), 0.0, exponent)
    if fixed < 0:  # no fixed part: through the origin
        per_row = float(np.sum(weight * grown) / np.sum((weight * grown) ** 2))
        return FitCurve(0.0, per_row, exponent)
    return FitCurve(float(fixed), float(per_row), exponent)
