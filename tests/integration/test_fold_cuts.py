"""The harness's repeated folds on a real run folder: every cut scored, the out-of-fold
prediction the average of the cuts, and a time share that ends mid-cut keeps the cuts done."""

from __future__ import annotations

import json

import numpy as np
import pytest
from langgraph.runtime import Runtime

from graph.context import RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.profile import profile
from prompts import render_recipe
from runtime.harness import Harness
from runtime.saved_models import MODELS_DIR

# What a fold's fit costs on the harness's clock (runtime.harness.clock): declared, not slept, so
# where a deadline lands between fits is the same however busy the machine is, and costs no wait.
FIT_S = 10.0

COSTED_MODEL = '''
from sklearn.linear_model import LogisticRegression

from runtime.harness import clock

FITS = []


class Model:
    def __init__(self, task, params):
        self.task = task

    def fit(self, X, y, X_valid=None, y_valid=None):
        FITS.append(1)
        clock.spend(COST)
        self.model = LogisticRegression(max_iter=500).fit(X, y)
        return self

    def predict(self, X):
        return self.model.predict_proba(X)[:, 1]
'''
# a fit that takes long enough for a deadline to land between two of them
SLOW_MODEL = COSTED_MODEL.replace("COST", repr(FIT_S))
# the first two fits cost nothing; the first cut's last one ends past the deadline
LATE_THIRD_FIT = COSTED_MODEL.replace("COST", f"{3 * FIT_S!r} if len(FITS) == 3 else 0.0")


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    """A small binary task planned with 3 folds, its validation cut 3 times."""
    from conftest import tabular_frame, write_task

    root = tmp_path_factory.mktemp("cuts")
    frame = tabular_frame(180)
    frame["outcome"] = np.where(frame.signal > 0, "yes", "no")
    frame = frame.drop(columns="signal")
    task_dir = write_task(root / "task", frame.iloc[:150], frame.iloc[150:].drop(columns="outcome"), None,
                          "Predict the outcome. Submissions are evaluated on area under the ROC curve.")
    run_dir = root / "run"
    run_dir.mkdir()
    ctx = RunContext(settings=Settings(time_budget_s=60, n_folds=3))
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
    for node in (analyze, profile, blueprint):
        state.update(node(state, Runtime(context=ctx)))
    ctx.close()
    plan = json.loads((run_dir / "blueprint.json").read_text())
    plan["validation"]["repeats"] = 3
    (run_dir / "blueprint.json").write_text(json.dumps(plan))
    return run_dir


def _attempt(run_dir, name: str, model: str | None = None):
    folder = run_dir / name
    folder.mkdir()
    code = render_recipe("fallback")
    (folder / "features.py").write_text(code["features"])
    (folder / "model.py").write_text(model or code["model"])
    return folder


def test_every_cut_is_scored_and_the_out_of_fold_prediction_is_their_average(cut_run):
    h = Harness(cut_run)
    assert h.fold_sets.shape == (3, 150) and h.n_fits == 9
    assert (np.load(cut_run / "folds.npy") == h.fold_sets[0]).all()
    folder = _attempt(cut_run, "all_cuts")
    result = h.run_attempt(folder, {})
    assert result["status"] == "ok" and result["cuts"] == 3 and len(result["fold_scores"]) == 9
    assert len(list((folder / MODELS_DIR).glob("fold_*.pkl"))) == 9
    # each cut alone is a whole out-of-fold prediction; the attempt's is their mean
    one = json.loads((cut_run / "blueprint.json").read_text())
    one["validation"]["repeats"] = 1
    single_dir = cut_run.parent / "single"
    single_dir.mkdir(exist_ok=True)
    for name in ("task.json", "profile.json"):
        (single_dir / name).write_text((cut_run / name).read_text())
    (single_dir / "blueprint.json").write_text(json.dumps(one))
    first = _attempt(single_dir, "first_cut")
    Harness(single_dir).run_attempt(first, {})
    oof, first_oof = np.load(folder / "oof.npy"), np.load(first / "oof.npy")
    assert not np.allclose(oof, first_oof)  # the other cuts moved it
    assert np.corrcoef(oof, first_oof)[0, 1] > 0.9


def test_a_share_that_ends_mid_cut_keeps_the_cuts_done(cut_run):
    h = Harness(cut_run)
    folder = _attempt(cut_run, "slow", SLOW_MODEL)
    # 3 fits make a cut: the deadline lands in the second
    result = h.run_attempt(folder, {}, deadline_s=3.5 * FIT_S)
    assert result["status"] == "ok" and result["cuts"] == 1 and len(result["fold_scores"]) == 3
    assert sorted(p.name for p in (folder / MODELS_DIR).glob("fold_*.pkl")) == ["fold_0.pkl", "fold_1.pkl", "fold_2.pkl"]
    assert np.isfinite(np.load(folder / "oof.npy")).all()


def test_an_attempt_that_cannot_end_its_first_cut_stops_at_once_with_its_speed(cut_run):
    """3 fits and the time of one: the first fit already shows the cut cannot end, so the
    attempt stops there (not at the cell's timeout) and says how long a fit took."""
    folder = _attempt(cut_run, "too_slow", SLOW_MODEL)
    result = Harness(cut_run).run_attempt(folder, {}, deadline_s=FIT_S)
    assert result["status"] == "timeout" and result["fold_scores"] == []
    assert "too slow" in result["error"] and "1 of 3 folds" in result["error"]
    assert result["fit_seconds"] >= FIT_S
    assert json.loads((folder / "result.json").read_text())["status"] == "timeout"
    assert not list((folder / MODELS_DIR).glob("fold_*.pkl")) and not (folder / "oof.npy").exists()


