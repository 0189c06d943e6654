"""solution.py reproduces submission.csv in a fresh, isolated process where iML cannot be
imported: single-track runs of each task type, a weighted blend of two members, and the
constant baseline."""

from __future__ import annotations

import re

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from machine_speed import scaled
from solution_checks import assert_same_submission, run_isolated

from graph.context import Settings
from graph.runner import run_status, run_task
from runtime.solution import render_solution
from runtime.submission_file import format_submission, validate_submission
from runtime.blend import _weighted, baseline
from runtime.harness import Harness
from runtime.metrics import get_metric
from runtime.records import AttemptResult, EnsembleResult, TrackResult


def solved(root: Path, kind: str) -> tuple[Path, Path]:
    from conftest import tabular_frame, write_task

    frame = tabular_frame(200, seed=1)
    descriptions = {"binary": "Predict the outcome. Scored by area under the ROC curve.",
                    "multiclass": "Predict the outcome class. Scored on accuracy.",
                    "regression": "Predict the outcome. Scored by root mean squared error."}
    if kind == "binary":
        frame["outcome"] = np.where(frame.signal > frame.signal.median(), "yes", "no")
    elif kind == "multiclass":
        frame["outcome"] = pd.qcut(frame.signal, 3, labels=[1, 2, 3]).astype(int)  # integer labels go out as integers
    else:
        frame["outcome"] = frame.signal * 10 + 50
    frame = frame.drop(columns="signal")
    train, test = frame.iloc[:160], frame.iloc[160:].drop(columns="outcome")
    sample = pd.DataFrame({"row_key": test.row_key.iloc[::-1], "outcome": 0})  # a different row order than test
    task_dir = write_task(root / "task", train, test, sample, descriptions[kind])
    run_dir = root / "run"
    # refine fills whatever budget is left: a short one keeps the test short (30 s on free cores; a
    # busy machine gets more, so that an attempt still scores and is fitted on all rows)
    run_task(task_dir, run_dir, Settings(time_budget_s=scaled(30), n_folds=3, tracks=("traditional",), refine_max_candidates=3))
    return task_dir, run_dir.resolve()


def re_imports_iml(line: str) -> bool:
    import re

    return bool(re.match(r"\s*(from|import)\s+(graph|nodes|runtime|prompts|scripts)\b", line))


