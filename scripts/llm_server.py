"""The hand-answered LLM server: an OpenAI-compatible endpoint on 127.0.0.1 where each request
becomes a file to read and each answer is a file that someone — a person, another model, a
script — writes. No API key, any model name.

    iml llm-server DIR [--port N]

    DIR/requests/0003.md    the request to read whole: who asks (role, track), the form of the
                            answer and the file to write, the messages in order, the schema
    DIR/requests/0003.json  the request exactly as the client sent it
    DIR/answers/0003.json   the answer you write (to a temporary name, then renamed)

Each HTTP request stays open until its answer file appears, so the client's timeout must allow
for the answerer (`iml run --llm-timeout 15m`). The answer goes back in the form the client
asked for (JSON content, or a tool call's arguments); whatever the file holds is passed on as
it is, so an answer that is not valid JSON meets the client's own re-ask. Requests that arrive
at once (tracks ask from threads) each get their own number. A client that gives up and sends
the same request again (its retry after a timeout) gets the same number, and the answer written
for it; the same request sent anew (not a retry) is a new request. Ctrl-C stops the server;
requests still waiting get a 503.
"""

from __future__ import annotations

import hashlib
import json
import select
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from graph.recording import write_atomically
from runtime.errors import TaskInputError
from scripts.chat_requests import answer_file, answer_style, asked_by, completion, render_request

DEFAULT_PORT = 8765
MODEL_ID = "hand"
RETRY_HEADER = "x-stainless-retry-count"  # the openai clients' count of a request's retries


