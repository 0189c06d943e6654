"""The check predicts a fold's time before any fold starts, from fits timed on samples in the
track's kernel, and stops code whose folds cannot end in the attempt's time.

The modules here declare their cost: the model's fit sleeps a known number of seconds per
training row, so the truth the prediction must meet does not depend on how fast the machine
is, and the budgets sit far on either side of it."""

from __future__ import annotations

import json
import time
from pathlib import Path

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

# Its fit costs exactly params["seconds_per_row"] x rows ** params["power"] per 1,000 rounds
# (params["n_estimators"], 1,000 unless given), and nothing else worth timing: like boosted trees,
# the check's own sample fits run at the recipe's check value of 50 rounds, its timing and the
# folds at the attempt's.
DECLARED_COST = '''
import sys

import numpy as np

# the harness's clock (its declared seconds count as a fit's, and cost no wall time), reached
# without an import: the static check refuses iML's own modules to generated code
clock = sys.modules["runtime.harness"].clock


class Model:
    def __init__(self, task, params):
        self.per_row = float(params.get("seconds_per_row", 0.0))
        self.power = float(params.get("power", 1.0))
        self.rounds = int(params.get("n_estimators", 1000))

    def fit(self, X, y, X_valid=None, y_valid=None):
        clock.spend(self.per_row * len(X) ** self.power * self.rounds / 1000)
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


def attempt(planned, number: int, settings: Settings, source: str = "recipe", **cost):
    """The declared-cost modules as an attempt of the traditional track, on a fresh clock and this budget."""
    state, ctx = planned
    plan = state["blueprint"].tracks[0]
    plan = plan.model_copy(update={"params": {**plan.params, **cost}, "members": {}, "members_if_time": {}})
    track_state = {**state, "plan": plan, "code": {"features": FEATURES, "model": DECLARED_COST}, "source": source,
                   "attempt": number, "attempts": []}
    ctx.settings = settings  # the kernel stays: only the clock and the budget differ
    ctx.started_at = time.time()
    return track_state, Runtime(context=ctx)


def check_time(run_dir: str, number: int) -> dict:
    lines = (Path(run_dir) / "events.jsonl").read_text().splitlines()
    [said] = [e for e in map(json.loads, lines) if e["event"] == "check_time" and e["attempt"] == number]
    return said


def timing_of(run_dir: str, number: int) -> dict:
    return json.loads((Path(run_dir) / "tracks" / "traditional" / f"attempt_{number}" / "check.json").read_text())["timing"]


def test_a_recipe_that_fits_its_time_passes_the_check_and_the_prediction_meets_its_declared_cost(planned):
    per_row = 1e-4  # 0.2 s a fold: 3 folds and the fit on all rows in ~1 s of a 2-minute budget
    track_state, runtime = attempt(planned, 1, Settings(time_budget_s=120, n_folds=FOLDS), seconds_per_row=per_row)
    update = check(track_state, runtime)
    assert update["last_error"] is None, update["last_error"]
    timing = timing_of(planned[0]["run_dir"], 1)
    declared = per_row * TRAIN_ROWS
    assert timing["train_rows"] == TRAIN_ROWS and timing["kind"] == "measured"
    # the samples start small and double up to the fold's 2,000 rows: a fit at the full size
    assert [p[0] for p in timing["points"]] == [256, 512, 1024, 2000]
    assert 0.9 * declared <= timing["fit_s"] <= 2.0 * declared, timing
    assert not check_time(planned[0]["run_dir"], 1)["too_slow"]
    done = execute(track_state, runtime)
    [result] = done["attempts"]
    assert result.status == "ok" and result.fit_seconds is not None
    assert timing["fit_s"] / 2.0 <= result.fit_seconds <= 3.0 * timing["fit_s"]  # the folds took what was predicted


def test_a_recipe_too_slow_for_its_time_is_stopped_before_any_fold(planned):
    """Offline, the check times a recipe on one sample only (the blueprint sized it): 6 s on 256
    rows already says its 3 folds of 2,000 rows cannot end in a 10 s attempt."""
    per_row = 6.0 / 256  # per 1,000 rounds: 6 s on 256 rows, ~47 s on a fold's 2,000
    track_state, runtime = attempt(planned, 2, Settings(time_budget_s=10, n_folds=FOLDS), seconds_per_row=per_row)
    update = check(track_state, runtime)
    [result] = update["attempts"]
    assert result.status == "timeout" and result.source == "recipe"
    message = update["last_error"]
    assert message.startswith("too slow: more than ") and "s per fold needed" in message and "s allowed" in message, message
    timing = timing_of(planned[0]["run_dir"], 2)
    assert timing["kind"] == "at least" and [p[0] for p in timing["points"]] == [256]
    # a lower bound: what 256 rows took, never more than the fold's declared cost
    assert 0.9 * per_row * 256 <= result.fit_seconds <= per_row * TRAIN_ROWS
    assert "max_train_rows" in message and "cheaper" in message
    folder = Path(result.dir)  # no fold ran
    assert not (folder / "oof.npy").exists() and json.loads((folder / "result.json").read_text())["fold_scores"] == []
    said = check_time(planned[0]["run_dir"], 2)
    assert said["too_slow"] and said["fold_s"] == pytest.approx(result.fit_seconds, rel=1e-3)


def test_code_an_llm_wrote_too_slow_for_its_time_is_extrapolated_and_told_what_to_change(planned):
    """An LLM's code gets more samples: a cost growing as the rows' square (neighbours) shows on
    three of them and is extrapolated so, ~12 s a fold against a 20 s attempt of 3 folds."""
    per_row = 0.19 / 256 ** 2  # per 1,000 rounds: 0.19 s on 256 rows, 11.6 s on 2,000
    track_state, runtime = attempt(planned, 3, Settings(time_budget_s=20, n_folds=FOLDS), source="llm",
                                   seconds_per_row=per_row, power=2.0)
    update = check(track_state, runtime)
    [result] = update["attempts"]
    assert result.status == "timeout" and result.source == "llm"
    timing = timing_of(planned[0]["run_dir"], 3)
    # the fit's fixed part (a few ms beside the sleep) flattens the first step a little: at most as steep as seen
    assert timing["kind"] == "extrapolated" and 1.7 <= timing["exponent"] <= 2.0 and len(timing["points"]) == 3, timing
    declared = per_row * TRAIN_ROWS ** 2
    assert 0.6 * declared <= result.fit_seconds <= 1.2 * declared, (result.fit_seconds, declared)
    message = update["last_error"]
    assert message.startswith("too slow: ~") and f"growing as rows^{timing['exponent']:.1f}" in message, message
    # what to change, with the rows a fold could train on in its time
    rows = int(message.split("max_train_rows=")[1].split(" ")[0].replace(",", ""))
    allowed = float(message.split("s per fold needed, ")[1].split(" s allowed")[0])
    assert per_row * rows ** 2 <= allowed * 1.1 and rows < TRAIN_ROWS


# Features.encode, label-free and row-wise, costs a fixed 0.3 s (loading an encoder) and 1 ms a row.
ENCODED = FEATURES.replace('''    def fit(self, X, y):''', '''    def encode(self, X):
        import time

        time.sleep(0.3 + 1e-3 * len(X))
        return X[self.columns].fillna(0.0).to_numpy(dtype=float)[:, :2]

    def fit(self, X, y):''')


def test_the_encoding_on_all_rows_is_predicted_from_two_sample_sizes_before_it_runs(planned):
    state, _ = planned
    track_state, runtime = attempt(planned, 4, Settings(time_budget_s=120, n_folds=FOLDS), seconds_per_row=1e-5)
    track_state["code"] = {"features": ENCODED, "model": DECLARED_COST}
    update = check(track_state, runtime)
    assert update["last_error"] is None, update["last_error"]
    timing = timing_of(state["run_dir"], 4)
    rows = ROWS + 200  # train and test rows: encode runs once on all of them
    declared = 0.3 + 1e-3 * rows
    assert [n for n, _ in timing["encode_points"]] == [100, 400]  # a quarter of the check's sample, then all of it
    assert 0.9 * declared <= timing["setup_s"] <= 1.5 * declared, timing
    # the fixed part is told apart: a line through the origin from the whole sample says 8x the load time more
    whole = timing["encode_points"][-1][1]
    assert timing["setup_s"] < whole * rows / 400 - 0.5 * 0.3 * rows / 400
    assert not (Path(state["run_dir"]) / "cache").exists() or not any((Path(state["run_dir"]) / "cache").iterdir())
