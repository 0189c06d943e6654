"""`iml batch` for real: three tiny tasks in local processes, the batch killed after its first
task and resumed (the finished task untouched, the stopped one resumed, the last one started),
and a batch whose tracks run on a Ray cluster started with `ray start` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from machine_speed import backstop, scaled_duration

from scripts.batch import STOP_GRACE_S
from scripts.examples import make_example

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def iml(*args, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=backstop(timeout), cwd=REPO, env={**os.environ, **(env or {})})


# Ray turns token authentication on for `ray start` whenever ~/.ray/auth_token exists (any earlier
# local cluster writes one), and sends the token to an explicit address only in this mode: the
# head and the drivers are told the same, whatever this machine holds.
NO_AUTH = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def summary(batch: Path) -> dict[str, dict]:
    with (batch / "summary.csv").open() as f:
        return {row["task"]: row for row in csv.DictReader(f)}


def sessions(run: Path) -> list[dict]:
    return json.loads((run / "run.json").read_text())["sessions"]


@pytest.fixture
def tasks(tmp_path) -> list[Path]:
    return [make_example(name, tmp_path / "tasks" / name) for name in ("iris", "penguins", "wine")]


def test_a_batch_killed_after_its_first_task_resumes_without_touching_it(tasks, tmp_path):
    batch = tmp_path / "batch"
    # each task must score in its budget (cv_score below): 8 s on free cores, more on a busy machine;
    # and the stopped run must stop on its own (its session 'interrupted'), not at the batch's grace
    process = subprocess.Popen([sys.executable, "-m", "scripts.cli", "batch", *map(str, tasks), "--out", str(batch),
                                "--time-budget", scaled_duration(8), "--parallel", "1"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "IML_BATCH_STOP_GRACE_S": str(backstop(STOP_GRACE_S))})
    second = batch / "runs" / "penguins"
    deadline = time.time() + backstop(180)
    try:
        # the moment: the first task done, the second one's track cross-validating
        while not ((second / "events.jsonl").exists() and '"cross_validate"' in (second / "events.jsonl").read_text()):
            assert process.poll() is None, process.stdout.read()
            assert time.time() < deadline, "the second task never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=backstop(60))
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out
    assert "iml batch --resume" in out
    first_submission = batch / "runs" / "iris" / "submission.csv"
    stopped = summary(batch)
    assert stopped["iris"]["status"] == "done" and stopped["penguins"]["status"] == "stopped"
    assert stopped["wine"]["status"] in ("queued", "stopped")
    kept = first_submission.stat().st_mtime_ns

    resumed = iml("batch", "--resume", batch)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = summary(batch)
    assert {r["status"] for r in rows.values()} == {"done"}
    assert first_submission.stat().st_mtime_ns == kept and len(sessions(batch / "runs" / "iris")) == 1
    assert [s["ended"] for s in sessions(second)] == ["interrupted", "finished"]  # resumed, not started over
    assert len(sessions(batch / "runs" / "wine")) == 1
    for name, row in rows.items():
        assert row["metric"] and float(row["cv_score"]) > 0 and Path(row["submission"]).exists()
        check = iml("validate", tmp_path / "tasks" / name, row["submission"])
        assert check.returncode == 0, check.stdout + check.stderr
    again = iml("batch", "--resume", batch)  # nothing left: every task stays as it is
    assert again.returncode == 0 and first_submission.stat().st_mtime_ns == kept


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A real Ray head on this machine (`ray start --block`, killed with its process group)."""
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray_cli is None:
        pytest.skip("Ray is not installed (pip install -e '.[cluster]')")
    port = _free_port()
    # its own temp folder (short: Ray's socket paths are limited): the address `ray start` records
    # there must not outlive the test for the next ray.init on this machine to find
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", f"--temp-dir={temp}",
                             "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **NO_AUTH})
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert head.poll() is None and time.time() < deadline, "ray start did not come up"
        time.sleep(0.5)
    try:
        yield address
    finally:
        # `ray stop` would stop every Ray on the machine; this head's own process tree goes instead
        family = [psutil.Process(head.pid), *psutil.Process(head.pid).children(recursive=True)]
        for process in family:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(family, timeout=30)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_batch_on_a_ray_cluster_shares_its_cpus_between_the_tasks(tasks, tmp_path, ray_head):
    batch = tmp_path / "batch"
    done = iml("batch", *tasks[:2], "--out", batch, "--time-budget", scaled_duration(12), "--ray", ray_head, timeout=240,
               env=NO_AUTH)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 at once on Ray cluster" in done.stdout
    rows = summary(batch)
    assert [r["status"] for r in rows.values()] == ["done", "done"]
    for name in rows:
        log = [json.loads(line) for line in (batch / "runs" / name / "events.jsonl").read_text().splitlines()]
        actors = [e for e in log if e["event"] == "actor"]
        assert actors and all(a["num_cpus"] == 1.0 for a in actors)  # 2 CPUs, 2 tasks at once
