"""Shared fixtures: small real tasks in the MLE-bench layout, built in a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

# Fits in this process (the harness run in-process) wait for their OpenMP threads as the kernels do
# (runtime.kernel.kernel_env): spinning threads made a 5 s harness attempt take 6 minutes on 2 cores
# shared with other work. Set before any library loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("LANGSMITH_TRACING", "false")

# Tests that need what CI machines do not have run only when asked for.
OPT_IN = {"gpu": ("IML_TEST_GPU", "needs a CUDA GPU"), "live_llm": ("IML_TEST_LIVE_LLM", "needs a real LLM endpoint")}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker, (variable, why) in OPT_IN.items():
            if marker in item.keywords and os.environ.get(variable) != "1":
                item.add_marker(pytest.mark.skip(reason=f"{why}: set {variable}=1 to run it"))
    stretch_timeouts(config, items)


def stretch_timeouts(config, items) -> None:
    """pytest-timeout's limit on each test, a backstop against a hang set for free cores, stretched
    by how slow the machine is as the session starts (machine_speed): on a busy machine a test that
    is only slow must not be killed as hung. Free cores keep the limits as written."""
    from machine_speed import session_slowness

    slow = session_slowness()
    if slow == 1.0:
        return
    try:
        default = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
    except ValueError:  # pytest-timeout is not installed: no limits to stretch
        return
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0] if marker.args else marker.kwargs.get("timeout", default)) if marker else default
        if limit > 0:
            item.add_marker(pytest.mark.timeout(limit * slow), append=False)


def contract_example() -> str:
    """The contract's example of a module that extends a recipe (prompts/contract.md), as shown."""
    import re

    from prompts import PROMPTS_DIR

    [example] = re.findall(r"```python\n(.*?)```", (PROMPTS_DIR / "contract.md").read_text(), re.DOTALL)
    return example


def write_task(folder: Path, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame | None,
               description: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    if sample is not None:
        sample.to_csv(folder / "sample_submission.csv", index=False)
    (folder / "description.md").write_text(description)
    return folder


def tabular_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical (with missing values), and a text-free signal the models can learn."""
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({
        "row_key": np.arange(n) + 1000,
        "alpha": rng.normal(size=n),
        "beta": rng.uniform(0, 10, size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n),
        "grade": rng.choice(["a", "b", None], size=n),
    })
    frame["signal"] = frame.alpha * 2 + (frame.colour == "red") * 1.5 + rng.normal(scale=0.3, size=n)
    return frame


@pytest.fixture
def make_task(tmp_path):
    """make_task(kind) -> a task folder; kind in binary, multiclass, multiclass_proba, regression."""

    def build(kind: str = "binary", n: int = 240, name: str = "task", description: str | None = None) -> Path:
        frame = tabular_frame(n)
        if kind == "binary":
            frame["outcome"] = np.where(frame.signal > frame.signal.median(), "yes", "no")
            desc = "Predict the outcome. Submissions are evaluated on area under the ROC curve."
        elif kind.startswith("multiclass"):
            frame["outcome"] = pd.qcut(frame.signal, 3, labels=["low", "mid", "high"]).astype(str)
            desc = "Predict the outcome class. The metric is multi-class log loss." if kind == "multiclass_proba" else \
                "Predict the outcome class. Submissions are scored on accuracy."
        elif kind == "regression":
            frame["outcome"] = frame.signal * 10 + 50
            desc = "Predict the outcome. Submissions are evaluated on root mean squared error."
        else:
            raise ValueError(kind)
        frame = frame.drop(columns="signal")
        cut = int(n * 0.8)
        train, test = frame.iloc[:cut], frame.iloc[cut:].drop(columns="outcome")
        if kind == "multiclass_proba":
            sample = pd.DataFrame({"row_key": test.row_key, **{c: 1 / 3 for c in ["high", "low", "mid"]}})
        elif kind == "binary":
            sample = pd.DataFrame({"row_key": test.row_key, "outcome": 0.5})
        elif kind == "regression":
            sample = pd.DataFrame({"row_key": test.row_key, "outcome": 0.0})
        else:
            sample = pd.DataFrame({"row_key": test.row_key, "outcome": "low"})
        return write_task(tmp_path / name, train, test, sample, description if description is not None else desc)

    return build


@pytest.fixture
def grounded(make_task):
    """(task folder, TaskSpec, DataProfile, Blueprint) of a small binary task, as the prompts read them."""
    from graph.context import Settings
    from nodes.blueprint import make_blueprint
    from runtime.data_profile import profile_data
    from runtime.task_reader import read_task

    task_dir = make_task("binary")
    task = read_task(task_dir, Settings())
    profile = profile_data(task)
    plan = make_blueprint(task, profile, Settings(), budget_s=120)
    return task_dir, task, profile, plan
