"""The LLM: settings, the chat model, structured answers that survive bad servers, and a
record of every request.

- Settings come from flags and the environment (`--model`/`IML_MODEL`, `--base-url`/
  `OPENAI_BASE_URL`, `OPENAI_API_KEY`). No model means offline: rules and recipes take every
  role.
- `build_chat_model` gives a `ChatOpenAI` for OpenAI or any OpenAI-compatible server (vLLM,
  Ollama, llama.cpp), with a timeout and retries on HTTP errors (the openai client retries
  5xx, 429 and timeouts with backoff).
- `LLMClient.ask(schema, messages, ...)` returns a validated pydantic answer. A server that
  rejects the structured-output method is asked again with the next one (json_schema ->
  function_calling -> json_mode), and the client remembers what worked. An answer that does
  not fit the schema is re-asked with the parse error, a bounded number of times. Every
  request becomes an `LLMCall` (tokens, cost where the price is known, seconds, outcome) that
  the node puts into the run's state (`llm_usage`). When no usable answer comes, `LLMError`
  carries the calls made, and the node falls back to its rules.
- Each request carries who asks in `X-IML-*` headers (role, node, track, schema): servers
  ignore them; the hand-answered server (`iml llm-server`) shows them to whoever answers.
- Record and replay (graph/recording.py) sit in `LLMClient.ask`, where every request passes:
  a `Recorder` keeps each request and its answer; a `Replay` answers from a recording instead
  of a server.

Nodes take the chat model from `RunContext.llm` (any LangChain chat model, so tests pass
scripted ones) through `client_for(ctx)`.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, ValidationError

from runtime.data import TaskInputError
from runtime.records import LLMCall

ENV_MODEL = "IML_MODEL"
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_API_KEY = "OPENAI_API_KEY"
ENV_TIMEOUT = "IML_LLM_TIMEOUT"
DEFAULT_TIMEOUT_S = 180.0
OFFLINE = "offline (no LLM configured)"
METHODS = ("json_schema", "function_calling", "json_mode")
# Local servers ignore the key, but the openai client insists on one.
PLACEHOLDER_KEY = "not-needed"

# OpenAI list prices in USD per million tokens (input, output). A model not listed here, or
# served from anywhere but api.openai.com, has no known price: its cost is None, not 0.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


class LLMConfigError(TaskInputError):
    """The LLM settings cannot work (e.g. OpenAI without a key): one line for the user."""


class LLMError(RuntimeError):
    """The LLM gave no usable answer: HTTP failure, timeout, or unparsable after retries."""

    def __init__(self, message: str, calls: list[LLMCall]):
        super().__init__(message)
        self.calls = calls


# -- settings and the chat model ------------------------------------------------------------


@dataclass(frozen=True)
class LLMSettings:
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = 2

    def describe(self) -> str:
        return f"model {self.model} at {self.base_url or 'https://api.openai.com/v1'}"

    def public(self) -> dict[str, Any]:
        """What may be written to the run folder: never the key."""
        return {"model": self.model, "base_url": self.base_url, "timeout_s": self.timeout_s, "max_retries": self.max_retries}


def resolve_settings(model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                     env: Mapping[str, str] | None = None, timeout_s: float | None = None) -> LLMSettings | None:
    """Flags first, then the environment; None (offline) when no model is named anywhere.
    timeout_s: how long one request may wait for its answer (`--llm-timeout`, env IML_LLM_TIMEOUT)."""
    env = os.environ if env is None else env
    model = (model or env.get(ENV_MODEL) or "").strip()
    if not model:
        return None
    base_url = (base_url or env.get(ENV_BASE_URL) or "").strip() or None
    api_key = api_key or env.get(ENV_API_KEY) or None
    if api_key is None:
        if base_url is None or "api.openai.com" in base_url:
            raise LLMConfigError(f"--model {model} talks to api.openai.com, which needs OPENAI_API_KEY; "
                                 "set it, or pass --base-url for a local OpenAI-compatible server")
        api_key = PLACEHOLDER_KEY
    if timeout_s is None:
        timeout = env.get(ENV_TIMEOUT)
        try:
            timeout_s = float(timeout) if timeout else DEFAULT_TIMEOUT_S
        except ValueError:
            raise LLMConfigError(f"{ENV_TIMEOUT}={timeout!r} is not a number of seconds") from None
    if timeout_s <= 0:
        raise LLMConfigError(f"the LLM timeout must be positive, not {timeout_s:g} s")
    return LLMSettings(model=model, base_url=base_url, api_key=api_key, timeout_s=timeout_s)


def describe(settings: LLMSettings | None) -> str:
    return settings.describe() if settings is not None else OFFLINE


def build_chat_model(settings: LLMSettings):
    """ChatOpenAI on the Chat Completions API, which every OpenAI-compatible server speaks."""
    import openai
    from langchain_openai import ChatOpenAI

    # openai's own client, plus a hook that tags each request with who asks. ChatOpenAI refuses
    # an http_client beside a proxy of its own (OPENAI_PROXY): then requests go untagged.
    http_client = None if os.environ.get("OPENAI_PROXY") else openai.DefaultHttpxClient(event_hooks={"request": [tag_request]})
    return ChatOpenAI(
        model=settings.model,
        base_url=settings.base_url,
        api_key=settings.api_key,
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        use_responses_api=False,
        http_client=http_client,
    )


# Who asks, for the request being sent from this thread: role, node, track, schema.
_asker: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("iml_llm_asker", default=None)
ASKER_HEADERS = {"role": "X-IML-Role", "node": "X-IML-Node", "track": "X-IML-Track", "schema": "X-IML-Schema"}


def tag_request(request: Any) -> None:
    """An httpx request hook: the asker's headers onto the request."""
    for key, value in (_asker.get() or {}).items():
        request.headers[ASKER_HEADERS[key]] = value.encode("ascii", "replace").decode()  # headers are ASCII


