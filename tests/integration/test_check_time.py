"""The check predicts a fold's time before any fold starts, from fits timed on samples in the
track's kernel, and stops code whose folds cannot end in the attempt's time.

The modules here declare their cost: the model's fit sleeps a known number of seconds per
training row, so the truth the prediction must meet does not depend on how fast the machine
is, and the budgets sit far on either side of it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from langgraph.runtime import Runtime

from graph.context import EventLog, RunContext, Settings
from nodes.analyze import analyze
from nodes.blueprint import blueprint
from nodes.check import check
from nodes.execute import execute
from nodes.profile import profile

ROWS = 3_000
FOLDS = 3
TRAIN_ROWS = ROWS * (FOLDS - 1) // FOLDS  # a fold's training rows: 2,000

FEATURES = '''
import numpy as np


class Features:
    def __init__(self, task, profile, params):
        self.columns = [c["name"] for c in profile["columns"] if c["kind"] == "numeric"]

    def fit(self, X, y):
        return self

    def transform(self, X):
        return X[self.columns].fillna(0.0).to_numpy(dtype=float)
'''

# Its fit costs exactly params["seconds_per_row"] per training row (and nothing else worth timing).
DECLARED_COST = '''
import time

import numpy as np


class Model:
    def __init__(self, task, params):
        self.per_row = float(params.get("seconds_per_row", 0.0))

    def fit(self, X, y, X_valid=None, y_valid=None):
        time.sleep(self.per_row * len(X))
        self.mean = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean)

    def full_fit_params(self):
        return {}
'''


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A 3,000-row regression task analysed, profiled and planned (3 folds)."""
    from conftest import tabular_frame, write_task

    root = tmp_path_factory.mktemp("check_time")
    frame = tabular_frame(ROWS + 200)
    frame["outcome"] = frame.signal * 10
    frame = frame.drop(columns="signal")
    task_dir = write_task(root / "task", frame.iloc[:ROWS], frame.iloc[ROWS:].drop(columns="outcome"),
                          pd.DataFrame({"row_key": frame.row_key.iloc[ROWS:], "outcome": 0.0}),
                          "Predict outcome; scored by root mean squared error.")
    run_dir = root / "run"
    run_dir.mkdir()
    ctx = RunContext(settings=Settings(time_budget_s=120, n_folds=FOLDS), events=EventLog(run_dir / "events.jsonl"))
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir)}
    for node in (analyze, profile, blueprint):
        state.update(node(state, Runtime(context=ctx)))
    assert state["blueprint"].validation.n_folds == FOLDS and state["blueprint"].validation.repeats == 1
    yield state, ctx
    ctx.close()


def attempt(planned, number: int, seconds_per_row: float, settings: Settings):
    """The declared-cost modules as the traditional track's recipe attempt, checked with this budget."""
    state, ctx = planned
    plan = state["blueprint"].tracks[0]
    plan = plan.model_copy(update={"params": {**plan.params, "seconds_per_row": seconds_per_row}, "members": {},
                                   "members_if_time": {}})
    track_state = {**state, "plan": plan, "code": {"features": FEATURES, "model": DECLARED_COST}, "source": "recipe",
                   "attempt": number, "attempts": []}
    ctx.settings = settings  # the kernel stays: only the clock and the budget differ
    ctx.started_at = time.time()
    return track_state, Runtime(context=ctx)


def check_times(run_dir: str) -> list[dict]:
    lines = (Path(run_dir) / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "check_time"]


def test_a_fit_that_fits_its_time_passes_the_check_and_the_prediction_meets_its_declared_cost(planned):
    per_row = 1e-4  # 0.2 s a fold: 3 folds and the fit on all rows in ~1 s of a 2-minute budget
    track_state, runtime = attempt(planned, 1, per_row, Settings(time_budget_s=120, n_folds=FOLDS))
    update = check(track_state, runtime)
    assert update["last_error"] is None, update["last_error"]
    timing = json.loads((Path(planned[0]["run_dir"]) / "tracks" / "traditional" / "attempt_1" / "check.json").read_text())["timing"]
    declared = per_row * TRAIN_ROWS
    assert timing["train_rows"] == TRAIN_ROWS
    # the samples start small and double; the prediction is a fit at the fold's 2,000 rows
    assert timing["points"][0][0] == 256 and [p[0] for p in timing["points"]] == sorted(p[0] for p in timing["points"])
    assert 0.9 * declared <= timing["fit_s"] <= 2.0 * declared, timing
    done = execute(track_state, runtime)
    [result] = done["attempts"]
    assert result.status == "ok" and result.fit_seconds is not None
    assert timing["fit_s"] / 2.0 <= result.fit_seconds <= 3.0 * timing["fit_s"]  # the folds measured what was predicted


def test_a_fit_too_slow_for_its_time_is_stopped_before_any_fold_with_what_to_change(planned):
    per_row = 5e-3  # 10 s a fold: 30 s for the first cut, against an attempt of 6 s
    settings = Settings(time_budget_s=12, n_folds=FOLDS, min_attempt_timeout_s=6)
    track_state, runtime = attempt(planned, 2, per_row, settings)
    update = check(track_state, runtime)
    [result] = update["attempts"]
    assert result.status == "timeout" and result.source == "recipe"
    message = update["last_error"]
    assert message.startswith("too slow: ~") and "s per fold needed" in message and "s allowed" in message, message
    declared = per_row * TRAIN_ROWS
    assert 0.9 * declared <= result.fit_seconds <= 2.0 * declared, (result.fit_seconds, message)
    # what to change, with the rows a fold could train on in its time
    assert "cheaper" in message and "max_train_rows=" in message
    rows = int(message.split("max_train_rows=")[1].split(" ")[0].replace(",", ""))
    allowed = float(message.split("s per fold needed, ")[1].split(" s allowed")[0])
    assert rows * per_row <= allowed * 1.1 and rows < TRAIN_ROWS
    folder = Path(result.dir)  # no fold ran
    assert not (folder / "oof.npy").exists() and json.loads((folder / "result.json").read_text())["fold_scores"] == []
    [said] = [e for e in check_times(planned[0]["run_dir"]) if e["attempt"] == 2]
    assert said["too_slow"] and said["fold_s"] == pytest.approx(result.fit_seconds, rel=1e-3)
    assert np.isfinite(said["allowed_fold_s"]) and said["allowed_fold_s"] < said["fold_s"]
