"""The bench's peers: AutoGluon at best_quality (the peer long budgets are measured against) is
AutoGluon's own runner in AutoGluon's venv, told its preset through the spec."""

from __future__ import annotations

import json
from pathlib import Path

import scripts.bench as bench


def _spec_and_command(peer: str, task_dir: Path, root: Path, monkeypatch) -> tuple[dict, list[str]]:
    seen: dict = {}

    def measured(cmd, log_path, timeout_s, cwd):  # the peer itself is not run: what it would be given is the point
        seen["cmd"] = cmd
        return 1, 0.0, 0.0

    monkeypatch.setattr(bench, "run_measured", measured)
    bench.run_peer(bench.PEERS[peer], "task", task_dir, 300.0, 0, root)
    work = bench.run_folder(root, "task", 0) / f"{peer}-seed0"
    return json.loads((work / "spec.json").read_text()), seen["cmd"]


def test_autogluon_best_is_autogluon_s_runner_at_best_quality(make_task, tmp_path, monkeypatch):
    task_dir = make_task("binary")
    best, best_cmd = _spec_and_command("autogluon_best", task_dir, tmp_path / "bench", monkeypatch)
    medium, medium_cmd = _spec_and_command("autogluon", task_dir, tmp_path / "bench", monkeypatch)
    assert best["presets"] == "best_quality" and "presets" not in medium  # the runner's default: medium_quality
    assert best_cmd[0] == medium_cmd[0] and best_cmd[0].endswith("venvs/autogluon/bin/python")  # one install
    assert best_cmd[1] == medium_cmd[1] and best_cmd[1].endswith("run_autogluon.py")
    assert "presets = spec.get(\"presets\", \"medium_quality\")" in Path(best_cmd[1]).read_text()


def test_the_default_bench_leaves_best_quality_out():
    assert "autogluon_best" not in bench.BenchOptions().peers and "autogluon_best" in bench.PEERS