def graph_task() -> str | None:
    """The LangGraph task asking now (its checkpoint namespace), or None outside a graph. A step
    interrupted by a kill runs again on resume as the same task."""
    try:
        from langgraph.config import get_config

        return get_config().get("configurable", {}).get("checkpoint_ns") or None
    except (ImportError, RuntimeError):
        return None


def price_of(model: str) -> tuple[float, float] | None:
    """The list price of a known OpenAI model; dated snapshots (gpt-4o-2024-08-06) included."""
    name = model.lower().split("/")[-1]
    for known in sorted(PRICES_PER_MTOK, key=len, reverse=True):
        if name == known or re.fullmatch(re.escape(known) + r"-\d{4}-\d{2}-\d{2}", name):
            return PRICES_PER_MTOK[known]
    return None


def cost_usd(model: str, base_url: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if base_url is not None and "api.openai.com" not in base_url:
        return None  # a local or third-party server: its price is not ours to guess
    price = price_of(model)
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 6)


# -- the answers each role asks for ---------------------------------------------------------


class TaskReading(BaseModel):
    """How the task description reads: what to predict and how it is scored."""

    target: str | None = Field(None, description="the train.csv column to predict, exactly as named there")
    id_column: str | None = Field(None, description="the column that identifies test rows in the submission, or null")
    metric: str | None = Field(None, description="the metric the description names, e.g. rmse, auc, log_loss, accuracy, f1")
    task_type: Literal["binary", "multiclass", "regression"] | None = Field(None, description="null when unsure")
    notes: str = Field("", description="one or two sentences on anything unusual in the task")


class TrackProposal(BaseModel):
    track: str = Field(description="one of the tracks offered")
    reason: str = Field(description="why this track fits this data")
    model_family: str
    feature_steps: list[str] = Field(default_factory=list, description="short feature-engineering steps, naming real columns")
    params: dict[str, Any] = Field(default_factory=dict, description="hyperparameters passed to Features and Model as params")
    time_share: float = Field(description="the track's share of the time, 0.02 to 1; only the shares' ratios count: "
                                          "they are rescaled to split the tracks' part of the budget, which keeps the "
                                          "reserves for refine and for the ensemble and submission")
    drop_columns: list[str] = Field(default_factory=list, description="feature columns to ignore (must exist)")


class PlanProposal(BaseModel):
    """A blueprint: which tracks to run, how, and the validation scheme."""

    tracks: list[TrackProposal]
    validation: Literal["kfold", "stratified", "group", "time"] | None = None
    group_column: str | None = None
    time_column: str | None = None
    notes: str = ""


