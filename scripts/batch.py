"""iml batch: many tasks, one run each, locally in N processes or with their tracks on a Ray cluster.

Each task is an ordinary `iml run` in its own process, run folder and checkpoint, so a batch
is resumable the way a run is: `iml batch --resume BATCH_DIR` leaves finished tasks alone,
resumes the ones that stopped and starts the ones that never did. What a task's state is
comes from its run folder (run.json, submission.json), never from a copy kept by the batch.

    BATCH_DIR/batch.json     the tasks, their run folders and the options (written once)
    BATCH_DIR/runs/<name>/   each task's run folder
    BATCH_DIR/logs/<name>.log  its output
    BATCH_DIR/summary.csv    task, status, metric, CV score, time, submission (after each task)
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from runtime.data import TaskInputError

BATCH_FILE = "batch.json"
SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ("task", "status", "metric", "cv_score", "seconds", "submission")
# A stopped batch's runs get this long to stop on their own (checkpoint kept, kernels closed) before
# they are killed; IML_BATCH_STOP_GRACE_S sets another (the tests stretch it on a busy machine).
STOP_GRACE_S = 15.0
Status = Literal["queued", "running", "done", "stopped", "failed"]


@dataclass
class BatchTask:
    name: str
    task_dir: str
    run_dir: str


@dataclass
class BatchSpec:
    tasks: list[BatchTask]
    time_budget_s: float
    ray_address: str | None = None
    ray_cpus: float | None = None
    parallel: int = 1
    run_args: list[str] = field(default_factory=list)  # passed to each `iml run` (--folds, --seed, ...)

    def save(self, folder: Path) -> None:
        (folder / BATCH_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> BatchSpec:
        path = folder / BATCH_FILE
        if not path.exists():
            raise TaskInputError(f"not a batch folder (no {BATCH_FILE}): {folder}")
        raw = json.loads(path.read_text())
        raw["tasks"] = [BatchTask(**t) for t in raw["tasks"]]
        return cls(**raw)


@dataclass
class TaskState:
    task: BatchTask
    status: Status = "queued"
    seconds: float | None = None
    metric: str | None = None
    score: float | None = None
    submission: str | None = None
    note: str = ""


def new_batch(task_dirs: list[Path], out: Path, time_budget_s: float, *, parallel: int, ray_address: str | None,
              ray_cpus: float | None, run_args: list[str]) -> BatchSpec:
    if not task_dirs:
        raise TaskInputError("give at least one task folder: iml batch TASK_DIR... --out BATCH_DIR")
    missing = [str(d) for d in task_dirs if not Path(d).is_dir()]
    if missing:
        raise TaskInputError(f"not a folder: {', '.join(missing)}")
    if (out / BATCH_FILE).exists():
        raise TaskInputError(f"{out} already holds a batch; continue it with `iml batch --resume {out}`")
    out.mkdir(parents=True, exist_ok=True)
    tasks, names = [], set()
    for d in task_dirs:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(d).resolve().name) or "task"
        name, n = base, 1
        while name in names:  # two folders of the same name
            n += 1
            name = f"{base}-{n}"
        names.add(name)
        tasks.append(BatchTask(name=name, task_dir=str(Path(d).resolve()), run_dir=str((out / "runs" / name).resolve())))
    spec = BatchSpec(tasks=tasks, time_budget_s=time_budget_s, ray_address=ray_address, ray_cpus=ray_cpus,
                     parallel=parallel, run_args=run_args)
    spec.save(out)
    return spec


def read_state(task: BatchTask) -> TaskState:
    """What the task's run folder says about it."""
    state = TaskState(task)
    run = Path(task.run_dir)
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
        clock = json.loads((run / "run.json").read_text())
        state.seconds = round(float(clock.get("used_s", 0.0)), 1)
        ended = clock["sessions"][-1].get("ended")
        state.status = "done" if ended == "finished" and (run / "submission.csv").exists() else "stopped"
    with contextlib.suppress(OSError, ValueError, KeyError):
        state.metric = json.loads((run / "task.json").read_text())["metric"]
    with contextlib.suppress(OSError, ValueError, KeyError):
        final = json.loads((run / "submission.json").read_text())
        state.score = final.get("score")
    if (run / "submission.csv").exists():
        state.submission = str(run / "submission.csv")
    return state


