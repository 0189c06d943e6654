"""Tracks in Ray actors, on a real local cluster (127.0.0.1, 2 CPUs and 2 declared GPUs).

The same run with the same seed scores the same whether its kernels are local or in actors;
an actor killed mid-attempt is replaced and the attempt run once more; GPUs are scheduled to
the tracks that use them.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from machine_speed import scaled

ray = pytest.importorskip("ray")

import graph.runner as runner  # noqa: E402
from graph.context import EventLog, Settings  # noqa: E402
from graph.runner import run_task  # noqa: E402
from runtime.cluster import ISOLATE_ENV, RayPool  # noqa: E402
from runtime.submission_file import validate_submission  # noqa: E402
from runtime.task_reader import read_task  # noqa: E402
from scripts.examples import make_example  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@functools.cache
def budget_s() -> float:
    """Attempt 1 must score in the budget (after an actor's replacement too): 15 s on free cores,
    more on a busy machine; measured once, so the runs compared are planned alike."""
    return scaled(15)


def settings(**kw) -> Settings:
    # one thread per kernel in both runs, so LightGBM sums its histograms the same way
    base = dict(time_budget_s=budget_s(), tracks=("traditional",), kernel_threads=1, parallel_kernels=1, seed=0)
    return Settings(**{**base, **kw})


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def scores(run: Path) -> dict[tuple, float]:
    """Each attempt's CV score, keyed by what it ran: its modules' hash, its params and the cuts of
    the folds it finished (not its number: which members fit the budget, and so their numbers, may
    differ between two runs; nor a candidate that ran out of its time after fewer cuts in one)."""
    out = {}
    for folder in sorted((run / "tracks" / "traditional").glob("attempt_*")):
        result = json.loads((folder / "result.json").read_text())
        execution = json.loads((folder / "execution.json").read_text())
        if result.get("status") == "ok":
            out[(execution["sha256"], json.dumps(execution["params"], sort_keys=True), result.get("cuts"))] = result["score"]
    return out


def first_attempt(run: Path) -> tuple:
    """The key (`scores`) of the track's first attempt, the recipe's."""
    folder = run / "tracks" / "traditional" / "attempt_1"
    execution = json.loads((folder / "execution.json").read_text())
    cuts = json.loads((folder / "result.json").read_text()).get("cuts")
    return execution["sha256"], json.dumps(execution["params"], sort_keys=True), cuts


def test_tracks_in_actors_score_as_local_kernels_even_without_shared_files(cluster, tmp_path, monkeypatch):
    task = make_example("penguins", tmp_path / "penguins")
    local = run_task(task, tmp_path / "local", settings())
    monkeypatch.setenv(ISOLATE_ENV, "1")  # the actor keeps its own copy of the run folder and the data
    remote = run_task(task, tmp_path / "ray", settings(ray_address="auto"))
    assert local["submission_path"] and remote["submission_path"]
    actors = [e for e in events(tmp_path / "ray") if e["event"] == "actor"]
    assert actors and all(not a["shared_files"] and a["num_cpus"] == 2.0 for a in actors)
    local_scores, ray_scores = scores(tmp_path / "local"), scores(tmp_path / "ray")
    common = set(local_scores) & set(ray_scores)
    # at least the recipe ran in both (on a loaded machine the members may not fit in either)
    assert first_attempt(tmp_path / "local") in common, (local_scores, ray_scores)
    for key in common:
        assert ray_scores[key] == pytest.approx(local_scores[key], rel=1e-9, abs=1e-12), key
    # what the cells wrote came back to the driver's run folder
    first = tmp_path / "ray" / "tracks" / "traditional" / "attempt_1"
    assert (first / "oof.npy").exists() and (first / "test.npy").exists() and (tmp_path / "ray" / "y.npy").exists()
    assert not validate_submission(read_task(task, Settings()), remote["submission_path"])


class KillingEventLog(EventLog):
    """The run's event log, which SIGKILLs the track's actor as its first attempt starts to
    cross-validate (the moment is an event, so the kill never comes too late)."""

    killed: list[dict] = []

    def __init__(self, path):
        super().__init__(path)
        self.actor: dict | None = None

    def emit(self, event: str, **data):
        super().emit(event, **data)
        if event == "actor":
            self.actor = data
        if event == "cross_validate" and data.get("attempt") == 1 and not KillingEventLog.killed:
            os.kill(self.actor["pid"], signal.SIGKILL)
            psutil.wait_procs([psutil.Process(self.actor["pid"])], timeout=10)
            KillingEventLog.killed.append(self.actor)


def test_an_actor_killed_mid_attempt_is_replaced_and_the_attempt_run_once_more(cluster, tmp_path, monkeypatch):
    task = make_example("penguins", tmp_path / "penguins")
    monkeypatch.setattr(runner, "EventLog", KillingEventLog)
    final = run_task(task, tmp_path / "run", settings(ray_address="auto"))
    assert KillingEventLog.killed, "the actor was never killed"
    log = events(tmp_path / "run")
    names = [e["event"] for e in log]
    infra = [e for e in log if e["event"] == "infrastructure"]
    assert len(infra) == 1 and infra[0]["track"] == "traditional" and infra[0]["retry"] == 1
    # the replacement actor came up between the kill and attempt 1's result, which is ok
    first_result = next(i for i, e in enumerate(log) if e["event"] == "attempt" and e["attempt"] == 1)
    assert names.index("infrastructure") < first_result
    assert sum(1 for e in log[:first_result] if e["event"] == "actor") == 2
    assert log[first_result]["status"] == "ok"
    assert sum(1 for e in log if e["event"] == "cross_validate" and e["attempt"] == 1) == 1  # the graph ran it once
    assert not validate_submission(read_task(task, Settings()), final["submission_path"])
    # the dead actor's kernel did not linger
    gone, alive = psutil.wait_procs([p for p in [_process(KillingEventLog.killed[0]["kernel_pid"])] if p], timeout=15)
    assert not alive


def _process(pid):
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def test_gpus_are_scheduled_by_num_gpus_to_the_tracks_that_use_them(cluster, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "task.json").write_text(json.dumps({"task_dir": str(tmp_path)}))
    plan = {"tracks": [{"track": t} for t in ("traditional", "pretrained", "neural")]}
    (run / "blueprint.json").write_text(json.dumps(plan))
    seen = []
    pool = RayPool("auto", run, emit=lambda event, **data: seen.append((event, data)))
    kernels = {t: pool.kernel(t, "import os") for t in ("traditional", "neural")}
    try:
        for kernel in kernels.values():
            kernel.start()
        out = {t: k.execute("print(os.environ.get('CUDA_VISIBLE_DEVICES'))", timeout=30) for t, k in kernels.items()}
    finally:
        for kernel in kernels.values():
            kernel.shutdown()
    actors = {d["track"]: d for e, d in seen if e == "actor"}
    assert actors["neural"]["num_gpus"] == 1.0 and len(actors["neural"]["gpu_ids"]) == 1
    assert actors["traditional"]["num_gpus"] == 0.0 and actors["traditional"]["gpu_ids"] == []
    # the kernel inside the actor sees the GPU Ray gave it
    assert out["neural"].status == "ok" and out["neural"].output.strip() == actors["neural"]["gpu_ids"][0]
    assert out["traditional"].output.strip() in ("", "None")


def test_a_kernel_error_inside_an_actor_reads_as_a_local_one(cluster, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "task.json").write_text(json.dumps({"task_dir": str(tmp_path)}))
    pool = RayPool("auto", run, emit=lambda event, **data: None)
    kernel = pool.kernel("traditional", "x = 41")
    try:
        kernel.start()
        result = kernel.execute("x += 1\nraise ValueError(f'bad {x}')", timeout=30)
        again = kernel.execute("print(x)", timeout=30)
        slow = kernel.execute("import time\ntime.sleep(30)", timeout=2)
    finally:
        kernel.shutdown()
    assert (result.status, result.error_name, result.error_value) == ("error", "ValueError", "bad 42")
    assert again.output.strip() == "42"  # the same kernel, its state kept between cells
    assert slow.status == "timeout"
    assert not kernel.alive  # shut down: the actor is gone
