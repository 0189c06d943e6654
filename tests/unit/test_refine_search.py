"""refine's offline search, without a kernel: what a chain proposes, in which order, how a kept
candidate moves it, and the Optuna study it keeps in the run folder."""

from __future__ import annotations

import numpy as np

from graph.context import RunContext, Settings
from nodes.refine import (
    Candidate,
    Chain,
    first_pass,
    learn,
    next_candidate,
    open_study,
    sampled,
    searched_params,
    tell_study,
)
from runtime.params import SPACES
from runtime.records import AttemptResult, TaskSpec


def _attempt(n, score, member=None, folds=(0.9, 0.8)):
    return AttemptResult(track="traditional", attempt=n, source="member" if member else "recipe", status="ok",
                         score=score, fold_scores=list(folds), member=member, dir=f"/x/attempt_{n}")


def _task(metric="auc"):
    return TaskSpec(task_dir="/nowhere", task_type="binary", target="y", id_column=None, metric=metric,
                    greater_is_better=metric == "auc", submission_format="proba", submission_columns=["y"])


def _chain(params, names=None):
    moves = [p for p in searched_params(SPACES["traditional"], params) if names is None or p.name in names]
    return Chain(base=1, current=1, params=params, code_dir="/x/attempt_1", pending=first_pass(moves),
                 study="traditional-attempt_1")


def _state(tmp_path):
    """A run folder as refine reads it: the task, profile and blueprint the earlier stages wrote."""
    from runtime.records import Blueprint, DataProfile, TargetProfile, ValidationScheme

    (tmp_path / "task.json").write_text(_task().model_dump_json())
    (tmp_path / "profile.json").write_text(DataProfile(n_train=100, n_test=10, columns=[],
                                                       target=TargetProfile(kind="classes")).model_dump_json())
    (tmp_path / "blueprint.json").write_text(Blueprint(validation=ValidationScheme(kind="kfold"), tracks=[],
                                                       budget_s=60).model_dump_json())
    return {"run_dir": str(tmp_path), "track": "traditional", "bases": [1]}


def _next(state, chain, left=1e9, typical=1.0):
    cand, chain, _ = next_candidate(state, RunContext(settings=Settings()), chain, typical=typical, left=left)
    return cand, chain


def test_only_declared_numeric_params_are_searched():
    params = {"num_leaves": 31, "learning_rate": 0.05, "seed": 0, "text": True, "objective": None, "C": 1.0}
    names = [p.name for p in searched_params(SPACES["traditional"], params)]
    assert names == ["num_leaves", "learning_rate"]  # C is the linear member's, not LightGBM's
    assert [p.name for p in searched_params(SPACES["linear"], params)] == ["C"]  # ... where it is searched
    assert [p.name for p in searched_params(SPACES["pretrained"], {"C": 0.3})] == ["C"]  # known once the base ran
    assert searched_params(SPACES["traditional"], {"seed": 0}) == []  # nothing numeric to move


def test_the_declared_steps_come_first_in_order(tmp_path):
    state = _state(tmp_path)
    chain = _chain({"num_leaves": 16, "learning_rate": 0.05, "seed": 0})
    notes = []
    for _ in range(3):
        cand, chain = _next(state, chain)
        notes.append(cand.note)
    assert notes == ["num_leaves 16 -> 32", "num_leaves 16 -> 8", "learning_rate 0.05 -> 0.025"]
    assert cand.cost == 2.0  # halving the learning rate doubles the trees


def test_a_kept_step_becomes_the_base_and_is_repeated(tmp_path):
    state = _state(tmp_path)
    chain = _chain({"num_leaves": 16, "learning_rate": 0.05, "seed": 0})
    first, chain = _next(state, chain)
    assert first.params["num_leaves"] == 32
    chain = learn(chain, first, _attempt(2, 0.95), _attempt(1, 0.9), kept=True)
    assert chain.current == 2 and chain.params["num_leaves"] == 32
    again, chain = _next(state, chain)
    assert again.params["num_leaves"] == 64 and again.note == "num_leaves 32 -> 64"
    chain = learn(chain, again, _attempt(3, 0.9), _attempt(2, 0.95), kept=False)
    nxt, chain = _next(state, chain)
    # the other step of the same move (down) is dropped once one direction helped
    assert nxt.params == {"num_leaves": 32, "learning_rate": 0.025, "seed": 0}


