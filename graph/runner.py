"""Running the graph with a checkpointer in the run folder: a fresh run, or a resumed one.

The CLI and the Python API both come through here, so a run started either way can be
resumed either way.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from graph import state as state_module
from graph.builder import build_graph
from graph.context import EventLog, RunContext, Settings
from runtime.data import TaskInputError

CHECKPOINTS = "checkpoints.sqlite"
SETTINGS = "settings.json"
StreamCallback = Callable[[str, Any], None]


def serializer() -> JsonPlusSerializer:
    """Checkpoints hold our pydantic models; allow exactly those to be read back."""
    models = [
        name for name, obj in vars(state_module).items()
        if isinstance(obj, type) and issubclass(obj, state_module.BaseModel) and obj.__module__ == state_module.__name__
    ]
    return JsonPlusSerializer(allowed_msgpack_modules=[(state_module.__name__, name) for name in models])


@contextmanager
def checkpointer(run_dir: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(run_dir / CHECKPOINTS, check_same_thread=False)
    try:
        yield SqliteSaver(conn, serde=serializer())
    finally:
        conn.close()


def new_run_dir(task_dir: Path, root: Path = Path("runs")) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", task_dir.resolve().name) or "task"
    return root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_task(task_dir: str | Path, run_dir: str | Path, settings: Settings, *, llm: Any = None,
             on_update: StreamCallback | None = None) -> dict:
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SETTINGS).write_text(json.dumps(dataclasses.asdict(settings), indent=2))
    inputs = {"task_dir": str(Path(task_dir).resolve()), "run_dir": str(run_dir)}
    return _stream(run_dir, inputs, settings, llm, on_update)


def resume_run(run_dir: str | Path, *, llm: Any = None, on_update: StreamCallback | None = None) -> dict:
    """Continue from the last finished step; finished tracks and attempts are not redone."""
    run_dir = Path(run_dir).resolve()
    settings = load_settings(run_dir)
    return _stream(run_dir, None, settings, llm, on_update)


def load_settings(run_dir: Path) -> Settings:
    path = run_dir / SETTINGS
    if not path.exists():
        raise TaskInputError(f"not a run folder (no {SETTINGS}): {run_dir}")
    raw = json.loads(path.read_text())
    if raw.get("tracks") is not None:
        raw["tracks"] = tuple(raw["tracks"])
    return Settings(**raw)


def run_status(run_dir: Path) -> tuple[bool, dict]:
    """(finished, values) of the run's last checkpoint."""
    with checkpointer(run_dir) as saver:
        app = build_graph().compile(checkpointer=saver)
        snapshot = app.get_state({"configurable": {"thread_id": run_dir.name}})
    return (not snapshot.next and bool(snapshot.values)), dict(snapshot.values)


def _stream(run_dir: Path, inputs: dict | None, settings: Settings, llm: Any, on_update: StreamCallback | None) -> dict:
    ctx = RunContext(settings=settings, llm=llm, events=EventLog(run_dir / "events.jsonl"))
    config = {"configurable": {"thread_id": run_dir.name}, "recursion_limit": 100}
    try:
        with checkpointer(run_dir) as saver:
            app = build_graph().compile(checkpointer=saver)
            for mode, chunk in app.stream(inputs, config, context=ctx, stream_mode=["updates", "custom"],
                                          durability="sync", subgraphs=False):
                if on_update is not None:
                    on_update(mode, chunk)
            return dict(app.get_state(config).values)
    finally:
        ctx.close()