class ModuleCode(BaseModel):
    """The two modules of a track, complete source each."""

    features: str = Field(description="the complete source of features.py")
    model: str = Field(description="the complete source of model.py")
    notes: str = Field("", description="what this code does, or what was repaired, in one or two sentences")


class ModuleRewrite(BaseModel):
    """A targeted rewrite of one module of the best track."""

    module: Literal["features", "model"]
    code: str = Field(description="the complete new source of that module")
    notes: str = Field("", description="the change and why it should improve the score")


FENCE = re.compile(r"^\s*```[\w+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def strip_fences(source: str) -> str:
    """Code as a module: markdown fences (```python ... ```) around it removed, if any."""
    text = source.strip("\n")
    match = FENCE.match(text)
    if match:
        return match.group(1).strip("\n") + "\n"
    # A fence that opens but never closes, or text around one fenced block.
    blocks = re.findall(r"```[\w+-]*[ \t]*\n(.*?)```", text, re.DOTALL)
    if len(blocks) == 1:
        return blocks[0].strip("\n") + "\n"
    if text.lstrip().startswith("```"):
        text = text.lstrip().split("\n", 1)[1] if "\n" in text else ""
    return text.rstrip() + "\n"


def code_from_answer(answer: ModuleCode, previous: dict[str, str]) -> tuple[dict[str, str], str]:
    """The answer's modules without markdown fences; a module the answer left empty keeps its
    previous source (for debug: "unchanged")."""
    code, kept = {}, []
    for module in ("features", "model"):
        source = strip_fences(getattr(answer, module) or "")
        if source.strip():
            code[module] = source
        else:
            code[module] = previous[module]
            kept.append(module)
    notes = (answer.notes or "").strip()
    if kept:
        notes += f" (kept the previous {' and '.join(kept)}.py: the answer had none)"
    return code, notes.strip()


def extract_json(text: str) -> Any:
    """The JSON object in a free-text answer: fenced, or between the first { and the last }."""
    text = text.strip()
    match = FENCE.match(text)
    if match:
        text = match.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        raise ValueError("the answer holds no JSON object")
    if end <= start:
        raise ValueError("the JSON object is cut off (no closing brace)")
    return json.loads(text[start: end + 1])


# -- the client -----------------------------------------------------------------------------

T = TypeVar("T", bound=BaseModel)


@dataclass
class Answer(Generic[T]):
    value: T
    calls: list[LLMCall]


class LLMBudget:
    """What a run may spend on the LLM (`max_llm_cost_usd`, `max_llm_tokens`), checked before
    each request. Once reached, no request is made: the roles fall back to their rules and
    recipes and the run goes on offline. Calls whose price is unknown count tokens, not dollars.
    Thread-safe: the tracks ask from threads."""

    def __init__(self, max_cost_usd: float | None = None, max_tokens: int | None = None, calls: Sequence[LLMCall] = ()):
        self.max_cost_usd = max_cost_usd
        self.max_tokens = max_tokens
        self.cost_usd = 0.0
        self.tokens = 0
        self.reached_at: float | None = None
        self._lock = threading.Lock()
        for call in calls:  # a resumed run: what the earlier sessions spent
            self.add(call)

    def add(self, call: LLMCall) -> None:
        with self._lock:
            self.tokens += call.prompt_tokens + call.completion_tokens
            self.cost_usd += call.cost_usd or 0.0

    def exhausted(self) -> str | None:
        """Why no more requests may be made, or None."""
        with self._lock:
            why = None
            if self.max_cost_usd is not None and self.cost_usd >= self.max_cost_usd:
                why = f"the LLM spend cap of ${self.max_cost_usd:g} is reached (${self.cost_usd:.4f} spent)"
            elif self.max_tokens is not None and self.tokens >= self.max_tokens:
                why = f"the LLM token cap of {self.max_tokens:,} is reached ({self.tokens:,} tokens used)"
            if why and self.reached_at is None:
                self.reached_at = time.time()
            return why

    def public(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "max_tokens": self.max_tokens, "cost_usd": round(self.cost_usd, 6),
                "tokens": self.tokens, "reached": self.reached_at is not None}


class LLMLimitReached(LLMError):
    """No request was made: the run's LLM budget or its time is spent."""


class LLMReplayMissing(LLMError):
    """No request was made: the recording being replayed holds no answer for this one."""


MIN_REQUEST_S = 5.0  # a request with less time than this left in the run is not made


class LLMClient:
    """Structured answers with method fallback and parse retries; one LLMCall per request.

    recorder (graph.recording.Recorder): keeps every request and its answer. replay
    (graph.recording.Replay): answers from a recording; chat_model may then be None."""

    def __init__(self, chat_model: Any, *, model_name: str | None = None, base_url: str | None = None,
                 parse_retries: int = 2, max_calls: int = 5, methods: Sequence[str] = METHODS,
                 recorder: Any = None, replay: Any = None):
        self.chat = chat_model
        if chat_model is None and replay is not None:
            # answered from a recording: the recorded model and server, so costs are as recorded
            self.model_name, self.base_url = model_name or replay.model, base_url if base_url is not None else replay.base_url
        else:
            self.model_name = model_name or _model_name(chat_model)
            self.base_url = base_url if base_url is not None else _base_url(chat_model)
        self.parse_retries = parse_retries
        self.max_calls = max_calls
        self.methods = tuple(methods)
        self.recorder = recorder
        self.replay = replay
        self._first_method = 0  # the method that last worked; later asks start there
        self._lock = threading.Lock()

    def ask(self, schema: type[T], messages: Sequence[BaseMessage], *, role: str, node: str | None = None,
            track: str | None = None, events: Any = None, budget: LLMBudget | None = None,
            remaining_s: Any = None) -> Answer[T]:
        """A validated answer. budget: the run's spend caps, checked before each request;
        remaining_s: a function giving the run's time left, which bounds each request's wait."""
        calls: list[LLMCall] = []
        json_schema = schema.model_json_schema()
        task = graph_task()
        asker = {"role": role, "node": node or role, "schema": schema.__name__, **({"track": track} if track else {})}
        with self._lock:
            method_index = self._first_method
        tries_on_method = 0
        feedback: list[BaseMessage] = []
        last_error = "no request was made"
        while len(calls) < self.max_calls:
            limit = self._limit(budget, remaining_s, role, events)
            if limit is not None:
                raise LLMLimitReached(f"{role}: {limit}; going on without the LLM", calls)
            method = self.methods[method_index]
            sent = list(messages) + _schema_hint(json_schema, method) + feedback
            started = time.time()
            entry: dict[str, int] = {}
            if self.replay is not None:
                played = self.replay.take(role, track, task)
                if played is None:
                    why = self.replay.missing(role, track)
                    if why is not None and events is not None:
                        events.emit("llm_replay_missing", role=role, track=track, why=why)
                    raise LLMReplayMissing(f"{role}: not in the replayed recording; going on without the LLM", calls)
                raw, value, outcome, error = self._replayed(schema, played)
                entry["replayed"] = played.n
            else:
                wait = None if remaining_s is None else max(MIN_REQUEST_S, remaining_s())
                raw, value, outcome, error = self._request(schema, json_schema, method, sent, wait, asker)
            call = self._record(role, node or role, track, method, raw, time.time() - started, outcome, error)
            calls.append(call)
            if self.recorder is not None:
                kept = self.recorder.add(call, answer_schema=schema.__name__, messages=sent, raw=raw, value=value, task=task)
                entry["recorded"] = kept.n
            if budget is not None:
                budget.add(call)
            if events is not None:
                events.emit("llm", **call.model_dump(exclude_none=True), **entry)
            if value is not None:
                with self._lock:
                    self._first_method = method_index
                return Answer(value, calls)
            last_error = error or outcome
            if outcome == "unsupported" or (outcome == "parse_error" and tries_on_method >= self.parse_retries):
                if method_index + 1 >= len(self.methods):
                    break
                method_index, tries_on_method, feedback = method_index + 1, 0, []
                continue
            if outcome != "parse_error":
                break  # HTTP errors and timeouts were already retried by the client
            tries_on_method += 1
            feedback = [HumanMessage(reask_text(last_error, _raw_text(raw)))]
        raise LLMError(f"{role}: no usable answer after {len(calls)} request(s): {last_error[:300]}", calls)

    @staticmethod
    def _limit(budget: LLMBudget | None, remaining_s: Any, role: str, events: Any) -> str | None:
        why = budget.exhausted() if budget is not None else None
        if why is None and remaining_s is not None and remaining_s() < MIN_REQUEST_S:
            why = f"the run's time budget is spent ({max(0.0, remaining_s()):.0f} s left)"
        if why is not None and events is not None:
            events.emit("llm_limit", role=role, why=why, **(budget.public() if budget is not None else {}))
        return why

    def _request(self, schema: type[T], json_schema: dict, method: str, sent: list[BaseMessage],
                 wait_s: float | None = None, asker: dict[str, str] | None = None) -> tuple[Any, T | None, str, str | None]:
        """One request: (raw message, validated answer or None, outcome, error). wait_s bounds
        the wait, whatever the client's own timeout (the run's time left); asker: who asks,
        sent along as headers."""
        try:
            runnable = self.chat.with_structured_output(json_schema, method=method, include_raw=True)
        except Exception as e:  # noqa: BLE001 - this chat model cannot do this method at all
            return None, None, "unsupported", f"{type(e).__name__}: {e}"
        token = _asker.set(asker)
        try:
            out = _invoke_within(runnable, sent, wait_s)
        except Exception as e:  # noqa: BLE001 - every failure is classified and recorded
            return None, None, classify_error(e), f"{type(e).__name__}: {e}"
        finally:
            _asker.reset(token)
        value, error = self._validate(schema, out)
        return out.get("raw"), value, ("ok" if value is not None else "parse_error"), error

    def _replayed(self, schema: type[T], played: Any) -> tuple[Any, T | None, str, str | None]:
        """A recorded request as `_request` would return it: the recorded answer goes through the
        same validation; a recorded failure (timeout, HTTP error) is that failure again."""
        raw = played.message()
        if raw is None:
            return None, None, played.outcome, played.error
        value, error = self._validate(schema, {"raw": raw})
        return raw, value, ("ok" if value is not None else "parse_error"), error

    def _validate(self, schema: type[T], out: Mapping[str, Any]) -> tuple[T | None, str | None]:
        """The answer's JSON, parsed strictly (never partially) and validated against the schema."""
        raw = out.get("raw")
        tool_calls = getattr(raw, "tool_calls", None) or []
        if tool_calls:
            data = tool_calls[0].get("args")
        else:
            # json_schema / json_mode answers are content; a bad tool call leaves its text in
            # invalid_tool_calls. Fenced JSON, or JSON with prose around it, is salvaged.
            try:
                data = extract_json(_raw_text(raw))
            except (ValueError, json.JSONDecodeError) as e:
                return None, f"the answer is not a JSON object ({e})"
        try:
            return schema.model_validate(data), None
        except ValidationError as e:
            return None, f"the JSON does not match the schema: {_short_validation(e)}"

    def _record(self, role, node, track, method, raw, seconds, outcome, error) -> LLMCall:
        usage = getattr(raw, "usage_metadata", None) or {}
        prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        return LLMCall(
            role=role, node=node, track=track, model=self.model_name, method=method,
            prompt_tokens=prompt, completion_tokens=completion,
            cost_usd=cost_usd(self.model_name, self.base_url, prompt, completion),
            seconds=round(seconds, 3), outcome=outcome, error=(error or None) and error[:500],
        )


def _invoke_within(runnable: Any, sent: list[BaseMessage], wait_s: float | None) -> Any:
    """runnable.invoke(sent), given up after wait_s seconds (TimeoutError). The abandoned request
    ends on its own at the client's timeout; the run does not wait for it."""
    if wait_s is None:
        return runnable.invoke(sent)
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="iml-llm")
    try:
        # the asker's headers (a context variable) go with the request into the pool's thread
        return pool.submit(contextvars.copy_context().run, runnable.invoke, sent).result(timeout=wait_s)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"no answer within the {wait_s:.0f} s the run has left") from None
    finally:
        pool.shutdown(wait=False)