def test_a_cut_whose_last_fold_ends_past_the_deadline_still_counts(cut_run):
    """The first two fits cost nothing, so they project a cut well inside the deadline; the third
    ends past it. That fold completes a whole out-of-fold prediction: it is scored, not thrown
    away as a timeout."""
    assert "COST" not in SLOW_MODEL + LATE_THIRD_FIT
    result = Harness(cut_run).run_attempt(_attempt(cut_run, "late_third", LATE_THIRD_FIT), {}, deadline_s=2 * FIT_S)
    assert result["status"] == "ok" and result["cuts"] == 1 and len(result["fold_scores"]) == 3


# Folds side by side, seen from inside the fits: each notes its thread and how many fits are inside
# at once, and the first waits (at most 30 s, however busy the machine) for the second of its pair to
# come in. Each costs FIT_S on the harness's clock.
SIDE_BY_SIDE = '''
import threading
import time
from sklearn.linear_model import LogisticRegression

from runtime.harness import clock

THREADS = []  # each fit's thread
INSIDE = []  # one entry per fit inside fit() now
AT_ONCE = [0]  # the fits seen inside at once


def concurrent_folds(task, profile, params, n_rows):
    return int(params.get("at_once", 1))


class Model:
    def __init__(self, task, params):
        self.task, self.at_once = task, int(params.get("at_once", 1))

    def fit(self, X, y, X_valid=None, y_valid=None):
        THREADS.append(threading.current_thread().name)
        INSIDE.append(1)
        AT_ONCE.append(len(INSIDE))
        began = time.time()
        while self.at_once > 1 and max(AT_ONCE) < 2 and time.time() - began < 30:
            time.sleep(0.01)
        clock.spend(COST)
        self.model = LogisticRegression(max_iter=500).fit(X, y)
        INSIDE.pop()
        return self

    def predict(self, X):
        return self.model.predict_proba(X)[:, 1]
'''.replace("COST", repr(FIT_S))


def test_folds_a_module_declares_safe_run_side_by_side_with_the_same_predictions(cut_run, monkeypatch):
    """A model module's concurrent_folds lets the harness fit that many folds at once, in
    threads: two fits are inside at once (never more), and the scores and predictions are those
    of one fold after the other."""
    from runtime import harness

    assert SIDE_BY_SIDE.count("concurrent_folds") == 1 and "AT_ONCE.append" in SIDE_BY_SIDE
    loaded = []
    real_load = harness.load_module
    monkeypatch.setattr(harness, "load_module", lambda name, path: loaded.append(real_load(name, path)) or loaded[-1])
    h = Harness(cut_run)
    together = _attempt(cut_run, "side_by_side", SIDE_BY_SIDE)
    alone = _attempt(cut_run, "one_by_one", SIDE_BY_SIDE)
    a = h.run_attempt(together, {"at_once": 2})
    seen = [m for m in loaded if hasattr(m, "AT_ONCE")][0]
    b = h.run_attempt(alone, {"at_once": 1})
    assert a["status"] == b["status"] == "ok" and a["cuts"] == b["cuts"] == 3
    assert a["fold_scores"] == b["fold_scores"]
    np.testing.assert_array_equal(np.load(together / "oof.npy"), np.load(alone / "oof.npy"))
    np.testing.assert_array_equal(np.load(together / "test.npy"), np.load(alone / "test.npy"))
    assert len(list((together / MODELS_DIR).glob("fold_*.pkl"))) == 9
    fold_threads = [t for t in seen.THREADS if t.startswith("iml-fold")]  # the fit on all rows runs in the kernel's thread
    assert len(fold_threads) == 9
    assert max(seen.AT_ONCE) == 2  # 9 fits two at a time: two were inside at once, never three


def test_a_broken_concurrent_folds_rule_costs_speed_not_the_attempt(cut_run):
    broken = SIDE_BY_SIDE.replace('return int(params.get("at_once", 1))', "raise RuntimeError('no rule')")
    assert broken != SIDE_BY_SIDE
    result = Harness(cut_run).run_attempt(_attempt(cut_run, "broken_rule", broken), {})
    assert result["status"] == "ok" and result["cuts"] == 3


def test_folds_side_by_side_stop_at_the_deadline_like_one_by_one(cut_run):
    """Two fits at a time and a deadline in the first cut: the attempt still stops at once,
    with a fit's wall time (two fits' cost over the two side by side), and leaves no fold behind."""
    folder = _attempt(cut_run, "side_too_slow", SIDE_BY_SIDE)
    result = Harness(cut_run).run_attempt(folder, {"at_once": 2}, deadline_s=FIT_S)
    assert result["status"] == "timeout" and result["fold_scores"] == [] and "too slow" in result["error"]
    assert result["fit_seconds"] >= FIT_S / 2
    assert not list((folder / MODELS_DIR).glob("fold_*.pkl")) and not (folder / "oof.npy").exists()
