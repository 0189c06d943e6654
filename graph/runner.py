"""Running the graph with a checkpointer in the run folder: a fresh run, or a resumed one.

The CLI and the Python API both come through here, so a run started either way can be
resumed either way.

Resume. The checkpointer (SQLite in the run folder, durability "sync") saves the state after
every step of the graph and of each track's subgraph, so a run killed at any point continues
from the last finished step: finished tracks are not run again (their results are pending
writes of the interrupted fan-out), an interrupted track continues inside its own subgraph
(an attempt that was executing when the process died runs again in the same attempt folder,
while earlier attempts are kept), and kernels are started again on first use.

Time. `run.json` keeps the run's clock: the seconds used so far are written at the session's
start, at every event (events.jsonl), after every step of the graph and of its subgraphs, and by
a heartbeat in between, so a run killed with SIGKILL loses at most the time since the last of
these (never more than HEARTBEAT_S), and a session that did any work never reads as 0 s. A resumed run's budget is what
was left when it died (the budget minus the time used), unless the caller gives it a new
allowance (`iml resume --time-budget`); stages and attempts get at least their minimum times
either way, so a resumed run always ends with a submission.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel

from graph import state as state_module
from graph.builder import build_graph
from graph.context import EventLog, RunContext, Settings, warm_kernel
from runtime import records as records_module
from runtime.data import TaskInputError
from runtime.kernel import WarmKernel

CHECKPOINTS = "checkpoints.sqlite"
SETTINGS = "settings.json"
CLOCK = "run.json"
HEARTBEAT_S = 2.0
# on_update(mode, chunk): mode "updates" (a top-level node's update, {node: update}), "custom"
# (an event from EventLog.emit, anywhere in the graph: {"event": ..., "t": ..., ...}), or
# "track_step" ({"track": name or None, "node": subgraph node that just finished}).
StreamCallback = Callable[[str, Any], None]


def serializer() -> JsonPlusSerializer:
    """Checkpoints hold our pydantic models (the records and refine's search state); allow
    exactly those to be read back."""
    allowed = [
        (module.__name__, name) for module in (records_module, state_module)
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)


@contextmanager
def checkpointer(run_dir: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(run_dir / CHECKPOINTS, check_same_thread=False)
    try:
        yield SqliteSaver(conn, serde=serializer())
    finally:
        conn.close()


def run_task(task_dir: str | Path, run_dir: str | Path, settings: Settings, *, llm: Any = None,
             on_update: StreamCallback | None = None, warm: WarmKernel | None = None, task: Any = None,
             started_at: float | None = None) -> dict:
    """warm: a kernel the caller started already (`graph.context.warm_kernel`); by default one is
    started here, so its start overlaps the run's first steps. task: the TaskSpec the caller read
    already with these settings (`iml run` reads it to refuse bad input before a run folder
    exists): offline, analyze takes it instead of reading the files again (a large table's target
    column is read once). started_at: when the user's command started (default now): the budget
    is the user's wall time, so the seconds its process spent before the run (imports, the warm
    kernel, reading the task and a large table's target column) count."""
    warm = warm if warm is not None else warm_kernel(settings)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SETTINGS).write_text(json.dumps(dataclasses.asdict(settings), indent=2))
    inputs = {"task_dir": str(Path(task_dir).resolve()), "run_dir": str(run_dir), **({"task": task} if task is not None else {})}
    clock = RunClock(run_dir, task_dir=inputs["task_dir"], budget_s=settings.time_budget_s)
    return _stream(run_dir, inputs, settings, llm, on_update, clock, kind="run", warm=warm, started_at=started_at)


def resume_run(run_dir: str | Path, *, llm: Any = None, on_update: StreamCallback | None = None,
               time_budget_s: float | None = None) -> dict:
    """Continue from the last finished step; finished tracks and attempts are not redone.

    time_budget_s: seconds this resumed session may use; default what the run had left.
    """
    run_dir = Path(run_dir).resolve()
    settings = load_settings(run_dir)
    clock = RunClock.load(run_dir, settings)
    if time_budget_s is not None:
        clock.budget_s = clock.used_s + time_budget_s
    settings = dataclasses.replace(settings, time_budget_s=clock.budget_s)
    finished, values = run_status(run_dir)
    if finished:
        return values
    inputs = None
    if not values:
        # Killed before the first checkpoint: nothing to continue, so start over from the inputs.
        if not clock.task_dir:
            raise TaskInputError(f"the run in {run_dir} has no checkpoint and no record of its task; start it again with `iml run`")
        inputs = {"task_dir": clock.task_dir, "run_dir": str(run_dir)}
    return _stream(run_dir, inputs, settings, llm, on_update, clock, kind="resume", spent=values.get("llm_usage") or [])


def load_settings(run_dir: Path) -> Settings:
    path = run_dir / SETTINGS
    if not path.exists():
        raise TaskInputError(f"not a run folder (no {SETTINGS}): {run_dir}")
    raw = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(Settings)}
    raw = {k: v for k, v in raw.items() if k in known}  # settings written by another version
    if raw.get("tracks") is not None:
        raw["tracks"] = tuple(raw["tracks"])
    return Settings(**raw)