def classify_error(e: BaseException) -> str:
    """An exception from a request -> an LLMCall outcome."""
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai depends on it
        openai = None
    if openai is not None:
        if isinstance(e, openai.APITimeoutError):
            return "timeout"
        if isinstance(e, openai.APIConnectionError):
            return "http_error"
        if isinstance(e, openai.BadRequestError) and "context" in str(e).lower() and "length" in str(e).lower():
            return "http_error"  # the prompt is too long: another method would not help
        if isinstance(e, (openai.BadRequestError, openai.UnprocessableEntityError)):
            return "unsupported"
        if isinstance(e, openai.APIStatusError):
            return "http_error"
        if isinstance(e, (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError)):
            return "parse_error"
    if isinstance(e, TimeoutError) or type(e).__name__ in ("TimeoutException", "ReadTimeout"):
        return "timeout"
    if isinstance(e, NotImplementedError):
        return "unsupported"  # a chat model without this structured-output method
    if isinstance(e, (ValidationError, json.JSONDecodeError, ValueError, KeyError, TypeError)):
        return "parse_error"
    return "error"


def reask_text(error: str, previous: str) -> str:
    excerpt = previous.strip()
    excerpt = excerpt if len(excerpt) <= 800 else excerpt[:800] + " …"
    text = f"Your previous answer could not be used: {error[:1500]}\n"
    if excerpt:
        text += f"It began:\n{excerpt}\n"
    return text + "Answer again with one complete JSON object that follows the schema exactly."


