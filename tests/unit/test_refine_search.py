"""refine's offline search, without a kernel: what it proposes, in which order, and how a kept
candidate moves the base."""

from __future__ import annotations

from nodes.refine import MAX_RESEEDS, MOVES, ParamSearch, searchable

RECIPE = '''"""A recipe.

Params (all optional):
  num_leaves      31
  learning_rate   0.05
  seed            0
"""
'''


def _moves(*names):
    return [m for m in MOVES if m.param in names]


def test_only_documented_numeric_params_are_searched():
    params = {"num_leaves": 31, "learning_rate": 0.05, "seed": 0, "min_child_samples": 20, "text": True}
    moves = searchable({"features": "x = 1\n", "model": RECIPE}, params)
    # min_child_samples is in the params but not documented by these modules
    assert [m.param for m in moves] == ["num_leaves", "learning_rate"]
    assert searchable({"model": RECIPE}, {"seed": 0}) == []  # nothing numeric to move


def test_first_pass_then_reseeds_and_pairs_until_exhausted():
    search = ParamSearch({"num_leaves": 16, "learning_rate": 0.05, "seed": 0}, _moves("num_leaves", "learning_rate"))
    notes, params = [], []
    while (cand := search.next()) is not None:
        notes.append(cand.note)
        params.append(tuple(sorted(cand.params.items())))
    assert notes[:3] == ["num_leaves 16 -> 32", "num_leaves 16 -> 8", "learning_rate 0.05 -> 0.025"]
    assert sum(n.startswith("seed") for n in notes) == MAX_RESEEDS
    assert len(params) == len(set(params))  # never the same candidate twice


def test_a_kept_step_becomes_the_base_and_is_repeated():
    search = ParamSearch({"num_leaves": 16, "learning_rate": 0.05, "seed": 0}, _moves("num_leaves", "learning_rate"))
    first = search.next()
    assert first.params["num_leaves"] == 32
    search.feedback(first, kept=True)
    again = search.next()
    assert again.params["num_leaves"] == 64 and again.note == "num_leaves 32 -> 64"
    search.feedback(again, kept=False)
    nxt = search.next()
    # the other step of the same move (down) is dropped once one direction helped
    assert nxt.params == {"num_leaves": 32, "learning_rate": 0.025, "seed": 0}
    assert nxt.cost == 2.0  # halving the learning rate doubles the trees


def test_rejected_candidates_leave_the_base_alone():
    search = ParamSearch({"num_leaves": 16, "seed": 0}, _moves("num_leaves"))
    for _ in range(3):
        cand = search.next()
        search.feedback(cand, kept=False)
        assert search.current == {"num_leaves": 16, "seed": 0}


def test_a_gain_within_fold_noise_is_not_kept():
    """Better out of fold by a hair that the folds disagree on: not kept; a gain every fold
    shows: kept."""
    from graph.state import AttemptResult
    from nodes.refine import beyond_fold_noise
    from runtime.metrics import get_metric

    def attempt(score, folds):
        return AttemptResult(track="t", attempt=1, source="refine", status="ok", score=score, fold_scores=folds, dir=".")

    auc = get_metric("auc")
    current = attempt(0.800, [0.78, 0.82, 0.80, 0.79, 0.81])
    noisy = attempt(0.801, [0.83, 0.78, 0.81, 0.77, 0.83])
    steady = attempt(0.806, [0.785, 0.826, 0.806, 0.796, 0.817])
    assert not beyond_fold_noise(auc, noisy, current)
    assert beyond_fold_noise(auc, steady, current)
    assert not beyond_fold_noise(auc, attempt(0.79, [0.9] * 5), current)  # worse out of fold
    rmse = get_metric("rmse")
    assert beyond_fold_noise(rmse, attempt(1.0, [0.9, 1.0, 1.1]), attempt(1.2, [1.1, 1.2, 1.3]))


def _attempt(n, score, member=None, folds=(0.9, 0.8)):
    from graph.state import AttemptResult

    return AttemptResult(track="traditional", attempt=n, source="member" if member else "recipe", status="ok",
                         score=score, fold_scores=list(folds), member=member, dir=f"/x/attempt_{n}")


def test_a_seed_the_modules_ignore_ends_the_reseeds():
    search = ParamSearch({"C": 1.0, "seed": 0}, [])  # a linear model: nothing to move but its seed
    first = search.next()
    assert first.note.startswith("seed")
    base = _attempt(1, 0.85)
    search.learn(first, _attempt(2, 0.85), base)  # the very same folds: the seed changed nothing
    assert search.next() is None
    other = ParamSearch({"C": 1.0, "seed": 0}, [])
    cand = other.next()
    other.learn(cand, _attempt(2, 0.86, folds=(0.91, 0.81)), base)  # bagging noise: other seeds may help
    assert other.next() is not None


def test_refine_moves_on_to_each_other_model_family_best_first():
    from graph.state import TrackResult
    from nodes.refine import refine_bases
    from runtime.metrics import get_metric

    attempts = [_attempt(1, 0.90), _attempt(2, 0.93, "linear"), _attempt(3, 0.91, "catboost"),
                _attempt(4, 0.92, "catboost"), _attempt(5, 0.80, "extratrees"), _attempt(6, 0.94, "linear")]
    track = TrackResult(track="traditional", status="ok", best_attempt=6, score=0.94, attempts=attempts)
    assert [a.attempt for a in refine_bases(track, get_metric("auc"))] == [6, 4, 1, 5]
    assert [a.attempt for a in refine_bases(track, get_metric("log_loss"))][1:] == [5, 1, 3]  # lower is better
