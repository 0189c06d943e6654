"""Scripted LLMs for tests and demos, with no network beyond 127.0.0.1.

- `Script`: answers by the schema asked for (TaskReading, PlanProposal, ModuleCode,
  ModuleRewrite). Each schema has a queue of `Reply`s (a JSON payload, or a raw string that
  may be malformed, an HTTP status, a delay); when its queue is empty, `demo_answer` answers.
- `ScriptedChatModel`: an in-process LangChain chat model that plays a Script through tool
  calls (what `with_structured_output` uses for a generic chat model).
- `StubOpenAIServer`: an OpenAI-compatible HTTP server on 127.0.0.1 (a thread, a free port)
  that plays a Script over `/v1/chat/completions` — json_schema and json_object
  response_format answers as content, tool_choice answers as tool_calls (the request read and
  the completion built by scripts/chat_requests.py, as the hand-answered server does) — so the
  real `ChatOpenAI` client is exercised, 500s and slow answers included.

Run it as a demo server for `iml run ... --model stub --base-url http://127.0.0.1:PORT/v1`:

    python tests/stub_openai.py --port 8765          # serves the demo script until killed
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from scripts.chat_requests import answer_style, body_text, completion


@dataclass
class Reply:
    payload: Any = None  # dict -> sent as JSON; str -> sent as is (malformed on purpose, fenced, ...)
    status: int = 200
    delay_s: float = 0.0

    def text(self) -> str:
        return self.payload if isinstance(self.payload, str) else json.dumps(self.payload)


Answerer = Callable[[str, str], Reply]


class Script:
    """Replies by schema name; a queue per schema, then `default(schema, prompt)`."""

    def __init__(self, replies: dict[str, list[Reply | dict | str | Callable[[str], Any]]] | None = None,
                 default: Answerer | None = None):
        self.queues = {k: deque(v) for k, v in (replies or {}).items()}
        self.default = default if default is not None else DemoAnswers()
        self.asked: list[str] = []  # schema names, in order
        self.prompts: list[tuple[str, str]] = []  # (schema name, prompt text), in order
        self._lock = threading.Lock()

    def next(self, schema: str, prompt: str) -> Reply:
        with self._lock:
            self.asked.append(schema)
            self.prompts.append((schema, prompt))
            queue = self.queues.get(schema)
            item = queue.popleft() if queue else None
        if item is None:
            return self.default(schema, prompt)
        if callable(item) and not isinstance(item, Reply):
            item = item(prompt)
        return item if isinstance(item, Reply) else Reply(item)


# -- demo answers: what a sensible model would say, from the prompt's own facts ---------------


def _recipe(track: str = "traditional") -> dict[str, str]:
    from prompts import recipe_tracks, render_recipe

    return render_recipe(track if track in recipe_tracks() else "traditional")


def broken_syntax(source: str) -> str:
    """The source with its first `def` line missing its colon: a syntax error."""
    return re.sub(r"(\n\s*def [^\n]*\)[^\n:]*):", r"\1", source, count=1)


class DemoAnswers:
    """Answers each role from the facts in its prompt. With `first_code_broken`, the first
    ModuleCode answer has a syntax error, so a run shows the debug loop."""

    def __init__(self, first_code_broken: bool = False):
        self.first_code_broken = first_code_broken
        self._codes = 0
        self._lock = threading.Lock()

    def __call__(self, schema: str, prompt: str) -> Reply:
        return Reply(getattr(self, schema.lower(), self.unknown)(prompt))

    def taskreading(self, prompt: str) -> dict:
        from runtime.metrics import metric_from_text

        only = re.search(r"Columns only in train\.csv: (.*)", prompt)
        target = only.group(1).split(",")[0].strip() if only and only.group(1).strip() != "none" else None
        sample = re.search(r"sample_submission\.csv columns: (.*)", prompt)
        id_column = sample.group(1).split(",")[0].strip() if sample else None
        description = prompt.split("# Files")[0]
        return {"target": target, "id_column": id_column, "metric": metric_from_text(description),
                "task_type": None, "notes": "read from the description and the headers"}

    def planproposal(self, prompt: str) -> dict:
        match = re.search(r"```json\n(.*?)\n```", prompt, re.DOTALL)
        draft = json.loads(match.group(1)) if match else {"tracks": []}
        for t in draft["tracks"]:
            t["reason"] = "LLM: " + t["reason"]
        draft["notes"] = "kept the rules' draft"
        return draft

    def modulecode(self, prompt: str) -> dict:
        track = re.search(r'track "(\w+)"', prompt)
        code = _recipe(track.group(1) if track else "traditional")
        with self._lock:
            self._codes += 1
            first = self._codes == 1
        if first and self.first_code_broken and "The failing attempt" not in prompt:
            return {"features": code["features"], "model": broken_syntax(code["model"]), "notes": "first draft"}
        repaired = "The failing attempt" in prompt
        return {**code, "notes": "repaired: restored the recipe's structure" if repaired else "the recipe, as planned"}

    def modulerewrite(self, prompt: str) -> dict:
        code = _recipe()
        model = code["model"].replace('p.get("learning_rate", 0.05)', 'p.get("learning_rate", 0.05) * 0.5')
        return {"module": "model", "code": model, "notes": "halve the learning rate for a smoother fit"}

    def unknown(self, prompt: str) -> dict:
        return {}


# -- in process: a chat model that plays a script through tool calls --------------------------


def _prompt_text(messages: list[BaseMessage]) -> str:
    return "\n".join(m.content if isinstance(m.content, str) else json.dumps(m.content) for m in messages)


class ScriptedChatModel(BaseChatModel):
    """`with_structured_output` on a generic chat model binds the schema as a tool; this model
    answers with that tool's call (or, for a string reply, with the string as plain content)."""

    script: Any
    model_name: str = "scripted"
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        tools = kwargs.get("tools") or []
        schema = tools[0]["function"]["name"] if tools else "text"
        prompt = _prompt_text(messages)
        reply = self.script.next(schema, prompt)
        if reply.status != 200:
            raise RuntimeError(f"scripted failure {reply.status}")
        usage = {"input_tokens": len(prompt) // 4, "output_tokens": len(reply.text()) // 4,
                 "total_tokens": len(prompt) // 4 + len(reply.text()) // 4}
        if isinstance(reply.payload, dict) and tools:
            message = AIMessage(content="", tool_calls=[{"name": schema, "args": reply.payload, "id": f"call_{uuid.uuid4().hex[:8]}"}],
                                usage_metadata=usage)
        else:
            message = AIMessage(content=reply.text(), usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


# -- over HTTP: an OpenAI-compatible server -----------------------------------------------------


class StubOpenAIServer:
    """`with StubOpenAIServer(script) as server:` -> server.url is the base_url."""

    def __init__(self, script: Script | None = None, port: int = 0, reject: tuple[str, ...] = ()):
        self.script = script or Script()
        self.reject = set(reject)  # answer styles to refuse with a 400, like a server without them
        self.requests: list[dict] = []
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
                return self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                with server._lock:
                    server.requests.append(body)
                schema, style = answer_style(body, self.headers)
                with server._lock:
                    server.hits[schema] = server.hits.get(schema, 0) + 1
                if style in server.reject:
                    return self._send(400, {"error": {"message": f"'response_format' of type '{style}' is not supported",
                                                      "type": "invalid_request_error"}})
                reply = server.script.next(schema, body_text(body))
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    return self._send(reply.status, {"error": {"message": f"scripted status {reply.status}", "type": "server_error"}})
                self._send(200, completion(body, reply.text(), style))

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): nothing to answer

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="an OpenAI-compatible stub server playing the demo script")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--broken-first", action="store_true", help="the first generated code has a syntax error")
    args = parser.parse_args()
    server = StubOpenAIServer(Script(default=DemoAnswers(first_code_broken=args.broken_first)), port=args.port)
    print(f"stub OpenAI server at {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
