"""Run context: settings and live resources that must never be checkpointed.

Nodes reach it through `runtime: Runtime[RunContext]`. Kernels are started lazily, one per
track, and survive across that track's attempts (the data is loaded once per kernel).
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import StateGraph

from graph.turns import TrackTurns
from graph.settings import HARNESS_STARTUP, RAY_SLOTS, Settings, kernel_threads, warm_kernel  # noqa: F401 (the nodes' import)
from runtime.kernel import KernelSession, WarmKernel
from runtime.machine import ExecutionSlots


class EventLog:
    """Appends one JSON object per line to events.jsonl; safe across track threads.

    Listeners (`subscribe`) see every record before it is written: the run's clock records the
    time used at each event, so what a killed session did is never lost to a heartbeat that
    had not fired yet, and a reader who sees an event knows the clock already counts it.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, **data: Any) -> None:
        record = {"t": round(time.time(), 3), "event": event, **data}
        for listener in self._listeners:
            listener(record)
        if self.path is not None:
            line = json.dumps(record, default=str)
            with self._lock, self.path.open("a") as f:
                f.write(line + "\n")
        # Inside a graph run the same record goes to the `custom` stream (live progress,
        # Studio); outside one there is no writer and the file is all there is.
        try:
            writer = get_stream_writer()
        except RuntimeError:
            return
        writer(json.loads(json.dumps(record, default=str)))


@dataclass
class RunContext:
    settings: Settings = field(default_factory=Settings)
    llm: Any = None  # a LangChain chat model, or None for the offline path
    started_at: float = field(default_factory=time.time)
    events: EventLog = field(default_factory=lambda: EventLog(None))
    _kernels: dict[str, KernelSession] = field(default_factory=dict)
    _kernel_lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: ExecutionSlots | None = None
    _turns: TrackTurns | None = None
    _llm_budget: Any = None
    _ray: Any = None  # runtime.cluster.RayPool, when the kernels run on a Ray cluster
    # a kernel started before the run's first steps (`warm_kernel`); the first track to ask takes it
    warm: WarmKernel | None = None

    @property
    def llm_budget(self):
        """The run's LLM spend caps and what has been spent (graph.llm.LLMBudget)."""
        with self._kernel_lock:
            if self._llm_budget is None:
                from graph.llm import LLMBudget

                self._llm_budget = LLMBudget(self.settings.max_llm_cost_usd, self.settings.max_llm_tokens)
            return self._llm_budget

    @property
    def slots(self) -> ExecutionSlots:
        with self._kernel_lock:
            if self._slots is None:
                # On a cluster Ray holds back the actors its resources cannot place yet: no
                # local limit on top (one slot per track).
                self._slots = ExecutionSlots(RAY_SLOTS if self.settings.ray_address else self.settings.parallel_kernels)
            return self._slots

    @property
    def turns(self) -> TrackTurns:
        """Which track computes next, when tracks outnumber the execution slots (graph.turns)."""
        slots = self.slots
        with self._kernel_lock:
            if self._turns is None:
                self._turns = TrackTurns(slots.n)
            return self._turns

    def elapsed_s(self) -> float:
        return time.time() - self.started_at

    def remaining_s(self) -> float:
        return self.settings.time_budget_s - self.elapsed_s()

    def ray_pool(self, run_dir: str | Path):
        """The run's Ray cluster (joined on first use), when settings name one."""
        from runtime.cluster import RayPool

        with self._kernel_lock:
            if self._ray is None:
                s = self.settings
                self._ray = RayPool(s.ray_address, run_dir, emit=self.events.emit, max_retries=s.ray_max_retries,
                                    cpus_per_track=s.ray_cpus_per_track, max_threads=s.kernel_threads,
                                    memory_limit_mb=s.kernel_memory_mb)
            return self._ray

    def gpu_available(self, run_dir: str | Path) -> bool:
        """Whether the tracks' kernels get a GPU: this machine's, or the cluster's."""
        if self.settings.ray_address:
            return self.ray_pool(run_dir).cluster.get("GPU", 0.0) > 0
        from runtime.machine import gpu_available

        return gpu_available()

    def kernel(self, track: str, run_dir: str) -> KernelSession:
        """The track's kernel, started on first use with the harness loaded (inside a Ray actor
        when the run has a cluster)."""
        if self.settings.ray_address:
            pool = self.ray_pool(run_dir)
            with self._kernel_lock:
                session = self._kernels.get(track)
                if session is None:
                    session = pool.kernel(track, HARNESS_STARTUP.format(run_dir=str(run_dir)))
                    self._kernels[track] = session
            session.start()
            return session
        with self._kernel_lock:
            session = self._kernels.get(track)
            if session is None:
                startup = HARNESS_STARTUP.format(run_dir=str(run_dir))
                warm, self.warm = self.warm, None
                session = warm.take(run_dir, startup) if warm is not None else None
                session = session or KernelSession(run_dir, threads=kernel_threads(self.settings),
                                                   memory_limit_mb=self.settings.kernel_memory_mb, startup_code=startup)
                self._kernels[track] = session
        if not session.alive:
            session.start()
        return session

    def idle_kernel(self) -> KernelSession | None:
        """A track's kernel on this machine that is still running (a single-track plan keeps its
        own through refine), for work that needs what it has loaded; None when there is none."""
        with self._kernel_lock:
            return next((s for s in self._kernels.values() if isinstance(s, KernelSession) and s.alive), None)

    def close_kernel(self, track: str) -> None:
        with self._kernel_lock:
            session = self._kernels.pop(track, None)
        if session is not None:
            session.shutdown()

    def close(self) -> None:
        with self._kernel_lock:
            turns = self._turns
        if turns is not None:
            turns.close()
        with self._kernel_lock:
            warm, self.warm = self.warm, None
            if warm is not None:
                warm.discard()
            for session in self._kernels.values():
                session.shutdown()
            self._kernels.clear()
            pool, self._ray = self._ray, None
        if pool is not None:
            from runtime.cluster import disconnect

            disconnect()


