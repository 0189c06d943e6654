"""What a cell printed, made readable: ANSI codes and carriage-return progress bars resolved, long
output kept as head and tail, and tracebacks cut to the frames a reader of the code can act on
(the generated code's and the harness's, with library frames shortened and the kernel's own
machinery left out).
"""

from __future__ import annotations

import re
import sysconfig
from collections import deque
from typing import Literal

# Room left for the "... [N chars omitted] ..." marker inside max_output_chars.
_MARKER_ROOM = 64
# --------------------------------------------------------------------------- output cleaning

_ANSI_RE = re.compile(
    r"\x1b(?:"
    r"\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|[()][0-9A-Za-z]"  # character set selection
    r"|[@-Z\\-_]"  # other two-byte escapes
    r")"
)
# An escape sequence split across two stream messages is held back at most this long.
_MAX_ESCAPE_LEN = 64


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def _split_incomplete_escape(text: str) -> tuple[str, str]:
    """Splits off a trailing escape sequence that the next chunk may complete."""
    start = text.rfind("\x1b")
    if start < 0 or len(text) - start > _MAX_ESCAPE_LEN:
        return text, ""
    if _ANSI_RE.match(text, start):
        return text, ""
    return text[:start], text[start:]


def _line_final_state(line: str) -> str:
    """What a terminal shows for a line redrawn with '\\r' (tqdm pads, so the last draw wins)."""
    line = line.rstrip("\r")  # '\r\n' line ends
    return line[line.rfind("\r") + 1 :]


def _compact_open_line(line: str) -> str:
    """Drops redraws that are already overwritten, so a progress bar never grows the buffer."""
    # A trailing '\r' may be the first half of '\r\n', so it does not overwrite anything yet.
    cut = line.rfind("\r", 0, len(line) - 1)
    return line[cut + 1 :] if cut >= 0 else line


class _HeadTail:
    """Keeps the first and last characters of a stream of text, counting what falls between.

    Memory stays O(head + tail) however much is appended, which is what lets a cell print
    10 MB without the caller holding 10 MB.
    """

    def __init__(self, max_chars: int) -> None:
        budget = max(2, max_chars - _MARKER_ROOM)
        self._head_cap = budget // 2
        self._tail_cap = budget - self._head_cap
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.omitted = 0

    def append(self, text: str) -> None:
        if self._head_len < self._head_cap:
            room = self._head_cap - self._head_len
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if text:
            self._append_tail(text)

    def _append_tail(self, text: str) -> None:
        self._tail.append(text)
        self._tail_len += len(text)
        excess = self._tail_len - self._tail_cap
        while excess > 0:
            first = self._tail[0]
            if len(first) <= excess:
                self._tail.popleft()
                dropped = len(first)
            else:
                self._tail[0] = first[excess:]
                dropped = excess
            self._tail_len -= dropped
            self.omitted += dropped
            excess -= dropped

    def text(self) -> str:
        head, tail = "".join(self._head), "".join(self._tail)
        if not self.omitted:
            return head + tail
        return f"{head}\n... [{self.omitted} chars omitted] ...\n{tail}"


class _StreamCleaner:
    """Turns one raw terminal stream (stdout or stderr) into clean lines, as a log shows them."""

    def __init__(self, sink: _HeadTail, line_cap: int) -> None:
        self._sink = sink
        self._line_cap = line_cap
        self._open_line = ""
        self._pending_escape = ""

    def feed(self, text: str) -> None:
        text, self._pending_escape = _split_incomplete_escape(self._pending_escape + text)
        pieces = strip_ansi(text).split("\n")
        for finished in pieces[:-1]:
            self._sink.append(_line_final_state(self._open_line + finished) + "\n")
            self._open_line = ""
        self._open_line = _compact_open_line(self._open_line + pieces[-1])
        if len(self._open_line) > self._line_cap:
            # One enormous line without newline: pass it on in pieces so it stays bounded.
            self._sink.append(self._open_line)
            self._open_line = ""

    def close(self) -> None:
        self.feed(strip_ansi(self._pending_escape))
        self._pending_escape = ""
        if self._open_line:
            final = _line_final_state(self._open_line)
            if final:
                self._sink.append(final + "\n")
            self._open_line = ""


