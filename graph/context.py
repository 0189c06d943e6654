"""Run context: settings and live resources that must never be checkpointed.

Nodes reach it through `runtime: Runtime[RunContext]`. Kernels are started lazily, one per
track, and survive across that track's attempts (the data is loaded once per kernel).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.kernel import ExecutionSlots, KernelSession, default_slots

HARNESS_STARTUP = "from runtime.harness import Harness\nH = Harness({run_dir!r})\n"


@dataclass
class Settings:
    time_budget_s: float = 600.0
    n_folds: int = 5
    seed: int = 0
    max_debug_attempts: int = 2
    min_attempt_timeout_s: float = 20.0  # an attempt gets at least this, even when the budget is spent
    parallel_kernels: int = field(default_factory=default_slots)
    kernel_threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    kernel_memory_mb: int | None = None
    tracks: tuple[str, ...] | None = None  # restrict the blueprint to these tracks
    target: str | None = None
    metric: str | None = None
    id_column: str | None = None


class EventLog:
    """Appends one JSON object per line to events.jsonl; safe across track threads."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()

    def emit(self, event: str, **data: Any) -> None:
        if self.path is None:
            return
        line = json.dumps({"t": round(time.time(), 3), "event": event, **data}, default=str)
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")


@dataclass
class RunContext:
    settings: Settings = field(default_factory=Settings)
    llm: Any = None  # a LangChain chat model, or None for the offline path
    started_at: float = field(default_factory=time.time)
    events: EventLog = field(default_factory=lambda: EventLog(None))
    _kernels: dict[str, KernelSession] = field(default_factory=dict)
    _kernel_lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: ExecutionSlots | None = None

    @property
    def slots(self) -> ExecutionSlots:
        with self._kernel_lock:
            if self._slots is None:
                self._slots = ExecutionSlots(self.settings.parallel_kernels)
            return self._slots

    def elapsed_s(self) -> float:
        return time.time() - self.started_at

    def remaining_s(self) -> float:
        return self.settings.time_budget_s - self.elapsed_s()

    def kernel(self, track: str, run_dir: str) -> KernelSession:
        """The track's kernel, started on first use with the harness loaded."""
        with self._kernel_lock:
            session = self._kernels.get(track)
            if session is None:
                threads = max(1, self.settings.kernel_threads // max(1, self.settings.parallel_kernels))
                session = KernelSession(
                    run_dir,
                    threads=threads,
                    memory_limit_mb=self.settings.kernel_memory_mb,
                    startup_code=HARNESS_STARTUP.format(run_dir=str(run_dir)),
                )
                self._kernels[track] = session
        if not session.alive:
            session.start()
        return session

    def close(self) -> None:
        with self._kernel_lock:
            for session in self._kernels.values():
                session.shutdown()
            self._kernels.clear()