def _schema_hint(json_schema: dict, method: str) -> list[BaseMessage]:
    if method != "json_mode":
        return []  # the schema travels in response_format or the tool definition
    return [SystemMessage(
        "Answer with one JSON object, nothing else (no prose, no code fences), that follows this JSON schema "
        f"({json_schema.get('title', 'Answer')}):\n" + json.dumps(json_schema, separators=(",", ":"))
    )]


def _raw_text(raw: Any) -> str:
    if raw is None:
        return ""
    content = getattr(raw, "content", "")
    if isinstance(content, list):
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    text = str(content or "")
    if not text:
        for bad in getattr(raw, "invalid_tool_calls", None) or []:
            text = str(bad.get("args") or "")
            break
    return text


def _short_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:6]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)


def _model_name(chat_model: Any) -> str:
    for attr in ("model_name", "model"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat_model).__name__


def _base_url(chat_model: Any) -> str | None:
    value = getattr(chat_model, "openai_api_base", None)
    if isinstance(value, str) and value:
        return value
    # A chat model that is not ChatOpenAI (a scripted one in tests) has no known price either.
    return None if hasattr(chat_model, "openai_api_base") else "local"


_clients: dict[int, tuple[Any, LLMClient]] = {}
_clients_lock = threading.Lock()


class RunClient:
    """The run's client: every ask carries the run's LLM budget and its time left."""

    def __init__(self, client: LLMClient, budget: LLMBudget | None, remaining_s: Any):
        self.client, self.budget, self.remaining_s = client, budget, remaining_s

    def ask(self, schema: type[T], messages: Sequence[BaseMessage], **kwargs: Any) -> Answer[T]:
        return self.client.ask(schema, messages, budget=self.budget, remaining_s=self.remaining_s, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def client_for(ctx: Any) -> RunClient | None:
    """The run's LLM client, or None offline. `ctx.llm` may be a chat model or an LLMClient."""
    llm = getattr(ctx, "llm", None)
    if llm is None:
        return None
    if not isinstance(llm, LLMClient):
        with _clients_lock:
            kept = _clients.get(id(llm))
            if kept is None or kept[0] is not llm:
                kept = (llm, LLMClient(llm))
                _clients[id(llm)] = kept
            llm = kept[1]
    return RunClient(llm, getattr(ctx, "llm_budget", None), getattr(ctx, "remaining_s", None))


# -- summaries ------------------------------------------------------------------------------


def usage_summary(calls: Sequence[LLMCall]) -> str:
    """One line: requests, outcomes, tokens, cost, seconds."""
    if not calls:
        return "llm: no requests"
    outcomes: dict[str, int] = {}
    for c in calls:
        outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
    prompt = sum(c.prompt_tokens for c in calls)
    completion = sum(c.completion_tokens for c in calls)
    costs = [c.cost_usd for c in calls]
    cost = "cost unknown" if any(x is None for x in costs) else f"${sum(costs):.4f}"
    detail = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items(), key=lambda kv: (kv[0] != "ok", kv[0])))
    return (f"llm: {len(calls)} request(s) to {calls[0].model} ({detail}), {prompt:,} prompt + {completion:,} "
            f"completion tokens, {cost}, {sum(c.seconds for c in calls):.1f}s")
