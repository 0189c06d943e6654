"""How a fit's seconds grow with its training rows, from fits timed on samples.

The check (runtime/harness.py) times one fold's fit at doubling sample sizes and predicts the
fit at the fold's real rows from them. The model of a fit's time is

    seconds(m) = fixed + per_row * m ** exponent

`fixed` is what no row changes (imports, a model's set-up, its trees' bookkeeping on tiny
data); on a few hundred rows it is most of a fit, so a line through the origin from one small
sample would multiply it by the rows (LightGBM: 0.1 s on 250 rows is not 16 s on 40,000). The
exponent is chosen among EXPONENTS by least relative squares over every point: 1 for models
linear in their rows (boosted trees with a fixed number of rounds, linear models, encoders), up
to 2 for those whose cost is the square of the rows (neighbours, kernel methods, pairwise
features). It is never below 1 (a flatter curve on small samples is the fixed part, which
fades) and never above 2 (a steeper one on small samples is noise, or a method no budget here
could run; extrapolated far at 3, it would call anything too slow): conservative, not absurd.
The prediction is never below the line through the first and last points either: a cost that
grows at least linearly lies above that line beyond them, whatever the noise did to the fit.

Simulated with +-20% noise on each timing and the probe's stopping rule, the prediction 8-160x
beyond the last sample came out within 0.8-1.8x (5th-95th percentile) for linear and n log n
costs, 0.6-1.3x for rows^1.3, and 0.2-1.3x for quadratic ones (the farther, the lower).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXPONENTS = tuple(np.round(np.arange(1.0, 2.0001, 0.1), 2))


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


def extrapolate(points: Sequence[tuple[float, float]], rows: float) -> tuple[float, FitCurve]:
    """The seconds a fit on `rows` rows takes, from (rows, seconds) points: the fitted curve's,
    never below the line through the first and last points (measured exactly when a point is at
    `rows`)."""
    curve = fit_curve(points)
    for m, t in points:
        if m == rows:
            return float(t), curve
    (m0, t0), (m1, t1) = min(points), max(points)
    secant = t1 + max(0.0, (t1 - t0) / (m1 - m0)) * (rows - m1) if m1 > m0 else t1
    return max(curve.seconds(rows), secant), curve


def fit_curve(points: Sequence[tuple[float, float]]) -> FitCurve:
    """The curve through (rows, seconds) points, each weighted by its own size (relative errors):
    one point gives a line through the origin (the fixed part cannot be told apart); two, a line;
    three or more, the exponent that fits them best."""
    rows = np.asarray([p[0] for p in points], dtype=float)
    secs = np.maximum(np.asarray([p[1] for p in points], dtype=float), 1e-6)
    if len(points) == 1:
        return FitCurve(0.0, float(secs[0] / max(rows[0], 1.0)), 1.0)
    best: tuple[float, FitCurve] | None = None
    for exponent in (EXPONENTS if len(points) >= 3 else (1.0,)):
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
