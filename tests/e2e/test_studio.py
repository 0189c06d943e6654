"""The graph as LangGraph Studio runs it: `langgraph dev` on loopback, driven through
langgraph_sdk, with no RunContext from the caller and no run folder in the input."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from machine_speed import backstop, scaled

from graph.context import Settings, _default_contexts, release_default_context
from runtime.submission_file import validate_submission
from runtime.task_reader import read_task
from scripts.examples import make_example

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return make_example("iris", tmp_path_factory.mktemp("studio") / "iris")


@pytest.mark.slow
def test_the_exported_graph_runs_without_a_context(task, tmp_path, monkeypatch):
    """What the server does with no context, in process: invoke(input) with neither a context
    nor a run_dir. The nodes make the run's default context (default Settings) and folder."""
    from graph.builder import graph

    monkeypatch.setenv("IML_RUNS_DIR", str(tmp_path / "runs"))
    seen: list[str] = []
    updates: dict = {}
    stream = graph.stream({"task_dir": str(task)}, stream_mode=["updates", "custom"], subgraphs=True)
    for _namespace, mode, chunk in stream:
        if mode == "custom":
            seen.append(chunk["event"])
        else:
            updates.update(chunk)
        if "blueprint" in updates:
            break  # the default budget is 10 minutes: the server test runs a graph to the end
    stream.close()
    [run] = list((tmp_path / "runs").iterdir())
    try:
        assert run.name.startswith("iris-") and updates["analyze"]["run_dir"] == str(run.resolve())
        assert seen == ["task", "profile", "blueprint"]
        logged = [json.loads(line)["event"] for line in (run / "events.jsonl").read_text().splitlines()]
        assert logged == seen  # the event log of the run's default context, in its own folder
        assert json.loads((run / "settings.json").read_text())["time_budget_s"] == Settings().time_budget_s
        assert updates["blueprint"]["blueprint"].budget_s > 500  # planned with the default 10 minutes
        assert str(run.resolve()) in _default_contexts
    finally:
        release_default_context(run)
    assert str(run.resolve()) not in _default_contexts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    timeout = backstop(timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"langgraph dev exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/ok", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"langgraph dev did not come up in {timeout:.0f}s: {log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path):
    cli = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which("langgraph")
    if cli is None or importlib.util.find_spec("langgraph_api") is None:
        pytest.skip("langgraph-cli[inmem] is not installed (pip install -e '.[studio]')")
    port = _free_port()
    # The README's command, word for word (hot reload on, runs where the server puts them), in
    # the project folder; only the port is free-chosen, and HOME is this test's, so the runs'
    # default folder (~/.local/share/iml/runs) is too.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("IML_RUNS_DIR", "XDG_DATA_HOME")}
    env.update(LANGSMITH_TRACING="false", LANGGRAPH_CLI_NO_ANALYTICS="1", HOME=str(home))
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen([cli, "dev", "--allow-blocking", "--no-browser", "--port", str(port)], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield url, home / ".local" / "share" / "iml" / "runs", log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_langgraph_dev_serves_the_graph(task, server):
    from langgraph_sdk import get_sync_client

    url, runs, log = server
    client = get_sync_client(url=url)
    assistants = client.assistants.search(graph_id="iml")
    assert assistants, "the server does not list the iml graph"
    schema = client.assistants.get_schemas(assistants[0]["assistant_id"])
    assert "time_budget_s" in schema["context_schema"]["properties"]  # Studio's settings form

    thread = client.threads.create()
    nodes: list[str] = []
    events: list[str] = []
    for part in client.runs.stream(thread["thread_id"], "iml", input={"task_dir": str(task)},
                                   # 30 s on free cores (at 20 s a 2x slower machine never reached refine),
                                   # stretched by how slow the machine is now
                                   context={"n_folds": 3, "time_budget_s": scaled(30), "refine_max_candidates": 3},
                                   stream_mode=["updates", "custom"], stream_subgraphs=True):
        if part.event.startswith("updates") and isinstance(part.data, dict):
            nodes += list(part.data)
        elif part.event.startswith("custom") and isinstance(part.data, dict):
            events.append(part.data.get("event"))
        assert not part.event.startswith("error"), part.data
    assert ["analyze", "profile", "blueprint"] == nodes[:3]
    assert {"generate", "check", "execute", "finish", "track", "ensemble", "submit"} <= set(nodes)
    assert {"propose", "judge"} <= set(nodes)  # refine's candidates, step by step
    assert "attempt" in events  # events from inside the track's subgraph reach the client

    values = client.threads.get_state(thread["thread_id"])["values"]
    submission = Path(values["submission_path"])
    assert submission.parent.parent == runs and submission.exists()
    blueprint = values["blueprint"]
    assert blueprint["validation"]["n_folds"] == 3  # the context reached the nodes as Settings
    assert validate_submission(read_task(task, Settings()), submission) == []
    assert (submission.parent / "report.html").exists() and (submission.parent / "solution.py").exists()
    # the run wrote its modules without the dev server noticing: no reload, no cancelled run
    assert list(submission.parent.glob("tracks/*/attempt_*/features.py"))
    server_log = log.read_text()
    assert "WatchFiles detected changes" not in server_log and "CancelledError" not in server_log, server_log[-2000:]