# -- nodes invoked without a RunContext --------------------------------------------------------
#
# The CLI and graph.runner pass a RunContext with an event log. `langgraph dev` (Studio) and a
# plain `compile().invoke({"task_dir": ...})` pass none: Runtime.context is then None, a
# default-constructed RunContext (a `{}` context coerced through context_schema) or Settings
# (the Studio graph's context form). Every node is wrapped (ContextGraph) so it gets the run's
# own default RunContext instead: built from those settings, one per run folder, so kernels
# are shared across nodes and tracks, and closed once the submission is written.

RUNS_DIR_ENV = "IML_RUNS_DIR"  # where runs go when no folder is given (iml run: ./runs; graph runs: graph_runs_root())
_default_contexts: dict[str, RunContext] = {}
_default_lock = threading.Lock()


def settings_from(value: Any) -> Settings:
    """Settings from a Settings, a RunContext, or a mapping of Settings fields (others ignored)."""
    if isinstance(value, Settings):
        return value
    if isinstance(value, RunContext):
        return settings_from(value.settings)
    if isinstance(value, Mapping):
        known = {f.name for f in fields(Settings)}
        raw = {k: v for k, v in value.items() if k in known and v is not None}
        if raw.get("tracks") is not None:
            raw["tracks"] = tuple(raw["tracks"])
        return Settings(**raw)
    return Settings()