def test_rejected_candidates_leave_the_base_alone(tmp_path):
    state = _state(tmp_path)
    chain = _chain({"num_leaves": 16, "seed": 0}, names={"num_leaves"})
    for n in range(2):
        cand, chain = _next(state, chain)
        chain = learn(chain, cand, _attempt(n + 2, 0.8), _attempt(1, 0.9), kept=False)
        assert chain.params == {"num_leaves": 16, "seed": 0} and chain.current == 1


def test_a_candidate_too_slow_for_the_time_left_is_passed_over(tmp_path):
    chain = _chain({"learning_rate": 0.05, "num_leaves": 16, "seed": 0}, names={"learning_rate"})
    cand, _ = _next(_state(tmp_path), chain, left=6.0, typical=4.0)  # halving the rate costs 2x: 8 s > 6 s
    assert cand.kind == "reseed" and cand.params["learning_rate"] == 0.05


def test_after_the_steps_tpe_and_reseeds_take_turns_and_never_repeat(tmp_path):
    state = _state(tmp_path)
    chain = _chain({"num_leaves": 16, "learning_rate": 0.05, "seed": 0}, names={"num_leaves", "learning_rate"})
    kinds, seen = [], set()
    for n in range(16):
        cand, chain = _next(state, chain)
        if cand is None:
            break
        kinds.append(cand.kind)
        key = tuple(sorted(cand.params.items()))
        assert key not in seen
        seen.add(key)
        for p in searched_params(SPACES["traditional"], cand.params):
            assert p.low <= cand.params[p.name] <= p.high, (p.name, cand.params[p.name])
        result = _attempt(n + 2, 0.8 + 0.001 * n, folds=(0.8, 0.7 + n / 100))
        tell_study(state, chain, cand, result)
        chain = learn(chain, cand, result, _attempt(1, 0.9), kept=False)
    assert kinds[:3] == ["move", "move", "move"]
    assert "tpe" in kinds and "reseed" in kinds
    assert kinds.count("reseed") <= Settings().refine_max_reseeds
    # every candidate was told to the study in the run folder, after the base enqueued first
    study = open_study(str(tmp_path), "traditional", chain.study, "auc", seed=0)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == len(kinds)


def test_tpe_is_seeded(tmp_path):
    def proposals(folder):
        state = _state(folder)
        chain = _chain({"num_leaves": 16, "learning_rate": 0.05, "seed": 0}, names={"num_leaves", "learning_rate"})
        out = []
        for n in range(6):
            study = open_study(str(folder), "traditional", chain.study, "auc", seed=n)
            cand, chain = sampled(study, set(), RunContext(settings=Settings()), chain, SPACES["traditional"], lambda c: True)
            out.append(cand.params)
            tell_study(state, chain, cand, _attempt(n + 2, 0.8 + 0.01 * n))
            chain = learn(chain, cand, _attempt(n + 2, 0.8), _attempt(1, 0.9), kept=False)
        return out

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert proposals(tmp_path / "a") == proposals(tmp_path / "b")


def test_a_seed_the_modules_ignore_ends_the_reseeds():
    chain = Chain(base=1, current=1, params={"C": 1.0, "seed": 0}, code_dir="/x/attempt_1", study="s")
    reseed = Candidate(params={"C": 1.0, "seed": 1000}, note="seed 0 -> 1000", kind="reseed")
    base = _attempt(1, 0.85)
    assert not learn(chain, reseed, _attempt(2, 0.85), base, kept=False).reseed  # the very same folds
    assert learn(chain, reseed, _attempt(2, 0.86, folds=(0.91, 0.81)), base, kept=False).reseed  # bagging noise


def test_a_gain_within_fold_noise_is_not_kept():
    """Better out of fold by a hair that the folds disagree on: not kept; a gain every fold
    shows: kept."""
    from runtime.metrics import get_metric
    from runtime.verdict import beyond_fold_noise

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


def test_refine_moves_on_to_each_other_model_family_best_first():
    from nodes.refine import refine_bases
    from runtime.metrics import get_metric
    from runtime.records import TrackResult

    attempts = [_attempt(1, 0.90), _attempt(2, 0.93, "linear"), _attempt(3, 0.91, "catboost"),
                _attempt(4, 0.92, "catboost"), _attempt(5, 0.80, "extratrees"), _attempt(6, 0.94, "linear")]
    track = TrackResult(track="traditional", status="ok", best_attempt=6, score=0.94, attempts=attempts)
    assert [a.attempt for a in refine_bases(track, get_metric("auc"))] == [6, 4, 1, 5]
    assert [a.attempt for a in refine_bases(track, get_metric("log_loss"))][1:] == [5, 1, 3]  # lower is better


