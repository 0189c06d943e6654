"""The report from a synthetic run folder: every section, plots inline in the HTML and as files
beside the markdown, nothing fetched from the network, and the awkward cases (no LLM, a
failed attempt, a baseline ensemble, a resumed run)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from runtime.report import build_report, stage_times, to_html, to_markdown, write_report
from runtime.records import (
    AttemptResult,
    Blueprint,
    ColumnProfile,
    DataProfile,
    EnsembleResult,
    LLMCall,
    TargetProfile,
    TaskSpec,
    TrackPlan,
    TrackResult,
    ValidationScheme,
)

FEATURES = "class Features:\n    def __init__(self, task, profile, params):\n        self.cut = 1 < 2  # a '<' to escape\n"
MODEL = "class Model:\n    def __init__(self, task, params):\n        pass\n"


@pytest.fixture
def run(tmp_path):
    rng = np.random.RandomState(0)
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    n = 90
    train = pd.DataFrame({"id": range(n), "size": rng.normal(size=n), "colour": rng.choice(["red", "blue"], n)})
    train["kind"] = np.where(train["size"] > 0.3, "big", np.where(train["size"] < -0.3, "small", "mid"))
    train.to_csv(task_dir / "train.csv", index=False)
    train.drop(columns="kind").head(10).to_csv(task_dir / "test.csv", index=False)
    task = TaskSpec(task_dir=str(task_dir), task_type="multiclass", target="kind", id_column="id", metric="accuracy",
                    greater_is_better=True, submission_format="label", submission_columns=["id", "kind"],
                    classes=["big", "mid", "small"], reasons=["target: 'kind' is the one train column missing from test",
                                                              "metric: accuracy, named in the description"])
    profile = DataProfile(n_train=n, n_test=10, columns=[
        ColumnProfile(name="size", kind="numeric", dtype="float64", missing_share=0.0, cardinality=n, examples=["0.1"]),
        ColumnProfile(name="colour|hue", kind="categorical", dtype="str", missing_share=0.1, cardinality=2, examples=["red"]),
    ], target=TargetProfile(kind="classes", class_counts={"big": 30, "mid": 30, "small": 30}),
        warnings=["possible leakage: 'size' alone predicts the target for 99.9% of rows"])
    blueprint = Blueprint(validation=ValidationScheme(kind="stratified", n_folds=3), budget_s=120.0, skipped={"neural": "no recipe"},
                          tracks=[TrackPlan(track="traditional", reason="trees first", model_family="LightGBM",
                                            feature_steps=["categoricals as categories"], params={"num_leaves": 15}, time_share=1.0)])
    run_dir = tmp_path / "run"
    attempts = []
    for number, status in ((1, "error"), (2, "ok")):
        folder = run_dir / "tracks" / "traditional" / f"attempt_{number}"
        folder.mkdir(parents=True)
        (folder / "features.py").write_text(FEATURES)
        (folder / "model.py").write_text(MODEL)
        attempts.append(AttemptResult(track="traditional", attempt=number, source="recipe" if number == 1 else "fallback",
                                      status=status, score=0.9 if status == "ok" else None,
                                      fold_scores=[0.85, 0.9, 0.95] if status == "ok" else [],
                                      error="ValueError: bad column\ntraceback..." if status == "error" else None,
                                      duration_s=3.5, dir=str(folder)))
    tracks = {"traditional": TrackResult(track="traditional", status="ok", best_attempt=2, score=0.9, attempts=attempts)}
    y = train["kind"].map({"big": 0, "mid": 1, "small": 2}).to_numpy()
    oof = np.eye(3)[y] * 0.8 + 0.2 / 3
    np.save(run_dir / "y.npy", y)
    np.save(run_dir / "ensemble_oof.npy", oof)
    ensemble = EnsembleResult(kind="single", weights={"traditional": 1.0}, score=0.9, oof_path=str(run_dir / "ensemble_oof.npy"),
                              test_path=str(run_dir / "ensemble_test.npy"), reason="traditional alone: the only scored track")
    (run_dir / "submission.csv").write_text("id,kind\n" + "".join(f"{i},big\n" for i in range(10)))
    t0 = 1_000_000.0
    events = [{"t": t0, "event": "session", "kind": "run", "used_before_s": 0.0},
              {"t": t0 + 1, "event": "task"}, {"t": t0 + 2, "event": "profile"}, {"t": t0 + 2.5, "event": "blueprint"},
              # killed at t0 + 10 (last heartbeat), resumed an hour later with 10 s used
              {"t": t0 + 3600, "event": "session", "kind": "resume", "used_before_s": 10.0},
              {"t": t0 + 3605, "event": "track"}, {"t": t0 + 3606, "event": "ensemble"}, {"t": t0 + 3607, "event": "submit"}]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run_dir / "run.json").write_text(json.dumps({"time_budget_s": 120, "used_s": 17, "sessions": [
        {"kind": "run", "started": t0, "seconds": 10, "budget_left_s": 120, "ended": None},
        {"kind": "resume", "started": t0 + 3600, "seconds": 7, "budget_left_s": 110, "ended": "finished"}]}))
    state = {"task_dir": str(task_dir), "run_dir": str(run_dir), "task": task, "profile": profile, "blueprint": blueprint,
             "tracks": tracks, "ensemble": ensemble, "submission_path": str(run_dir / "submission.csv")}
    return state, run_dir


def test_sections_plots_and_self_contained_html(run):
    state, run_dir = run
    md_path, html_path = write_report(state, run_dir)
    md, page = md_path.read_text(), html_path.read_text()
    for heading in ("The task as understood", "The data", "The blueprint", "Results", "Time", "LLM use",
                    "The winning code", "Files of the run"):
        assert "## " in md and heading in md and heading in page, heading
    assert "target — 'kind' is the one train column missing from test" in md  # analyze's reasons
    assert "possible leakage" in md and "neural: no recipe" in md  # warnings; the skipped track and why
    assert "0.85 0.9 0.95" in md  # per-fold scores in the leaderboard
    assert "traditional/attempt_2 ★" in md and "ValueError: bad column" in md  # the best, and what failed
    assert "No LLM was configured" in md
    assert "colour\\|hue" in md  # a pipe in a column name does not break the markdown table
    # plots: files beside the markdown, inline in the page
    images = re.findall(r"\]\((report_files/[^)]+\.png)\)", md)
    assert {"report_files/association.png", "report_files/attempts.png", "report_files/oof.png"} <= set(images)
    assert all((run_dir / i).stat().st_size > 1000 for i in images)
    assert page.count('src="data:image/png;base64,') == len(images)
    # nothing to fetch: no external script, stylesheet, font or image
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page) and "<link" not in page and "<script" not in page
    assert "self.cut = 1 &lt; 2" in page  # code is escaped, not interpreted
    assert "resumed 1 time" in md


def test_llm_usage_and_a_baseline(run):
    state, run_dir = run
    calls = [LLMCall(role="generate", node="generate", track="traditional", model="gpt-4o-mini", prompt_tokens=1200,
                     completion_tokens=300, cost_usd=0.0004, seconds=2.0),
             LLMCall(role="analyze", node="analyze", model="gpt-4o-mini", prompt_tokens=800, completion_tokens=100,
                     cost_usd=None, seconds=1.0, outcome="parse_error")]
    baseline = EnsembleResult(kind="baseline", weights={}, score=float("nan"), oof_path="", test_path="",
                              reason="no track produced a scored result; submitting the training target's constant baseline")
    doc, plots, problems = build_report({**state, "llm_usage": calls, "ensemble": baseline}, run_dir)
    md = to_markdown(doc)
    assert "gpt-4o-mini" in md and "2,000" in md and "400" in md  # tokens summed over requests
    assert "unknown" in md  # one request without a known price: the total is unknown, not a guess
    assert "constant baseline" in md and "oof.png" not in plots
    assert problems == []
    to_html(doc, "t")  # renders


def test_stage_times_skip_the_downtime_of_a_crash(run):
    state, run_dir = run
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    times = dict(stage_times(events))
    assert times["analyze"] == pytest.approx(1.0) and times["blueprint"] == pytest.approx(0.5)
    # tracks: from the blueprint (2.5 s in) to the track event, 5 s into a session that began with 10 s used
    assert times["tracks"] == pytest.approx(12.5)
    assert sum(times.values()) < 20


@pytest.mark.parametrize("task_type", ["multiclass", "regression"])
def test_feature_association_ranks_the_signal_first_and_a_constant_last(tmp_path, task_type):
    from runtime.association import feature_association

    rng = np.random.RandomState(1)
    n = 600
    signal = rng.normal(size=n)
    frame = pd.DataFrame({
        "id": range(n),
        "signal": np.where(rng.rand(n) < 0.1, np.nan, signal),  # missing values are a bin of their own
        "noise": rng.normal(size=n),
        "constant": 1.0,
        "city": rng.choice(["Oslo", "Lima", "Pune"], n),
        "when": pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC").astype(str),
    })
    frame["y"] = signal * 10 if task_type == "regression" else np.where(signal > 0.5, "a", np.where(signal < -0.5, "c", "b"))
    frame.to_csv(tmp_path / "train.csv", index=False)
    task = TaskSpec(task_dir=str(tmp_path), task_type=task_type, target="y", id_column="id",
                    metric="rmse" if task_type == "regression" else "accuracy", greater_is_better=task_type != "regression",
                    submission_format="label", submission_columns=["id", "y"],
                    classes=[] if task_type == "regression" else ["a", "b", "c"])
    kinds = {"signal": "numeric", "noise": "numeric", "constant": "numeric", "city": "categorical", "when": "datetime"}
    profile = DataProfile(n_train=n, n_test=0, columns=[
        ColumnProfile(name=c, kind=k, dtype="object", missing_share=0.0, cardinality=2, examples=[]) for c, k in kinds.items()],
        target=TargetProfile(kind="values" if task_type == "regression" else "classes"))
    ranked = feature_association(task, profile)
    scores = {name: mi for name, _, mi in ranked}
    assert ranked[0][0] == "signal" and set(scores) == set(kinds)
    assert scores["constant"] == 0.0
    assert scores["signal"] > 5 * max(scores["noise"], scores["city"], scores["when"])
