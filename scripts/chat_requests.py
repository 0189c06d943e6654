"""A Chat Completions request as iML's own servers read it: what answer it asks for and in what
form, a rendering a person (or another model) can read whole, and the completion that carries an
answer back in the form the client asked for.

The forms (LangChain's `with_structured_output` methods, and plain chat):
- json_schema: `response_format` {"type": "json_schema"} with the schema -> the JSON as content
- tools: a function to call (function_calling) -> a tool call, the JSON as its arguments
- json_mode: `response_format` {"type": "json_object"}; the schema is in the messages -> content
- text: nothing asked -> the answer as content

Used by the hand-answered server (scripts/llm_server.py) and the tests' scripted server.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from graph.llm import ASKER_HEADERS, extract_json
from graph.recording import fenced

STYLES = ("json_schema", "tools", "json_mode", "text")
SCHEMA_IN_TEXT = re.compile(r"JSON schema \((\w+)\)")  # how graph.llm states the schema for json_mode


def asked_by(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Who asks (role, node, track, schema), from the X-IML-* headers iML's client sends."""
    if not headers:
        return {}
    lower = {k.lower(): v for k, v in headers.items()}
    return {key: lower[name.lower()] for key, name in ASKER_HEADERS.items() if lower.get(name.lower())}


def answer_style(body: dict, headers: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(the answer's schema name, its form: one of STYLES)."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("name", "unknown"), "json_schema"
    if body.get("tools"):
        return _tool(body).get("name", "unknown"), "tools"
    if fmt.get("type") == "json_object":
        named = asked_by(headers).get("schema")
        match = SCHEMA_IN_TEXT.search(body_text(body))
        return named or (match.group(1) if match else "unknown"), "json_mode"
    return "text", "text"


def answer_schema(body: dict, style: str) -> dict | None:
    """The JSON schema the answer must follow, where the request holds one."""
    if style == "json_schema":
        return ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    if style == "tools":
        return _tool(body).get("parameters")
    if style == "json_mode":
        for message in reversed(body.get("messages") or []):
            text = _content_text(message.get("content"))
            at = text.find("JSON schema")
            if at < 0:
                continue
            try:
                found = extract_json(text[at:])
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def answer_description(body: dict, style: str) -> str:
    """What the request says the answer is, beside its schema (clients move the schema's own
    description there)."""
    if style == "json_schema":
        return str(((body.get("response_format") or {}).get("json_schema") or {}).get("description") or "")
    if style == "tools":
        return str(_tool(body).get("description") or "")
    return ""


def _tool(body: dict) -> dict:
    """The function the client asks to call: the one tool_choice names, else the first."""
    tools = [t.get("function") or {} for t in body.get("tools") or []]
    choice = body.get("tool_choice")
    wanted = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    return next((t for t in tools if t.get("name") == wanted), tools[0] if tools else {})


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(part.get("text", ""))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                parts.append(f"[image: {str((part.get('image_url') or {}).get('url', ''))[:80]}]")
            else:
                parts.append(json.dumps(part))
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def body_text(body: dict) -> str:
    """Every message's text, in order."""
    return "\n".join(_content_text(m.get("content")) for m in body.get("messages") or [])


def completion(body: dict, text: str, style: str) -> dict:
    """A chat completion carrying `text` in the form asked for: as a tool call's arguments for
    tools, else as content. Tokens are estimated (about 4 characters each)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    if style == "tools":
        message = {"role": "assistant", "content": None,
                   "tool_calls": [{"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                                   "function": {"name": _tool(body).get("name", "answer"), "arguments": text}}]}
        finish = "tool_calls"
    prompt_tokens = len(body_text(body)) // 4
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4,
                  "total_tokens": prompt_tokens + len(text) // 4},
    }


# -- the request as a person reads it ----------------------------------------------------------

HOW = {
    "json_schema": "The client asked for JSON that follows a schema (response_format json_schema).",
    "tools": "The client asked for a call of the function `{name}` (function calling); the server sends your JSON as "
             "the call's arguments.",
    "json_mode": "The client asked for a JSON object (JSON mode); the messages describe it.",
    "text": "The client asked for plain text.",
}


def answer_file(n: int, style: str) -> str:
    """The answer's file name, in the server's answers/ folder."""
    return f"{n:04d}.txt" if style == "text" else f"{n:04d}.json"


def render_request(n: int, body: dict, *, headers: Mapping[str, str] | None, answer_path: str) -> str:
    """The request in markdown: who asks, what to answer and where, the messages in order, the schema."""
    name, style = answer_style(body, headers)
    who = asked_by(headers)
    schema = answer_schema(body, style)
    messages = body.get("messages") or []
    title = f"# Request {n:04d}: {name}" + (f" for {who['role']}" if who.get("role") else "") + \
        (f" (track {who['track']})" if who.get("track") else "")
    lines = [title, ""]
    if who:
        lines.append("- asked by: " + ", ".join(f"{k} {v}" for k, v in who.items() if k != "schema"))
    lines += [f"- model asked for: {body.get('model', '?')}", f"- form: {style}. {HOW[style].format(name=name)}", ""]
    if style == "text":
        lines.append(f"**Your answer:** the reply as it should read, in `{answer_path}`.")
    else:
        lines.append(f"**Your answer:** one JSON object that follows the {name} schema at the end of this file — "
                     f"nothing else: no prose, no code fences — in `{answer_path}`.")
    lines += [
        ("Write it under another name first (e.g. the same name + `.tmp`) and rename it, so the server never reads half "
         "an answer. Whatever the file holds is passed on as it is: an answer that is not valid JSON for the schema is "
         "sent back with the error and asked again, as a new request."),
        "", f"## Messages ({len(messages)})", ""]
    for i, message in enumerate(messages, 1):
        lines += [f"### {i} of {len(messages)}: {message.get('role', '?')}", ""]
        text = _content_text(message.get("content"))
        if text:
            lines += [text, ""]
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            lines += [f"(calls {fn.get('name')})", fenced(str(fn.get("arguments", "")), "json"), ""]
    if schema is not None:
        described = answer_description(body, style)
        lines += [f"## Schema: {name}", "", *([described, ""] if described else []),
                  fenced(json.dumps(schema, indent=2, ensure_ascii=False), "json"), ""]
    elif style != "text":
        lines += ["## Schema", "", "The request names no schema: answer with the JSON object the messages ask for.", ""]
    return "\n".join(lines)