class OutputCollector:
    """Everything a cell shows: both streams and the text of results and displays."""

    def __init__(self, max_chars: int) -> None:
        self._text = _HeadTail(max_chars)
        self._streams: dict[str, _StreamCleaner] = {}
        self._line_cap = max_chars

    def stream(self, name: str, text: str) -> None:
        cleaner = self._streams.get(name)
        if cleaner is None:
            cleaner = self._streams[name] = _StreamCleaner(self._text, self._line_cap)
        cleaner.feed(text)

    def block(self, text: str) -> None:
        """A rich output (execute_result, display_data) shown as its plain-text form."""
        self._text.append(strip_ansi(text).rstrip("\n") + "\n")

    def text(self) -> str:
        for cleaner in self._streams.values():
            cleaner.close()
        return self._text.text().rstrip("\n")


# --------------------------------------------------------------------------- tracebacks

_FRAME_RE = re.compile(r"^(?:Cell In\[\d+\], line \d+|File (?P<path>.+?):\d+)")
_HEADER_RE = re.compile(r"^\S+\s+Traceback \(most recent call last\)\s*$")
_INTERNAL_MARKERS = ("/IPython/", "/ipykernel/", "/jupyter_client/", "runtime/kernel.py")
# the framework's frames around user code in a track's kernel: the Harness and the fold loop it runs
_HARNESS_MARKERS = ("runtime/harness.py", "runtime/fold_loop.py", "runtime/saved_models.py")
_LIBRARY_MARKERS = ("site-packages", "dist-packages")
_STDLIB = sysconfig.get_paths()["stdlib"]
_NO_SOURCE_LINE = "Could not get source, probably due dynamically evaluated source code."


def _frame_kind(entry: str) -> Literal["user", "harness", "internal", "library"] | None:
    """Classifies one IPython traceback entry; None when it is not a frame."""
    match = _FRAME_RE.match(entry)
    if match is None:
        return None
    path = match.group("path")
    if path is None or path.startswith("<"):
        return "user"  # a notebook cell, or code compiled as "<string>"
    if any(marker in path for marker in _INTERNAL_MARKERS):
        return "internal"
    if path.endswith(_HARNESS_MARKERS):
        return "harness"
    if any(marker in path for marker in _LIBRARY_MARKERS) or path.startswith(_STDLIB):
        return "library"
    if not path.startswith(("/", "~")):
        return "library"  # Cython sources are reported relative, e.g. pandas/_libs/index.pyx
    return "user"  # generated module files live in the run directory


def _shorten_library_frame(entry: str) -> str:
    """Keeps a library frame's location and the line it was on, not its source context."""
    lines = entry.splitlines()
    arrow = [line for line in lines[1:] if line.lstrip().startswith("-")]
    return "\n".join(lines[:1] + arrow[-1:])


def _clean_segment(frames: list[tuple[str, str]]) -> list[str]:
    """Drops internal frames, and harness frames when the failure is in user code."""
    own = [kind for kind, _ in frames if kind in ("user", "harness")]
    failing_in_user_code = bool(own) and own[-1] == "user"
    kept = []
    for kind, entry in frames:
        if kind == "internal" or (kind == "harness" and failing_in_user_code):
            continue
        kept.append(_shorten_library_frame(entry) if kind == "library" else entry)
    return kept


def clean_traceback(entries: list[str]) -> str:
    """The traceback of an IPython error message as plain text, without framework frames."""
    out: list[str] = []
    segment: list[tuple[str, str]] = []
    for raw in entries:
        entry = "\n".join(
            line for line in strip_ansi(raw).rstrip("\n").splitlines() if _NO_SOURCE_LINE not in line
        )
        kind = _frame_kind(entry)
        if kind is not None:
            segment.append((kind, entry))
            continue
        out.extend(_clean_segment(segment))
        segment = []
        if not entry.strip() or set(entry.strip()) == {"-"}:
            continue  # IPython's ruler
        out.append("Traceback (most recent call last):" if _HEADER_RE.match(entry) else entry)
    out.extend(_clean_segment(segment))
    return "\n".join(out)