def run_status(run_dir: Path) -> tuple[bool, dict]:
    """(finished, values) of the run's last checkpoint."""
    with checkpointer(run_dir) as saver:
        app = build_graph().compile(checkpointer=saver)
        snapshot = app.get_state({"configurable": {"thread_id": run_dir.name}})
    # An interrupt that lands after a step's tasks wrote their results, before the step was
    # applied, leaves no `next` but those tasks: the run is not over (resuming applies them).
    finished = not snapshot.next and not snapshot.tasks and bool(snapshot.values)
    return finished, dict(snapshot.values)


class RunClock:
    """The run's time across sessions, in run.json; a heartbeat thread keeps it current."""

    def __init__(self, run_dir: Path, *, task_dir: str | None, budget_s: float, used_s: float = 0.0,
                 sessions: list[dict] | None = None):
        self.path = run_dir / CLOCK
        self.task_dir = task_dir
        self.budget_s = budget_s
        self.used_before_s = used_s  # by earlier sessions
        self.sessions = sessions or []
        self._session: dict | None = None
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, run_dir: Path, settings: Settings) -> RunClock:
        path = run_dir / CLOCK
        raw = json.loads(path.read_text()) if path.exists() else {}
        return cls(run_dir, task_dir=raw.get("task_dir"), budget_s=float(raw.get("time_budget_s", settings.time_budget_s)),
                   used_s=float(raw.get("used_s", 0.0)), sessions=raw.get("sessions", []))

    @property
    def session_started(self) -> float:
        """When this session's clock started (a time.time())."""
        return self._started

    @property
    def used_s(self) -> float:
        return self.used_before_s + (time.time() - self._started if self._session else 0.0)

    def start(self, kind: str, at: float | None = None) -> None:
        """The session's clock runs from `at` (default now): a command's start-up counts."""
        self._started = min(time.time(), at) if at is not None else time.time()
        self._session = {"kind": kind, "started": round(self._started, 3), "used_before_s": round(self.used_before_s, 3),
                         "budget_left_s": round(self.budget_s - self.used_before_s, 3), "seconds": 0.0, "ended": None}
        self.sessions.append(self._session)
        self.write()
        self._thread = threading.Thread(target=self._beat, name="iml-clock", daemon=True)
        self._thread.start()

    def stop(self, ended: str) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._session is not None:
            self._session["ended"] = ended
        self.write()

    def write(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session["seconds"] = round(time.time() - self._started, 3)
            # Three decimals: rounding to tenths made a session killed 40 ms in read as 0 s.
            record = {"task_dir": self.task_dir, "time_budget_s": self.budget_s, "used_s": round(self.used_s, 3),
                      "sessions": self.sessions}
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(record, indent=2))
            os.replace(tmp, self.path)  # never a half-written clock, whenever the process dies

    def tick(self, *_: Any) -> None:
        """Record the time used now (an event or a graph step happened); cheap, any thread."""
        if self._session is not None and not self._stop.is_set():
            self.write()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.write()


def _stream(run_dir: Path, inputs: dict | None, settings: Settings, llm: Any, on_update: StreamCallback | None,
            clock: RunClock, kind: str, spent: list | None = None, warm: WarmKernel | None = None,
            started_at: float | None = None) -> dict:
    # The context's clock starts at the time earlier sessions used, so remaining_s() is what
    # the whole run has left; its LLM budget starts with what earlier sessions spent.
    clock.start(kind, at=started_at)
    ctx = RunContext(settings=settings, llm=llm, events=EventLog(run_dir / "events.jsonl"),
                     started_at=clock.session_started - clock.used_before_s, warm=warm)
    for call in spent or []:
        ctx.llm_budget.add(call)
    config = {"configurable": {"thread_id": run_dir.name}, "recursion_limit": settings.recursion_limit}
    ctx.events.subscribe(clock.tick)
    session = {"event": "session", "kind": kind, "budget_s": round(settings.time_budget_s, 1),
               "used_before_s": round(clock.used_before_s, 1), "left_s": round(ctx.remaining_s(), 1),
               "sessions": len(clock.sessions)}
    ctx.events.emit(**session)
    if on_update is not None:
        on_update("custom", {"t": time.time(), **session})
    ended = "failed"
    try:
        with checkpointer(run_dir) as saver:
            app = build_graph().compile(checkpointer=saver)
            track_of: dict[str, str] = {}  # subgraph namespace -> track name
            for namespace, mode, chunk in app.stream(inputs, config, context=ctx, stream_mode=["updates", "custom"],
                                                     durability="sync", subgraphs=True):
                if mode == "updates":
                    clock.tick()  # a step of the graph or of a subgraph finished
                if on_update is None:
                    continue
                if mode == "custom":
                    if namespace and isinstance(chunk, dict) and chunk.get("track"):
                        track_of.setdefault(namespace[0], chunk["track"])
                    on_update("custom", chunk)
                elif not namespace:
                    on_update("updates", chunk)
                elif namespace[0].split(":")[0] == "refine":
                    continue  # refine's steps speak through its own events (the candidate, its score, kept)
                else:
                    for node in chunk:
                        on_update("track_step", {"track": track_of.get(namespace[0]), "node": node})
            final = dict(app.get_state(config).values)
            ended = "finished" if final.get("submission_path") else "stopped"
            return final
    except KeyboardInterrupt:
        ended = "interrupted"
        raise
    finally:
        clock.stop(ended)
        ctx.events.emit("session_end", kind=kind, ended=ended, seconds=round(clock._session["seconds"], 1),
                        used_s=round(clock.used_s, 1))
        ctx.close()