def task_command(spec: BatchSpec, task: BatchTask, ray_address: str | None, ray_cpus: float | None) -> list[str]:
    """`iml resume` for a run that has a checkpoint, else `iml run`."""
    cli = [sys.executable, "-m", "scripts.cli"]
    if (Path(task.run_dir) / "checkpoints.sqlite").exists():
        cmd = [*cli, "resume", task.run_dir, "--quiet"]
    else:
        cmd = [*cli, "run", task.task_dir, "--out", task.run_dir, "--time-budget", f"{spec.time_budget_s}s", "--quiet",
               *spec.run_args]
        if ray_address:
            cmd += ["--ray", ray_address]
            if ray_cpus is not None:
                cmd += ["--ray-cpus", str(ray_cpus)]
    return cmd


class Batch:
    """Runs a batch's unfinished tasks, `parallel` at a time, and keeps the table and summary."""

    def __init__(self, spec: BatchSpec, folder: Path, *, parallel: int, on_change=None) -> None:
        self.spec = spec
        self.folder = folder
        self.parallel = max(1, parallel)
        self.on_change = on_change or (lambda states: None)
        self.states = {t.name: read_state(t) for t in spec.tasks}
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen] = {}
        self._stopping = False
        self.ray_address, self.ray_cpus = spec.ray_address, spec.ray_cpus

    def run(self) -> dict[str, TaskState]:
        todo = [t for t in self.spec.tasks if self.states[t.name].status != "done"]
        for t in todo:
            self.states[t.name].status = "queued"
        self._changed()
        if self.spec.ray_address:
            self._join_cluster()
        pool = ThreadPoolExecutor(max_workers=self.parallel)
        try:
            for future in [pool.submit(self._run_one, t) for t in todo]:
                future.result()
        finally:
            self.stop_children()  # first: the pool's threads wait on the children
            pool.shutdown(wait=True)
            for state in self.states.values():
                if state.status in ("queued", "running"):
                    state.status = "stopped"
            self.write_summary()
            if self.spec.ray_address:
                from runtime.cluster import disconnect

                disconnect()
        return self.states

    def _join_cluster(self) -> None:
        """The address the tasks' processes join (a cluster `local` started here is reached by its
        own address), and the CPUs each task's tracks ask for: the cluster shared by the tasks at once."""
        import ray

        from runtime.cluster import connect

        connect(self.spec.ray_address)
        if self.spec.ray_address == "local":
            self.ray_address = ray.get_runtime_context().gcs_address
        if self.ray_cpus is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            self.ray_cpus = max(1.0, float(int(cpus // self.parallel)))

    def _run_one(self, task: BatchTask) -> None:
        if self._stopping:
            return
        state = self.states[task.name]
        state.status, state.note = "running", ""
        began = time.time()
        self._changed()
        log_path = self.folder / "logs" / f"{task.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = task_command(self.spec, task, self.ray_address, self.ray_cpus)
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            with self._lock:
                if self._stopping:
                    state.status = "stopped"
                    return
                child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
                self._children[task.name] = child
            rc = child.wait()
            with self._lock:
                self._children.pop(task.name, None)
        fresh = read_state(task)
        if fresh.status != "done":
            fresh.status = "stopped" if self._stopping else "failed"
            fresh.note = last_line(log_path) if not self._stopping else "the batch was stopped"
        if fresh.seconds is None:
            fresh.seconds = round(time.time() - began, 1)
        fresh.note = fresh.note or (f"exit code {rc}" if rc else "")
        self.states[task.name] = fresh
        self.write_summary()
        self._changed()

    def _changed(self) -> None:
        self.on_change(dict(self.states))

    def stop_children(self) -> None:
        """Stops the running tasks (each resumes later from its checkpoint)."""
        with self._lock:
            self._stopping = True
            children = list(self._children.values())
        for child in children:
            with contextlib.suppress(OSError):
                child.send_signal(signal.SIGINT)  # iml run's own interrupt: checkpoint kept, kernels closed
        deadline = time.time() + float(os.environ.get("IML_BATCH_STOP_GRACE_S") or STOP_GRACE_S)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.time()))
            if child.poll() is None:
                child.kill()

    def write_summary(self) -> None:
        tmp = self.folder / f".{SUMMARY}.part"
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(SUMMARY_COLUMNS)
            for t in self.spec.tasks:
                s = self.states[t.name]
                writer.writerow([t.name, s.status, s.metric or "", "" if s.score is None else f"{s.score:.6g}",
                                 "" if s.seconds is None else f"{s.seconds:.1f}", s.submission or ""])
        os.replace(tmp, self.folder / SUMMARY)


def last_line(path: Path) -> str:
    """The last line of a task's log that says something (its error, usually)."""
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:200] if lines else ""
    return ""