class HandServer:
    """`with HandServer(folder) as server:` serves from a thread (tests, Python); `serve()` serves
    in the calling thread until Ctrl-C (the command). server.url is the base_url."""

    def __init__(self, folder: str | Path, *, port: int = 0, poll_s: float = 0.1,
                 say: Callable[[str], None] | None = None):
        self.folder = Path(folder).resolve()
        self.requests = self.folder / "requests"
        self.answers = self.folder / "answers"
        self.requests.mkdir(parents=True, exist_ok=True)
        self.answers.mkdir(parents=True, exist_ok=True)
        self.poll_s = poll_s
        self.say = say or (lambda line: None)
        # numbers go on from a folder served before: no request file is ever overwritten
        self._next = 1 + max((int(p.stem) for p in self.requests.glob("[0-9]*.json") if p.stem.isdigit()), default=0)
        self._numbers: dict[str, int] = {}  # a request's digest -> its number (a retry is the same request)
        self._in_flight = 0  # requests being answered (a retry and the request it repeats count twice)
        self.received = 0
        self._answered: set[int] = set()
        self._lock = threading.Condition()
        self.stopping = threading.Event()
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        except OSError as e:
            raise TaskInputError(f"cannot serve on 127.0.0.1:{port} ({e.strerror or e}); pick another --port "
                                 "(0: any free one)") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> HandServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="iml-llm-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve(self) -> None:
        """Serve until Ctrl-C (KeyboardInterrupt in this thread), then stop cleanly."""
        try:
            self.httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._stop_waiting()
            self.httpd.server_close()

    def close(self) -> None:
        self._stop_waiting()
        if self._thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()

    def _stop_waiting(self, grace_s: float = 15.0) -> None:
        """Requests still waiting are answered 503 (each notices within a poll), before the server
        closes. The grace only bounds a handler that never notices: each ends within a poll, but on
        a busy machine its thread may get the CPU seconds later (2 s let the process exit first,
        and the client heard a dropped connection instead of the 503)."""
        self.stopping.set()
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=grace_s)

    # -- one request ------------------------------------------------------------------------

    def number_for(self, body: dict, retry: bool = False) -> tuple[int, bool]:
        """(the request's number, whether it is new). A retry (the client sent it again after its
        timeout) of a request seen before is that request; anything else is new, even the same
        body: a client may ask the same thing twice and want two answers."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if retry and digest in self._numbers:
                return self._numbers[digest], False
            n, self._next = self._next, self._next + 1
            self._numbers[digest] = n
            self.received += 1
            return n, True

    def answer_paths(self, n: int) -> list[Path]:
        return [self.answers / f"{n:04d}.json", self.answers / f"{n:04d}.txt"]

    def write_request(self, n: int, body: dict, headers, style: str) -> Path:
        """requests/NNNN.json, then requests/NNNN.md: a watcher that sees the .md sees both whole."""
        raw = self.requests / f"{n:04d}.json"
        write_atomically(raw, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        readable = self.requests / f"{n:04d}.md"
        answer = self.answers / answer_file(n, style)
        write_atomically(readable, render_request(n, body, headers=headers, answer_path=str(answer)))
        return readable

    def wait_for_answer(self, n: int, connection: socket.socket | None) -> str | None:
        """The answer file's text once it is there and whole; None when the server stops or the
        client hangs up first."""
        seen: dict[Path, tuple[int, int]] = {}
        while not self.stopping.is_set():
            for path in self.answer_paths(n):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                # written in place rather than renamed: read it once it stops changing
                if seen.get(path) == (stat.st_size, stat.st_mtime_ns):
                    return path.read_text(encoding="utf-8-sig", errors="replace")
                seen[path] = (stat.st_size, stat.st_mtime_ns)
            if connection is not None and _hung_up(connection):
                return None
            self.stopping.wait(self.poll_s)
        return None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # the server says what matters itself
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model",
                                                                         "owned_by": "iml-llm-server"}]})
                return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as e:
                    return self._send(400, {"error": {"message": f"the body is not JSON: {e}", "type": "invalid_request_error"}})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                if body.get("stream"):
                    return self._send(400, {"error": {"message": "the hand-answered server does not stream; ask with stream off",
                                                      "type": "invalid_request_error"}})
                server.answer(self, body)

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: nothing to answer

        return Handler

    def answer(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        """Write the request, wait for its answer, send it back (or a 503 when the server stops)."""
        n, new = self.number_for(body, retry=_is_retry(handler.headers))
        with self._lock:
            self._in_flight += 1
        try:
            self._answer(handler, body, n, new)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _answer(self, handler: BaseHTTPRequestHandler, body: dict, n: int, new: bool) -> None:
        name, style = answer_style(body, handler.headers)
        who = asked_by(handler.headers)
        asker = " ".join(filter(None, [who.get("role"), who.get("track") and f"({who['track']})"]))
        target = self.answers / answer_file(n, style)
        if new:
            readable = self.write_request(n, body, handler.headers, style)
            self.say(f"{n:04d} waiting: {asker + ' ' if asker else ''}{name} ({style}); read {readable}, "
                     f"write {target}")
        else:
            self.say(f"{n:04d} asked again (the client's retry): the same request, the same answer file {target}")
        text = self.wait_for_answer(n, handler.connection)
        if text is None:
            if self.stopping.is_set():
                handler._send(503, {"error": {"message": "the hand-answered server stopped", "type": "server_error"}})
            else:
                self.say(f"{n:04d} the client stopped waiting (its timeout, or the run ended); an answer written now "
                         "serves its retry")
            return
        try:
            json.loads(text)
            note = ""
        except json.JSONDecodeError:
            note = ": not valid JSON, passed on as it is; the client will ask again" if style != "text" else ""
        with self._lock:
            self._answered.add(n)
        self.say(f"{n:04d} answered ({len(text):,} characters){note}")
        handler._send(200, completion(body, text, style))

    def summary(self) -> str:
        with self._lock:
            return f"{self.received} request(s), {len(self._answered)} answered"


def _is_retry(headers) -> bool:
    """Whether the client says this is its retry of a request (the openai clients count them)."""
    try:
        return int(headers.get(RETRY_HEADER) or 0) > 0
    except ValueError:
        return False


def _hung_up(connection: socket.socket) -> bool:
    """Whether the client closed the connection: readable with nothing to read (a client never
    sends more on a connection that waits for its answer)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def banner(server: HandServer) -> list[str]:
    """What the command prints at start: where to point a run, where requests and answers go."""
    return [
        f"iml llm-server: {server.url} (any model name, no key)",
        f"  requests: {server.requests}/NNNN.md to read (NNNN.json: the request as sent)",
        f"  answers:  write {server.answers}/NNNN.json (to NNNN.json.tmp first, then rename it)",
        "  a run that asks it (minutes per answer: give the request and the run time):",
        (f"    iml run TASK --model hand --base-url {server.url} --llm-timeout 15m --time-budget 2h "
         "[--llm-record RECORDING_DIR]"),
        "Ctrl-C stops it.",
    ]
