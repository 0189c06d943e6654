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
from runtime.predict import MODELS_DIR

SLOW_MODEL = '''
import time
from sklearn.linear_model import LogisticRegression


class Model:
    def __init__(self, task, params):
        self.task = task

    def fit(self, X, y, X_valid=None, y_valid=None):
        time.sleep(0.3)  # a fit that takes long enough for a deadline to land between two of them
        self.model = LogisticRegression(max_iter=500).fit(X, y)
        return self

    def predict(self, X):
        return self.model.predict_proba(X)[:, 1]
'''


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
    # 3 fits of 0.3 s make a cut: the deadline lands in the second
    result = h.run_attempt(folder, {}, deadline_s=1.5)
    assert result["status"] == "ok" and result["cuts"] == 1 and len(result["fold_scores"]) == 3
    assert sorted(p.name for p in (folder / MODELS_DIR).glob("fold_*.pkl")) == ["fold_0.pkl", "fold_1.pkl", "fold_2.pkl"]
    assert np.isfinite(np.load(folder / "oof.npy")).all()


def test_an_attempt_that_cannot_end_its_first_cut_stops_at_once_with_its_speed(cut_run):
    """3 fits of 0.3 s and 0.3 s of time: the first fit already shows the cut cannot end, so
    the attempt stops there (not at the cell's timeout) and says how long a fit took."""
    folder = _attempt(cut_run, "too_slow", SLOW_MODEL)
    result = Harness(cut_run).run_attempt(folder, {}, deadline_s=0.3)
    assert result["status"] == "timeout" and result["fold_scores"] == []
    assert "too slow" in result["error"] and "1 of 3 folds" in result["error"]
    assert result["fit_seconds"] >= 0.3
    assert json.loads((folder / "result.json").read_text())["status"] == "timeout"
    assert not list((folder / MODELS_DIR).glob("fold_*.pkl")) and not (folder / "oof.npy").exists()


LATE_THIRD_FIT = SLOW_MODEL.replace("import time\n", "import time\nFITS = []\n").replace(
    "time.sleep(0.3)  # a fit that takes long enough for a deadline to land between two of them",
    "FITS.append(1)\n        time.sleep(3.0 if len(FITS) == 3 else 0.0)  # the first cut's last fit ends past the deadline")


def test_a_cut_whose_last_fold_ends_past_the_deadline_still_counts(cut_run):
    """The first two fits project a cut well inside 2 s (even on a loaded machine); the third
    ends past it. That fold completes a whole out-of-fold prediction: it is scored, not thrown
    away as a timeout."""
    assert LATE_THIRD_FIT != SLOW_MODEL
    result = Harness(cut_run).run_attempt(_attempt(cut_run, "late_third", LATE_THIRD_FIT), {}, deadline_s=2.0)
    assert result["status"] == "ok" and result["cuts"] == 1 and len(result["fold_scores"]) == 3
