"""`iml bench --repeats 2` for real: iml and the LightGBM peer (in its own venv) on two splits of
iris at a 5 s budget, then a killed bench resumed. Nothing here reads a time or a verdict's
direction, which depend on the machine; only what ran, on which rows, and what was reused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from scripts.bench import PEERS, REPO, BenchOptions, ensure_venv, run_bench

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bench folder of its own whose venvs are the repository's `.bench/venvs`: the LightGBM
    peer is installed there once (from the package index, ~20 s) and reused by later runs."""
    shared = REPO / ".bench"
    try:
        ensure_venv(PEERS["lightgbm"], shared, log=lambda _: None)
    except RuntimeError as e:  # no package index reachable: the peer cannot exist here
        pytest.skip(f"the LightGBM peer's venv cannot be installed: {e}")
    root = tmp_path_factory.mktemp("bench")
    (root / "venvs").symlink_to((shared / "venvs").resolve(), target_is_directory=True)
    return root


def _ids(path: Path) -> set:
    return set(pd.read_csv(path)["id"])


def test_repeats_run_every_system_on_the_same_splits_and_resume(bench_root: Path) -> None:
    opts = BenchOptions(tasks=["iris"], peers=["lightgbm"], time_budget_s=5, repeats=2, root=bench_root)
    report = run_bench(opts, log=lambda _: None)
    runs = report.runs
    assert list(zip(runs.system, runs.split)) == [("iml", 0), ("lightgbm", 0), ("iml", 1), ("lightgbm", 1)]
    assert runs.valid.all(), runs.problems.tolist()
    assert runs.score.between(0, 1).all()

    tests = []
    for split in (0, 1):
        task = bench_root / "tasks" / f"split{split}" / "iris"
        here = bench_root / "runs" / "iris" / f"split{split}"
        # iml read this split's folder; the peer got its training rows and its test rows, no others
        assert Path(json.loads((here / "iml-seed0" / "task.json").read_text())["task_dir"]) == task.resolve()
        # the files the peer was told to read (a plain CSV split is handed over as it is, not copied)
        spec = json.loads((here / "lightgbm-seed0" / "spec.json").read_text())
        assert _ids(Path(spec["train"])) == _ids(task / "train.csv")
        assert _ids(Path(spec["test"])) == _ids(task / "test.csv")
        assert "species" not in pd.read_csv(spec["test"]).columns
        tests.append(_ids(task / "test.csv"))
    assert tests[0] != tests[1]

    row = report.table.iloc[0]
    assert row.iml_n == 2 and row.lightgbm_n == 2 and not math.isnan(row.iml_se)
    assert row["iml-lightgbm_n"] == 2 and row["iml-lightgbm_verdict"] in ("better", "worse", "within noise")
    assert "| iris | accuracy ↑ |" in report.markdown
    assert (bench_root / "results" / "latest.md").read_text() == report.markdown

    # Killed before its last run: the resumed bench reuses the three finished runs, iml's included,
    # and runs only the missing one.
    runs_csv = max((bench_root / "results").glob("runs-*.csv"))
    killed = bench_root / "killed.csv"
    pd.read_csv(runs_csv).iloc[:-1].to_csv(killed, index=False)
    logs: list[str] = []
    resumed = run_bench(BenchOptions(**{**opts.__dict__, "resume": killed}), log=logs.append)
    assert sum("reused" in line for line in logs) == 3
    assert list(zip(resumed.runs.system, resumed.runs.split)) == list(zip(runs.system, runs.split))
    assert resumed.runs.score.iloc[:3].tolist() == runs.score.iloc[:3].tolist()
    assert resumed.runs.valid.all()