def test_the_harness_prunes_only_a_candidate_worse_on_every_fold_so_far():
    from runtime.harness import clearly_worse
    from runtime.metrics import get_metric

    auc, rmse = get_metric("auc"), get_metric("rmse")
    rule = {"after": 2, "best": [0.90, 0.85, 0.88], "margin": 0.01}
    assert not clearly_worse(auc, [0.70], rule)  # one fold is not enough
    assert clearly_worse(auc, [0.80, 0.80], rule)
    assert not clearly_worse(auc, [0.91, 0.70], rule)  # better on one fold
    assert not clearly_worse(auc, [0.895, 0.845], rule)  # worse, but within the margin
    assert clearly_worse(rmse, [2.0, 2.0], {"after": 2, "best": [1.0, 1.1], "margin": 0.1})  # lower is better


def test_telling_the_study_twice_records_the_candidate_once(tmp_path):
    """A judge killed after telling the study and before its checkpoint runs again on resume."""
    state = _state(tmp_path)
    chain = _chain({"num_leaves": 16, "learning_rate": 0.05, "seed": 0}, names={"num_leaves", "learning_rate"})
    study = open_study(str(tmp_path), "traditional", chain.study, "auc", seed=0)
    tpe, chain = sampled(study, set(), RunContext(settings=Settings()), chain, SPACES["traditional"], lambda c: True)
    move = Candidate(params={**chain.params, "num_leaves": 32}, note="num_leaves 16 -> 32", kind="move", move="num_leaves")
    for cand, n in ((tpe, 2), (move, 3)):
        for _ in range(2):
            tell_study(state, chain, cand, _attempt(n, 0.8))
    trials = open_study(str(tmp_path), "traditional", chain.study, "auc", seed=0).trials
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)


def test_a_chain_searches_only_what_its_modules_read(tmp_path):
    """An LLM's modules may ignore a declared name: moving it would change nothing."""
    from nodes.refine import new_chain

    state = {**_state(tmp_path), "own": [1]}
    folder = tmp_path / "tracks" / "traditional" / "attempt_1"
    folder.mkdir(parents=True)
    (folder / "features.py").write_text("class Features:\n    pass\n")
    (folder / "model.py").write_text('class Model:\n    def __init__(self, task, params):\n'
                                     '        self.leaves = params.get("num_leaves", 31)\n')
    base = AttemptResult(track="traditional", attempt=1, source="llm", status="ok", score=0.9, fold_scores=[0.9, 0.9],
                         params={"seed": 0}, dir=str(folder))
    chain = new_chain(state, base, RunContext(settings=Settings()))
    assert {name for name, _ in chain.pending} == {"num_leaves"}
    assert "learning_rate" not in chain.params and chain.params["num_leaves"] == 15  # the declared default here


def test_bags_go_to_the_families_a_blend_uses(tmp_path):
    """The best family is always bagged; another only when a blend of the families' best attempts
    gives it weight (a family no blend uses would spend a bag's time for nothing)."""
    from nodes.refine import blended_families

    rng = np.random.RandomState(0)
    a, b = rng.normal(size=400), rng.normal(size=400)
    y = a + b
    np.save(tmp_path / "y.npy", y)
    folders = {}
    for name, oof in (("own", a + b + rng.normal(scale=0.8, size=400)), ("linear", a + b + rng.normal(scale=0.8, size=400)),
                      ("knn", rng.normal(scale=3.0, size=400))):
        folder = tmp_path / name
        folder.mkdir()
        np.save(folder / "oof.npy", oof)
        folders[name] = str(folder)
    used = blended_families(str(tmp_path), "rmse", tuple(folders.items()))
    assert used == {"own", "linear"}  # independent errors: their mean helps; noise does not
    assert blended_families(str(tmp_path), "rmse", (("knn", folders["knn"]),)) == {"knn"}


def test_a_step_too_slow_now_stays_for_later(tmp_path):
    """A long run's search resumes after its bags: a step passed over for time is still there."""
    chain = _chain({"learning_rate": 0.05, "seed": 0}, names={"learning_rate"})
    cand, chain = _next(_state(tmp_path), chain, left=6.0, typical=4.0)  # halving the rate costs 2x: 8 s > 6 s
    assert cand.kind == "reseed"
    assert ("learning_rate", 0) in chain.pending  # the halving, kept
    later, _ = _next(_state(tmp_path), chain, left=100.0, typical=4.0)
    assert later.note == "learning_rate 0.05 -> 0.025"
