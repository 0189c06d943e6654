"""The hand-answered server (`iml llm-server`) end to end over HTTP with the real ChatOpenAI
client: a thread answers as a person would — it waits for the request file, reads it, writes the
answer file under a temporary name and renames it. Each structured-output method, a bad answer,
requests at once, a client's retry after its timeout, a busy port, and Ctrl-C.

Every wait here ends on an event (a file appears, the server says a line, the process prints);
the deadlines only turn a hang into a failure."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from langchain_core.messages import HumanMessage, SystemMessage

from graph.llm import LLMClient, LLMError, LLMSettings, ModuleCode, TaskReading, build_chat_model
from scripts.llm_server import HandServer

REPO = Path(__file__).resolve().parents[2]
HANG_S = 60  # a request file or server line that has not come by then never will
READING = {"target": "outcome", "id_column": "row_key", "metric": "auc", "task_type": "binary", "notes": ""}


def wait_until(condition, what: str):
    deadline = time.time() + HANG_S
    while not (found := condition()):
        assert time.time() < deadline, f"{what} never happened"
        time.sleep(0.02)
    return found


def answer(server: HandServer, n: int, text: str, name: str | None = None) -> None:
    """Write an answer as the request file asks: a temporary name, then a rename."""
    target = server.answers / (name or f"{n:04d}.json")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def read_request(server: HandServer, n: int) -> str:
    path = server.requests / f"{n:04d}.md"
    return wait_until(lambda: path.exists() and path.read_text(), f"request {n:04d}")


class Person(threading.Thread):
    """Answers requests 1, 2, ... in order with the given texts, keeping what each request said."""

    def __init__(self, server: HandServer, texts: list[str]):
        super().__init__(daemon=True)
        self.server, self.texts, self.read = server, texts, []

    def run(self):
        for n, text in enumerate(self.texts, 1):
            self.read.append(read_request(self.server, n))
            answer(self.server, n, text)


def client(server: HandServer, methods=("json_schema",), timeout_s: float = 60.0, max_retries: int = 0) -> LLMClient:
    settings = LLMSettings(model="hand", base_url=server.url, api_key="not-needed", timeout_s=timeout_s, max_retries=max_retries)
    return LLMClient(build_chat_model(settings), methods=methods)


MESSAGES = [SystemMessage("You read tasks."), HumanMessage("Read this task: predict `outcome`, scored on AUC.")]


def test_a_json_schema_request_is_a_readable_file_and_the_answer_file_is_the_answer(tmp_path):
    lines: list[str] = []
    with HandServer(tmp_path / "hand", say=lines.append) as server:
        person = Person(server, [json.dumps(READING)])
        person.start()
        got = client(server).ask(TaskReading, MESSAGES, role="analyze", node="analyze")
        person.join(HANG_S)
    assert got.value.target == "outcome" and [c.outcome for c in got.calls] == ["ok"]
    [md] = person.read
    assert md.startswith("# Request 0001: TaskReading for analyze")
    assert "asked by: role analyze, node analyze" in md
    assert f"`{server.answers / '0001.json'}`" in md and "rename" in md
    assert md.index("### 1 of 2: system") < md.index("You read tasks.") < md.index("### 2 of 2: user") < md.index("predict `outcome`")
    schema = json.loads(md.split("## Schema: TaskReading")[1].split("```json\n")[1].split("\n```")[0])
    assert schema["properties"] == TaskReading.model_json_schema()["properties"]
    assert "How the task description reads" in md.split("## Schema: TaskReading")[1]  # the schema's own description
    raw = json.loads((server.requests / "0001.json").read_text())
    assert raw["response_format"]["json_schema"]["name"] == "TaskReading" and raw["messages"][1]["role"] == "user"
    assert lines[0].startswith("0001 waiting: analyze TaskReading (json_schema)") and lines[1].startswith("0001 answered")


def test_function_calling_gets_the_answer_as_the_tool_call(tmp_path):
    code = {"features": "class Features:\n    pass\n", "model": "class Model:\n    pass\n", "notes": "```fenced``` notes"}
    with HandServer(tmp_path / "hand") as server:
        person = Person(server, [json.dumps(code)])
        person.start()
        got = client(server, methods=("function_calling",)).ask(ModuleCode, MESSAGES, role="generate", node="generate",
                                                                 track="traditional")
        person.join(HANG_S)
    assert got.value.model == code["model"] and got.calls[0].method == "function_calling"
    md = person.read[0]
    assert "for generate (track traditional)" in md and "a call of the function `ModuleCode`" in md
    assert '"features"' in md.split("## Schema: ModuleCode")[1]


def test_json_mode_shows_the_schema_the_messages_carry(tmp_path):
    with HandServer(tmp_path / "hand") as server:
        person = Person(server, [json.dumps(READING)])
        person.start()
        got = client(server, methods=("json_mode",)).ask(TaskReading, MESSAGES, role="analyze")
        person.join(HANG_S)
    assert got.value.metric == "auc" and got.calls[0].method == "json_mode"
    md = person.read[0]
    assert "form: json_mode" in md
    schema = json.loads(md.split("## Schema: TaskReading")[1].split("```json\n")[1].split("\n```")[0])
    assert schema["title"] == "TaskReading" and "target" in schema["properties"]


def test_an_answer_that_is_not_json_is_passed_on_and_the_client_asks_again(tmp_path):
    lines: list[str] = []
    with HandServer(tmp_path / "hand", say=lines.append) as server:
        person = Person(server, ["I think the target is outcome", json.dumps(READING)])
        person.start()
        got = client(server).ask(TaskReading, MESSAGES, role="analyze")
        person.join(HANG_S)
    assert [c.outcome for c in got.calls] == ["parse_error", "ok"] and got.value.target == "outcome"
    assert "Your previous answer could not be used" in person.read[1] and "I think the target is outcome" in person.read[1]
    assert any(line.startswith("0001 answered") and "not valid JSON, passed on as it is" in line for line in lines)


def test_requests_at_once_each_get_their_own_number_and_their_own_answer(tmp_path):
    tracks = ["traditional", "neural", "pretrained"]
    results: dict[str, str] = {}
    with HandServer(tmp_path / "hand") as server:
        c = client(server)

        def ask(track):
            results[track] = c.ask(TaskReading, [HumanMessage(f"Read the task for {track}.")], role="analyze", track=track).value.notes

        askers = [threading.Thread(target=ask, args=(t,), daemon=True) for t in tracks]
        for t in askers:
            t.start()
        mds = {n: read_request(server, n) for n in (1, 2, 3)}
        for n in (3, 1, 2):  # answered out of order: each answer goes to its own request
            track = re.search(r"\(track (\w+)\)", mds[n]).group(1)
            answer(server, n, json.dumps({**READING, "notes": f"for {track}"}))
        for t in askers:
            t.join(HANG_S)
    assert results == {t: f"for {t}" for t in tracks}
    assert sorted(p.name for p in server.requests.glob("*.md")) == ["0001.md", "0002.md", "0003.md"]


def test_a_client_that_times_out_and_retries_keeps_its_number_and_gets_the_answer(tmp_path):
    lines: list[str] = []
    with HandServer(tmp_path / "hand", say=lines.append) as server:
        outcome: dict = {}

        def ask():
            outcome["answer"] = client(server, timeout_s=2.0, max_retries=3).ask(TaskReading, MESSAGES, role="analyze")

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        read_request(server, 1)
        wait_until(lambda: any("the client stopped waiting" in line for line in lines), "the client's timeout")
        answer(server, 1, json.dumps(READING))  # late, for the retry
        asker.join(HANG_S)
    assert outcome["answer"].value.target == "outcome"
    assert sorted(p.name for p in server.requests.glob("*.md")) == ["0001.md"]  # the retry is the same request
    assert any(line.startswith("0001 asked again") for line in lines)


def test_the_same_request_asked_again_not_as_a_retry_is_a_new_request(tmp_path):
    with HandServer(tmp_path / "hand") as server:
        person = Person(server, [json.dumps(READING), json.dumps({**READING, "notes": "second"})])
        person.start()
        c = client(server)
        first, second = (c.ask(TaskReading, MESSAGES, role="refine") for _ in range(2))
        person.join(HANG_S)
    assert (first.value.notes, second.value.notes) == ("", "second")


def test_numbers_go_on_in_a_folder_served_before(tmp_path):
    with HandServer(tmp_path / "hand") as server:
        person = Person(server, [json.dumps(READING)])
        person.start()
        client(server).ask(TaskReading, MESSAGES, role="analyze")
        person.join(HANG_S)
    with HandServer(tmp_path / "hand") as again:
        assert again.number_for({"messages": []}) == (2, True)


def test_a_busy_port_is_one_line(tmp_path, capsys):
    from scripts.cli import main

    with HandServer(tmp_path / "a") as server:
        assert main(["llm-server", str(tmp_path / "b"), "--port", str(server.port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"127.0.0.1:{server.port}" in err and "--port" in err


def test_the_command_prints_where_to_point_a_run_and_ctrl_c_stops_it_cleanly(tmp_path):
    folder = tmp_path / "hand"
    process = subprocess.Popen([sys.executable, "-m", "scripts.cli", "llm-server", str(folder), "--port", "0"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"})
    try:
        banner = []
        while not banner or not banner[-1].startswith("Ctrl-C stops it"):
            line = process.stdout.readline()
            assert line, f"the server ended before it said where it serves: {''.join(banner)}"
            banner.append(line)
        url = re.search(r"http://127\.0\.0\.1:(\d+)/v1", banner[0]).group(0)
        failed: dict = {}

        def ask():  # a request still waiting when the server stops: the client hears 503, not a hang
            settings = LLMSettings(model="anything", base_url=url, api_key="x", timeout_s=HANG_S, max_retries=0)
            try:
                LLMClient(build_chat_model(settings)).ask(TaskReading, MESSAGES, role="analyze")
            except LLMError as e:
                failed["calls"] = e.calls

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        line = process.stdout.readline()  # the server says the request is waiting once it is in its wait
        assert line.startswith("0001 waiting: analyze TaskReading"), line
        assert (folder / "requests" / "0001.md").exists()
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=HANG_S)
        asker.join(HANG_S)
    finally:
        if process.poll() is None:
            process.kill()
    text = "".join(banner)
    assert f"--base-url {url} --llm-timeout 15m" in text and "requests" in text and "answers" in text
    assert process.returncode == 0, out
    assert "stopped: 1 request(s), 0 answered" in out and "Traceback" not in out
    # the client hears an HTTP error, not a hang: the 503 the waiting handler sends, or, beside busy
    # processes (2 of 6 tries with two spinning), a connection dropped first (not yet understood)
    assert [c.outcome for c in failed["calls"]] == ["http_error"]
    assert "503" in failed["calls"][0].error or "Connection error" in failed["calls"][0].error
