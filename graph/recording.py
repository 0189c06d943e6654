"""Record and replay of a run's LLM requests, in the manner of vcrpy's cassettes.

`LLMClient.ask` (graph/llm.py) is where every request passes: with a `Recorder` it keeps each
request and its answer; with a `Replay` it takes the answers from a recording instead of a
server. A recording is a folder, readable and diff-able, fit to commit as a test fixture:

    index.json   the model and server, then one line per request in the order they ended
    0001.json    one request and its answer: who asked (role, node, track, the graph task, the
                 session), the messages as sent, the schema's name, the raw answer exactly as
                 the server sent it (content, or a tool call's arguments), the parsed answer,
                 outcome, error, tokens and seconds
    0001.md      the same to read: the messages and the answer's code as text (written from
                 the .json; a replay reads only the .json)
    dropped/     requests of a step that a kill interrupted and `iml resume` ran again: kept
                 for the record, never replayed

A replay matches requests by role, track and order within that role and track, never by the
prompt's text (prompts carry timings that differ from run to run). A recorded failure is
replayed as that failure, so the client's re-asks and fallbacks happen as they did. A request
the recording lacks raises in the client, and that role falls back to its rules and recipes.

Resume. A step interrupted by a kill runs again as the same graph task. A recording resumed
drops the earlier session's requests of a task that asks again; a replay resumed gives a task
that asks again the answers it had before (from its log in the run folder), and takes fresh
ones for everything else.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ValidationError

from graph.state import LLMCall
from runtime.errors import TaskInputError

FORMAT = 1
INDEX = "index.json"
DROPPED = "dropped"
REPLAY_LOG = "llm_replay.jsonl"  # in the run folder: which recorded answer each graph task took
MESSAGE_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


class RecordedMessage(BaseModel):
    role: str
    content: Any


class Exchange(BaseModel):
    """One request and its answer."""

    n: int
    role: str
    node: str
    track: str | None = None
    task: str | None = None  # the LangGraph task that asked (its checkpoint namespace)
    session: int = 1  # 1 for the run, 2 for its first resume, ...
    answer_schema: str
    model: str
    method: str | None = None
    messages: list[RecordedMessage]
    raw: str | None = None  # the answer as the server sent it; None when none came
    raw_kind: Literal["content", "tool_call"] | None = None
    answer: dict[str, Any] | None = None  # the parsed, validated answer
    outcome: str
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def message(self) -> AIMessage | None:
        """The answer as the chat model gave it, or None when no answer came (an error)."""
        if self.raw_kind is None:
            return None
        usage = {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens,
                 "total_tokens": self.prompt_tokens + self.completion_tokens}
        if self.raw_kind == "content":
            return AIMessage(content=self.raw or "", usage_metadata=usage)
        call_id = f"call_replay_{self.n}"
        try:
            args = json.loads(self.raw or "")
        except json.JSONDecodeError as e:
            args, problem = None, str(e)
        else:
            problem = None if isinstance(args, dict) else "the arguments are not a JSON object"
        if problem is None:
            return AIMessage(content="", tool_calls=[{"name": self.answer_schema, "args": args, "id": call_id}],
                             usage_metadata=usage)
        return AIMessage(content="", invalid_tool_calls=[{"name": self.answer_schema, "args": self.raw, "id": call_id,
                                                          "error": problem, "type": "invalid_tool_call"}],
                         usage_metadata=usage)

    def markdown(self) -> str:
        """The request and its answer as a person reads them: code as code, prompts as text."""
        where = f", track {self.track}" if self.track else ""
        lines = [f"# {file_name(self.n)[:-5]}: {self.role}{where} asks for {self.answer_schema}", "",
                 f"- node {self.node}, session {self.session}, method {self.method}, model {self.model}",
                 (f"- outcome {self.outcome}{': ' + self.error if self.error else ''}; {self.seconds:g} s, "
                  f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens"), "",
                 f"## Messages ({len(self.messages)})", ""]
        for i, m in enumerate(self.messages, 1):
            text = m.content if isinstance(m.content, str) else json.dumps(m.content, indent=2, ensure_ascii=False)
            lines += [f"### {i} of {len(self.messages)}: {m.role}", "", text, ""]
        lines += ["## Answer", ""]
        if self.answer is not None:
            for key, value in self.answer.items():
                if isinstance(value, str) and "\n" in value.strip():
                    lines += [f"### {key}", "", fenced(value.rstrip("\n"), "python" if key in CODE_FIELDS else ""), ""]
                else:
                    lines += [f"- {key}: {json.dumps(value, ensure_ascii=False)}"]
        elif self.raw is not None:
            lines += [f"As sent ({self.raw_kind}), not a usable answer:", "", fenced(self.raw), ""]
        else:
            lines += ["None came.", ""]
        return "\n".join(lines).rstrip("\n") + "\n"

    def summary(self) -> dict[str, Any]:
        """Its line in index.json."""
        return {"n": self.n, "file": file_name(self.n), "role": self.role, "node": self.node, "track": self.track,
                "schema": self.answer_schema, "method": self.method, "outcome": self.outcome, "seconds": self.seconds,
                "session": self.session}


CODE_FIELDS = {"features", "model", "code"}  # the answer fields that hold a module's source


def file_name(n: int) -> str:
    return f"{n:04d}.json"


def fenced(text: str, lang: str = "") -> str:
    """A markdown code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def answer_of(raw: Any) -> tuple[str | None, str | None]:
    """(the answer as the server sent it, "content" or "tool_call") of a chat model's message."""
    if raw is None:
        return None, None
    tool_calls = getattr(raw, "tool_calls", None) or []
    if tool_calls:
        # the arguments' own text where the client kept it; a chat model that made the call
        # itself (tests' scripted one) has only the parsed arguments
        for sent in (getattr(raw, "additional_kwargs", None) or {}).get("tool_calls") or []:
            arguments = (sent.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                return arguments, "tool_call"
        return json.dumps(tool_calls[0].get("args"), ensure_ascii=False), "tool_call"
    invalid = getattr(raw, "invalid_tool_calls", None) or []
    if invalid:
        return str(invalid[0].get("args") or ""), "tool_call"
    content = getattr(raw, "content", "")
    if isinstance(content, list):
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content or ""), "content"