@pytest.fixture(scope="module")
def solved_run(tmp_path_factory):
    """kind -> (task_dir, run_dir), each run made once for the module (a run fills its budget)."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(kind: str) -> tuple[Path, Path]:
        if kind not in made:
            made[kind] = solved(tmp_path_factory.mktemp(f"solution_{kind}"), kind)
        return made[kind]

    return get


@pytest.fixture(scope="module")
def binary_run(solved_run):
    return solved_run("binary")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_solution_reproduces_the_submission(kind, solved_run, tmp_path):
    task_dir, run_dir = solved_run(kind)
    script = run_dir / "solution.py"
    source = script.read_text()
    # iML is never imported: the only imports of its names are of the modules for generated code
    # (runtime.params, runtime.recipe_steps, runtime.images, a recipe a member extends), which
    # solution.py carries and installs itself
    imports = [line.split()[1] for line in source.splitlines() if re_imports_iml(line)]
    installed = set(re.findall(r"^sys\.modules\['([\w.]+)'\] = ", source, re.MULTILINE))
    assert imports and set(imports) <= installed, (imports, installed)
    assert {"runtime.params", "runtime.recipe_steps"} <= installed
    # 3 folds: the members were fitted on all rows too (a refine candidate only when it beat what it
    # moved from), and solution.py repeats that fit
    assert "'full_fit': {" in source
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    done = run_isolated(script, task_dir, workdir / "out.csv", workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_submission(run_dir / "submission.csv", workdir / "out.csv")


def _blend_state(run_dir: Path, task_dir: Path, tmp_path: Path) -> tuple[dict, Path]:
    """The binary run plus a second member (a smaller LightGBM), blended 2:1 as hill climbing would."""
    finished, state = run_status(run_dir)
    assert finished
    task = state["task"]
    first = state["tracks"]["traditional"].best
    folder = run_dir / "tracks" / "neural" / "attempt_1"
    folder.mkdir(parents=True, exist_ok=True)
    for module in ("features.py", "model.py"):
        shutil.copy(Path(first.dir) / module, folder / module)
    params = {**first.params, "num_leaves": 4, "learning_rate": 0.1}
    scored = Harness(run_dir).run_attempt(folder, params)
    second = AttemptResult(track="neural", attempt=1, source="recipe", status="ok", score=scored["score"],
                           fold_scores=scored["fold_scores"], params=params, dir=str(folder))
    tracks = {**state["tracks"], "neural": TrackResult(track="neural", status="ok", best_attempt=1, score=second.score,
                                                       attempts=[second])}
    counts = Counter({"traditional": 2, "neural": 1})
    tests = {"traditional": np.load(Path(first.dir) / "test.npy"), "neural": np.load(folder / "test.npy")}
    blended = _weighted(tests, counts)
    test_path = tmp_path / "blend_test.npy"
    np.save(test_path, blended)
    ensemble = EnsembleResult(kind="weighted", weights={"traditional": round(2 / 3, 4), "neural": round(1 / 3, 4)},
                              score=0.0, oof_path="", test_path=str(test_path), reason="test blend")
    expected = tmp_path / "expected.csv"
    format_submission(task, blended).to_csv(expected, index=False)
    assert validate_submission(task, expected) == []
    return {**state, "tracks": tracks, "ensemble": ensemble}, expected


@pytest.mark.slow
def test_solution_of_a_weighted_blend(binary_run, tmp_path):
    task_dir, run_dir = binary_run
    state, expected = _blend_state(run_dir, task_dir, tmp_path)
    script = tmp_path / "solution.py"
    source = render_solution(state, run_dir)
    assert "'weight': 2" in source and "'weight': 1" in source  # the exact hill-climbing counts, not rounded shares
    script.write_text(source)
    done = run_isolated(script, task_dir, tmp_path / "out.csv", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_submission(expected, tmp_path / "out.csv")


@pytest.mark.slow
def test_solution_of_the_constant_baseline(binary_run, tmp_path):
    task_dir, run_dir = binary_run
    finished, state = run_status(run_dir)
    task = state["task"]
    result = baseline(task, tmp_path, get_metric(task.metric))
    expected = tmp_path / "expected.csv"
    format_submission(task, np.load(result.test_path)).to_csv(expected, index=False)
    script = tmp_path / "solution.py"
    script.write_text(render_solution({**state, "tracks": {}, "ensemble": result}, run_dir))
    done = run_isolated(script, task_dir, tmp_path / "out.csv", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_submission(expected, tmp_path / "out.csv")


# -- iml predict: the run's saved fold models on new rows, no retraining -------------------------

REPO = Path(__file__).resolve().parents[2]


def iml(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_predict_on_the_test_file_reproduces_the_submission(kind, solved_run, tmp_path):
    task_dir, run_dir = solved_run(kind)
    out = tmp_path / "predicted.csv"
    done = iml("predict", run_dir, task_dir / "test.csv", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = pd.read_csv(run_dir / "submission.csv").set_index("row_key")
    got = pd.read_csv(out).set_index("row_key").loc[expected.index].reset_index()
    got.to_csv(tmp_path / "aligned.csv", index=False)
    assert_same_submission(run_dir / "submission.csv", tmp_path / "aligned.csv")
    # only the blend's members keep their fitted models; the rest were deleted at submit
    manifest = __import__("json").loads((run_dir / "model.json").read_text())
    kept = {Path(p).parent.parent.name for p in run_dir.glob("tracks/traditional/attempt_*/models/fold_0.pkl")}
    assert kept == {Path(m["attempt"]).name for m in manifest["members"]}
    # and the members' fits on all rows (3 folds), which the harness mixed into the test predictions
    refits = {Path(p).parent.parent.name for p in run_dir.glob("tracks/traditional/attempt_*/models/full.pkl")}
    assert refits and refits <= kept


@pytest.mark.slow
def test_predict_from_python_on_new_rows(binary_run):
    from runtime.data import TaskInputError
    from runtime.predict import load_run

    task_dir, run_dir = binary_run
    test = pd.read_csv(task_dir / "test.csv")
    rows = test.sample(7, random_state=0)
    rows = rows[list(rows.columns[::-1])].assign(unrelated=1.0)  # columns in another order, and one more
    run = load_run(run_dir)
    frame = run.predict(rows)
    assert list(frame["row_key"]) == [str(v) for v in rows["row_key"]]
    submitted = pd.read_csv(run_dir / "submission.csv").set_index("row_key")
    np.testing.assert_allclose(frame["outcome"].to_numpy(float), submitted.loc[rows["row_key"], "outcome"].to_numpy(float),
                               rtol=1e-7)
    with pytest.raises(TaskInputError, match="lack 1 column"):
        run.predict(rows.drop(columns="alpha"))
    done = iml("predict", run_dir, task_dir / "train.csv", "--out", task_dir.parent / "x.csv")  # has every column
    assert done.returncode == 0, done.stderr
    broken = task_dir.parent / "broken.csv"
    test.drop(columns=["alpha", "beta"]).to_csv(broken, index=False)
    done = iml("predict", run_dir, broken)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "alpha, beta" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_calibration_power_reaches_the_script_and_predict(binary_run, tmp_path):
    """The ensemble's probability power (fitted out of fold where log loss scores) is applied by
    submit, by solution.py and by `iml predict` alike: a run whose power is 2 gives the same
    sharpened probabilities from all three."""
    import json

    task_dir, run_dir = binary_run
    finished, state = run_status(run_dir)
    task = state["task"]
    ensemble = state["ensemble"].model_copy(update={"power": 2.0})
    expected = tmp_path / "expected.csv"
    format_submission(task, np.load(ensemble.test_path), power=2.0).to_csv(expected, index=False)
    plain = pd.read_csv(run_dir / "submission.csv")
    assert not np.allclose(pd.read_csv(expected)["outcome"], plain["outcome"])
    script = tmp_path / "solution.py"
    script.write_text(render_solution({**state, "ensemble": ensemble}, run_dir))
    done = run_isolated(script, task_dir, tmp_path / "out.csv", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_submission(expected, tmp_path / "out.csv")
    copied = tmp_path / "run_copy"
    shutil.copytree(run_dir, copied)
    manifest = json.loads((copied / "model.json").read_text())
    assert manifest["power"] == 1.0
    (copied / "model.json").write_text(json.dumps({**manifest, "power": 2.0}))
    out = tmp_path / "predicted.csv"
    done = iml("predict", copied, task_dir / "test.csv", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    got = pd.read_csv(out).set_index("row_key").loc[pd.read_csv(expected)["row_key"]].reset_index()
    got.to_csv(tmp_path / "aligned.csv", index=False)
    assert_same_submission(expected, tmp_path / "aligned.csv")
