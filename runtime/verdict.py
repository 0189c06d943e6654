"""One rule for "better": which result is the best, for every part of a run that says so.

A result stands once it is established. A track's planned attempts (its recipe or the LLM's
modules, their repairs and fallbacks, its members) stand as they score: a handful of different
models, compared by their scores. A result found by searching stands only when it beats what it
was searched from by more than fold noise (`beyond_fold_noise`): a refine candidate its chain's
base, the ensemble's blend the best single result, a bag of the folds cut again (long budgets)
the attempt it bags, the stacker the blend or single result it would replace. Predictions that
are no attempt of the run's folds (a blend, a bag's average over its cuts, a stacker) are judged
on the same folds as what they would replace (`predictions_beyond_fold_noise`). Picking the highest of many noisy scores
otherwise picks the noise: a 60 s penguins run had refine try 70 candidates, a dozen of them
within fold noise of its best, each with a "better" score.

Of the results that stand, the best is the one that scores best (`best_standing`, `best_track`).
The anytime submission holds the best standing result so far (`replaces`); a track's and the
run's best, refine's "kept", the ensemble's single result and the progress all read this rule,
so none of them calls a result the best that another says is not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from runtime.metrics import Metric
from runtime.records import AttemptResult, TrackResult


class Scored(Protocol):
    """A result scored out of fold, and on each fold of the same folds as the one it is judged against."""

    score: float | None
    fold_scores: list[float]


@dataclass
class FoldScores:
    """A scored result that is no attempt (the ensemble's blend, its best single member's on the same folds)."""

    score: float
    fold_scores: list[float] = field(default_factory=list)


def beyond_fold_noise(metric: Metric, candidate: Scored, base: Scored, folds_per_cut: int = 0) -> bool:
    """Whether the candidate is better than its base by more than fold noise: better out of
    fold, and its fold-by-fold gain (the same folds for both) has a mean above its standard
    error. On a few hundred rows a 60-candidate search otherwise keeps whichever candidate the
    folds happened to favour. Folds either one could not score are left out; with fewer than two
    folds to compare, the score out of fold decides.

    When the folds are cut several times (more fold scores than `folds_per_cut`), the cuts share
    their rows, so their gains are not independent: the variance is corrected as Nadeau and
    Bengio do for repeated cross-validation, by 1/J + 1/(k - 1) instead of 1/J."""
    if not metric.better(candidate.score, base.score):
        return False
    a, b = np.asarray(candidate.fold_scores, dtype=float), np.asarray(base.fold_scores, dtype=float)
    if len(a) != len(b):
        return True
    gain = np.asarray([metric.gain(x, y) for x, y in zip(a, b) if np.isfinite(x) and np.isfinite(y)])
    if len(gain) < 2:
        return True
    share = 1.0 / len(gain) + (1.0 / (folds_per_cut - 1) if 1 < folds_per_cut < len(gain) else 0.0)
    return bool(gain.mean() > gain.std(ddof=1) * np.sqrt(share))


def fold_scores(metric: Metric, y: np.ndarray, folds: np.ndarray | None, pred: np.ndarray) -> list[float]:
    """The predictions' score on each fold (the first cut's), for judging predictions against
    others fold by fold: on small data a blend tuned on the out-of-fold rows otherwise keeps their
    noise. None: no folds known, so the score out of fold alone decides."""
    if folds is None:
        return []
    return [float(metric.score(y[folds == k], pred[folds == k])) for k in np.unique(folds)]


def scored_on_folds(metric: Metric, y: np.ndarray, folds: np.ndarray | None, pred: np.ndarray) -> FoldScores:
    """Out-of-fold predictions as a result to judge: their score, and their score on each fold."""
    return FoldScores(float(metric.score(y, pred)), fold_scores(metric, y, folds, pred))


def predictions_beyond_fold_noise(metric: Metric, y: np.ndarray, folds: np.ndarray | None, candidate: np.ndarray,
                                  base: np.ndarray) -> bool:
    """`beyond_fold_noise` for two out-of-fold predictions of the same rows, both scored on the same
    folds: a bag whose cuts are averaged against the attempt it bags, a stacker against the blend."""
    return beyond_fold_noise(metric, scored_on_folds(metric, y, folds, candidate), scored_on_folds(metric, y, folds, base))


# sources whose attempts are found by searching (refine's candidates) or re-fit at the end (bags): they
# stand only once kept, beyond fold noise
JUDGED_SOURCES = ("refine", "bag")


def stands(attempt: AttemptResult) -> bool:
    """Whether the attempt's score stands as a result: a planned attempt's once it scored; a
    refine candidate's (or a bag's) only once refine kept it: it beat what it came from beyond fold
    noise."""
    return attempt.status == "ok" and attempt.score is not None and (attempt.source not in JUDGED_SOURCES or attempt.kept)


def best_standing(metric: Metric, attempts: Iterable[AttemptResult]) -> AttemptResult | None:
    """The standing attempt that scores best (the first of equals); None when none stands. Where no
    standing score is a number (NaN everywhere), the first standing attempt."""
    standing = [a for a in attempts if stands(a)]
    return metric.best(standing, key=lambda a: a.score) or (standing[0] if standing else None)


def best_track(metric: Metric, tracks: dict[str, TrackResult]) -> TrackResult | None:
    """The track whose best (its best standing attempt) scores best: the run's best result's."""
    return metric.best([t for t in tracks.values() if t.status == "ok"], key=lambda t: t.score)


def replaces(metric: Metric, attempt: AttemptResult, held_score: float | None) -> bool:
    """Whether the attempt becomes the best result so far, over one that scored `held_score`
    (None: nothing is held yet)."""
    return stands(attempt) and metric.better(attempt.score, held_score)