def run_dir_for(task_dir: str | Path, root: str | Path | None = None) -> Path:
    """A fresh folder name for a run of this task: <root>/<task>-<time>[-n]."""
    root = Path(root if root is not None else os.environ.get(RUNS_DIR_ENV, "runs"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(task_dir).resolve().name) or "task"
    base = root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def graph_runs_root() -> Path:
    """Where a graph run given no run folder (Studio, a plain invoke) keeps its run: $IML_RUNS_DIR,
    else the user's data folder. Never the project folder: `langgraph dev` reloads on every .py
    file written under it, and a run writes features.py / model.py with each attempt, which
    cancelled the run it belonged to at every attempt."""
    if os.environ.get(RUNS_DIR_ENV):
        return Path(os.environ[RUNS_DIR_ENV])
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "iml" / "runs"


def _llm_from_env() -> Any:
    """The chat model named by IML_MODEL / OPENAI_BASE_URL, or None (offline)."""
    try:
        from graph.llm import build_chat_model, resolve_settings
    except ImportError:
        return None
    llm_settings = resolve_settings()
    return build_chat_model(llm_settings) if llm_settings is not None else None


def default_context(run_dir: str | Path, given: Any = None) -> RunContext:
    """The run's default context (created on first use), with its event log in the run folder."""
    key = str(Path(run_dir).resolve())
    with _default_lock:
        ctx = _default_contexts.get(key)
        if ctx is None:
            llm = given.llm if isinstance(given, RunContext) and given.llm is not None else _llm_from_env()
            ctx = RunContext(settings=settings_from(given), llm=llm, events=EventLog(Path(key) / "events.jsonl"))
            _default_contexts[key] = ctx
        return ctx


def release_default_context(run_dir: str | Path) -> None:
    with _default_lock:
        ctx = _default_contexts.pop(str(Path(run_dir).resolve()), None)
    if ctx is not None:
        ctx.close()


@atexit.register
def _close_default_contexts() -> None:
    for key in list(_default_contexts):
        release_default_context(key)


def is_run_context(given: Any) -> bool:
    """Whether a runtime's context is already a run's own (a RunContext writing its events)."""
    return isinstance(given, RunContext) and given.events.path is not None


def with_run_context(node: Callable) -> Callable:
    """Wrap a node taking `runtime` so that it always sees a RunContext with an event log.

    A state without run_dir (a Studio input is just {"task_dir": ...}) gets a fresh run folder
    (run_dir_for), which the node's update carries into the state.
    """
    if "runtime" not in inspect.signature(node).parameters:
        return node

    @functools.wraps(node)
    def run(state, runtime):
        given = runtime.context
        if is_run_context(given):
            return node(state, runtime)
        added: dict[str, Any] = {}
        run_dir = state.get("run_dir")
        if not run_dir:
            run_dir = str(run_dir_for(state["task_dir"], graph_runs_root()).resolve())
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            Path(run_dir, "settings.json").write_text(json.dumps(asdict(settings_from(given)), indent=2))
            state, added = {**state, "run_dir": run_dir}, {"run_dir": run_dir}
        ctx = default_context(run_dir, given)
        if added and Path.cwd().resolve() in Path(run_dir).parents:
            ctx.events.emit("warning", stage="run", what=f"the run folder {run_dir} is under the current folder, which "
                            "`langgraph dev` watches: its hot reload restarts the server (and cancels the run) each time an "
                            "attempt writes its modules; set IML_RUNS_DIR outside it, or start the server with --no-reload")
        update = node(state, runtime.override(context=ctx))
        if isinstance(update, dict):
            update = {**added, **update}
            if update.get("submission_path"):
                release_default_context(run_dir)  # the run's last step: its kernels are done
        return update

    return run


def router_with_run_context(path: Callable) -> Callable:
    """Wrap a router taking `runtime` so that it sees the run's RunContext (its clock) as the nodes
    do: by the time a router runs, a node has put run_dir into the state."""
    if not inspect.isfunction(path) or "runtime" not in inspect.signature(path).parameters:
        return path

    @functools.wraps(path)
    def route(state, runtime):
        given = runtime.context
        if is_run_context(given):
            return path(state, runtime)
        return path(state, runtime.override(context=default_context(state["run_dir"], given)))

    return route


class ContextGraph(StateGraph):
    """A StateGraph whose function nodes and routers get a RunContext even when the caller passes none."""

    def add_node(self, node, action=None, **kwargs):  # type: ignore[override]
        if action is None and inspect.isfunction(node):
            node = with_run_context(node)
        elif inspect.isfunction(action):
            action = with_run_context(action)
        return super().add_node(node, action, **kwargs)

    def add_conditional_edges(self, source, path, path_map=None):  # type: ignore[override]
        return super().add_conditional_edges(source, router_with_run_context(path), path_map)