def recorded_messages(messages: Sequence[BaseMessage]) -> list[RecordedMessage]:
    return [RecordedMessage(role=MESSAGE_ROLES.get(m.type, m.type), content=m.content) for m in messages]


def write_atomically(path: Path, text: str) -> None:
    """Never half a file, whenever the process dies."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def index_text(model: str | None, base_url: str | None, entries: Sequence[Exchange]) -> str:
    """index.json with one line per request: short, and a diff shows which requests changed."""
    head = json.dumps({"format": FORMAT, "model": model, "base_url": base_url})[:-1]
    lines = [json.dumps(e.summary(), ensure_ascii=False) for e in entries]
    return head + ', "entries": [\n' + ",\n".join(lines) + ("\n" if lines else "") + "]}\n"


def read_recording(folder: Path) -> tuple[dict[str, Any], list[Exchange]]:
    """(index.json's head, the requests in its order); a broken recording is one line."""
    path = folder / INDEX
    if not path.exists():
        raise TaskInputError(f"not an LLM recording (no {INDEX}): {folder}")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        listed = index["entries"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise TaskInputError(f"{path} is not a recording's index ({e}); record the run again") from None
    entries = []
    for line in listed:
        entry_path = folder / file_name(int(line["n"]))
        if not entry_path.exists():
            raise TaskInputError(f"{entry_path.name} is listed in {path} but missing; restore it or record the run again")
        try:
            entries.append(Exchange.model_validate_json(entry_path.read_text(encoding="utf-8")))
        except ValidationError as e:
            raise TaskInputError(f"{entry_path} is not a recorded request: {str(e).splitlines()[0]}") from None
    return index, entries


class Recorder:
    """Writes each request and its answer to a recording folder as it ends; thread-safe (the
    tracks ask from threads). A folder that holds a recording already is continued as a new
    session (`iml resume`)."""

    def __init__(self, folder: str | Path, *, model: str, base_url: str | None = None):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model, self.base_url = model, base_url
        self.entries: list[Exchange] = []
        if (self.folder / INDEX).exists():
            index, self.entries = read_recording(self.folder)
            self.model, self.base_url = index.get("model") or model, index.get("base_url", base_url)
        self.session = 1 + max((e.session for e in self.entries), default=0)
        numbers = [e.n for e in self.entries] + [int(p.stem) for p in (self.folder / DROPPED).glob("[0-9]*.json")]
        self._next = 1 + max(numbers, default=0)
        self._lock = threading.Lock()
        if not self.entries:
            write_atomically(self.folder / INDEX, index_text(self.model, self.base_url, []))

    def add(self, call: LLMCall, *, answer_schema: str, messages: Sequence[BaseMessage], raw: Any, value: Any,
            task: str | None = None) -> Exchange:
        raw_text, raw_kind = answer_of(raw)
        with self._lock:
            if task is not None:
                self._drop_earlier(task)
            exchange = Exchange(
                n=self._next, role=call.role, node=call.node, track=call.track, task=task, session=self.session,
                answer_schema=answer_schema, model=call.model, method=call.method, messages=recorded_messages(messages),
                raw=raw_text, raw_kind=raw_kind, answer=value.model_dump(mode="json") if value is not None else None,
                outcome=call.outcome, error=call.error, prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens, seconds=call.seconds)
            self._next += 1
            path = self.folder / file_name(exchange.n)
            write_atomically(path, json.dumps(exchange.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
            write_atomically(path.with_suffix(".md"), exchange.markdown())
            self.entries.append(exchange)
            self._write_index()
        return exchange

    def _drop_earlier(self, task: str) -> None:
        """An earlier session's requests of this task: the step was interrupted and runs again,
        so those answers never reached the run's state; a replay must not see them."""
        stale = [e for e in self.entries if e.task == task and e.session < self.session]
        if not stale:
            return
        (self.folder / DROPPED).mkdir(exist_ok=True)
        for e in stale:
            for path in (self.folder / file_name(e.n), (self.folder / file_name(e.n)).with_suffix(".md")):
                if path.exists():
                    os.replace(path, self.folder / DROPPED / path.name)
        self.entries = [e for e in self.entries if not (e.task == task and e.session < self.session)]

    def _write_index(self) -> None:
        write_atomically(self.folder / INDEX, index_text(self.model, self.base_url, self.entries))


class Replay:
    """Answers from a recording: per (role, track), the recorded requests in order.

    log: a file in the run folder where each answer taken is noted with the graph task that took
    it, so that a resumed run gives an interrupted step the answers it had before."""

    def __init__(self, folder: str | Path, *, log: str | Path | None = None):
        self.folder = Path(folder).resolve()
        index, self.entries = read_recording(self.folder)
        self.model: str = index.get("model") or (self.entries[0].model if self.entries else "replay")
        self.base_url: str | None = index.get("base_url")
        self.by_n = {e.n: e for e in self.entries}
        self.queues: dict[tuple[str, str | None], deque[Exchange]] = {}
        for e in self.entries:
            self.queues.setdefault((e.role, e.track), deque()).append(e)
        self.log = Path(log) if log is not None else None
        self.used: set[int] = set()
        self.given_back: dict[str, deque[int]] = {}  # graph task -> the answers it took in earlier sessions
        self.session = 1
        if self.log is not None and self.log.exists():
            for line in self.log.read_text(encoding="utf-8").splitlines():
                try:
                    taken = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a session killed while writing it
                self.used.add(taken["entry"])
                if taken.get("task"):
                    self.given_back.setdefault(taken["task"], deque()).append(taken["entry"])
                self.session = max(self.session, int(taken.get("session", 1)) + 1)
        self.missed: dict[str, str] = {}  # role -> what was said when its first request found no answer
        self._lock = threading.Lock()

    def take(self, role: str, track: str | None, task: str | None = None) -> Exchange | None:
        """The recorded answer to this request, or None when the recording has none left."""
        with self._lock:
            again = self.given_back.get(task) if task is not None else None
            entry = self.by_n.get(again.popleft()) if again else None
            if entry is None:
                queue = self.queues.get((role, track)) or deque()
                while queue and queue[0].n in self.used:
                    queue.popleft()
                entry = queue.popleft() if queue else None
            if entry is None:
                return None
            self.used.add(entry.n)
            if self.log is not None:
                with self.log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"session": self.session, "task": task, "role": role, "track": track,
                                        "entry": entry.n}) + "\n")
            return entry

    def missing(self, role: str, track: str | None) -> str | None:
        """What to say when a request of this role finds no answer: once per role, None after."""
        with self._lock:
            if role in self.missed:
                return None
            where = f" (track {track})" if track else ""
            self.missed[role] = (f"the recording {self.folder} holds no answer for {role}{where}; "
                                 f"rules and recipes take {role} from here")
            return self.missed[role]

    def unused(self) -> list[int]:
        with self._lock:
            return [e.n for e in self.entries if e.n not in self.used]

    def summary(self) -> str:
        left = self.unused()
        return (f"llm replay: {len(self.entries) - len(left)} of {len(self.entries)} recorded answers used ({self.folder})"
                + (f"; not asked for: {', '.join(file_name(n) for n in left[:8])}{' …' if len(left) > 8 else ''}" if left else ""))
