"""A session over one Jupyter kernel that survives whatever generated code does.

Generated code loops forever, exits the process, segfaults, eats memory and prints
megabytes. `KernelSession.execute` turns each of those into an `ExecResult` with a
status, and leaves a usable kernel behind (restarting it and re-running the startup
code when the old one is gone). The caller's thread never receives a signal: time,
death and memory are all watched by polling, so sessions can run in worker threads.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import psutil
import pydantic
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

ExecStatus = Literal["ok", "error", "timeout", "died", "out_of_memory"]

# Short enough that a dead kernel or a passed deadline is noticed within ~1 s.
_POLL_S = 0.25
_ALIVE_CHECK_S = 0.5
_MEMORY_SAMPLE_S = 0.2
# Once idle is seen, the shell reply is already on its way; this only bounds a broken kernel.
_REPLY_WAIT_S = 5.0
_READY_TIMEOUT_S = 60.0
_STARTUP_TIMEOUT_S = 600.0
# Room left for the "... [N chars omitted] ..." marker inside max_output_chars.
_MARKER_ROOM = 64
_KERNEL_LOG_TAIL = 2_000

# Seeds, and a faulthandler writing to the kernel's real stderr (our log file): ipykernel
# sends fd 2 through a pipe whose reader thread dies with the process, so without this a
# segfault leaves no trace at all.
_BOOTSTRAP_CODE = """\
import faulthandler as _iml_fh, sys as _iml_sys
_iml_fh.enable(file=getattr(_iml_sys.stderr, "_original_stdstream_copy", None) or _iml_sys.__stderr__,
               all_threads=False)
del _iml_fh, _iml_sys
import random as _iml_random
_iml_random.seed(0)
del _iml_random
try:
    import numpy as _iml_np
except ImportError:
    pass
else:
    _iml_np.random.seed(0)
    del _iml_np
"""


class KernelStartError(RuntimeError):
    """The kernel could not be started or its startup code failed (message is one line)."""


class ExecResult(pydantic.BaseModel):
    """How one cell ended. For "timeout", "died" and "out_of_memory", error_name is
    TimeoutError / KernelDied / MemoryError and error_value says what happened, including
    whether the kernel was restarted (state lost)."""

    status: ExecStatus
    # stdout + stderr + text of results/displays: ANSI stripped, '\r' redraws collapsed,
    # head and tail kept within max_output_chars.
    output: str
    error_name: str | None = None
    error_value: str | None = None
    # Python traceback without framework frames; for "died", what the process itself wrote
    # last (e.g. faulthandler's stack on a segfault).
    traceback: str | None = None
    duration_s: float
    # Peak RSS of the kernel and its child processes during the cell, sampled every 0.2 s.
    peak_memory_mb: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# --------------------------------------------------------------------------- slots, GPU


class ExecutionSlots:
    """Limit on how many kernels execute at once, shared by all tracks."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"ExecutionSlots needs at least one slot, got {n}")
        self.n = n
        self._semaphore = threading.BoundedSemaphore(n)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Blocks until a slot is free, holds it for the body of the `with`."""
        self._semaphore.acquire()
        try:
            yield
        finally:
            self._semaphore.release()


def _usable_cpus() -> int:
    # sched_getaffinity respects taskset/cgroup pinning; cpu_count does not.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_slots() -> int:
    """Kernels that may compute at once: one per two cores, so on 2 cores tracks take turns."""
    return max(1, _usable_cpus() // 2)


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """Whether an NVIDIA GPU is usable, without importing torch (seconds of import time)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False  # explicitly hidden by the user
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    # A driver can be installed in a container that was given no device.
    return listing.returncode == 0 and "GPU" in listing.stdout


def kernel_env(threads: int, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: the caller's, made quiet, deterministic and thread-bounded."""
    env = dict(os.environ)
    env.update(
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        NUMEXPR_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    # OpenMP threads that spin while waiting made LightGBM 5-20x slower on 2 busy cores
    # (measured: digits 9.2 s -> 3.2 s); passive waiting yields the core instead.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if gpu_available():
        # An inherited choice (e.g. CUDA_VISIBLE_DEVICES=1) is the user's; keep it.
        env.setdefault("CUDA_VISIBLE_DEVICES", "0")
    env.update(overrides or {})
    return env


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


class _OutputCollector:
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


# --------------------------------------------------------------------------- memory


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _tree_rss_mb(pid: int) -> float | None:
    """RSS of a process and its descendants (forked workers count: they are the cell's too)."""
    total = 0
    for process in _tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and sampling
    return total / 2**20 if total else None  # 0: a zombie that was already killed


def _kill_tree(pid: int) -> None:
    # Kill the kernel first so it cannot spawn replacements, then what it left behind.
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            process.kill()


class _MemoryWatcher:
    """Samples a kernel's memory in a background thread while one cell runs.

    Going over the limit kills the kernel from this thread: waiting for the caller's poll
    would let a fast allocation loop take the machine down first.
    """

    def __init__(self, pid: int | None, limit_mb: int | None) -> None:
        self._pid = pid
        self._limit_mb = limit_mb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_mb: float | None = None
        self.exceeded = False

    def __enter__(self) -> _MemoryWatcher:
        if self._pid is not None:
            self._sample()
            self._thread = threading.Thread(target=self._run, name="kernel-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(_MEMORY_SAMPLE_S):
            self._sample()

    def _sample(self) -> None:
        if self._pid is None or self.exceeded:
            return
        rss = _tree_rss_mb(self._pid)
        if rss is None:
            return
        self.peak_mb = rss if self.peak_mb is None else max(self.peak_mb, rss)
        if self._limit_mb is not None and rss > self._limit_mb:
            self.exceeded = True  # set before killing, so the caller reads OOM, not "died"
            _kill_tree(self._pid)


# --------------------------------------------------------------------------- kernel specs

_PYTHON_ALIASES = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}


class _SameInterpreterSpecs(KernelSpecManager):
    """Kernel specs whose Python is the caller's, so the kernel sees the same packages.

    jupyter_client maps a bare "python" to sys.executable itself; a spec installed elsewhere
    (e.g. /usr/share/jupyter/kernels/python3 -> /usr/bin/python3) would not be.
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = super().get_kernel_spec(kernel_name)
        program = spec.argv[0] if spec.argv else ""
        if program not in _PYTHON_ALIASES and program != sys.executable:
            spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return spec


# --------------------------------------------------------------------------- session


class _Cell:
    """What has been seen of one cell's messages."""

    def __init__(self, msg_id: str, max_chars: int) -> None:
        self.msg_id = msg_id
        self.output = _OutputCollector(max_chars)
        self.error: dict[str, Any] | None = None
        self.idle = False

    def handle(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.output.stream(content.get("name", "stdout"), content.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            text = content.get("data", {}).get("text/plain")
            if text:
                self.output.block(text)
        elif kind == "error":
            self.error = content
        elif kind == "status" and content.get("execution_state") == "idle":
            self.idle = True


_Outcome = Literal["idle", "deadline", "died", "oom"]


class WarmKernel:
    """A kernel started ahead of its first use, in a thread, with the harness's libraries
    imported (pandas, scikit-learn, LightGBM: ~3 s on 2 slow cores). Those seconds overlap the
    framework's own imports and the run's first steps instead of coming after the blueprint.
    It starts in a neutral folder (the run's may not exist yet) and moves to the run's folder
    when a track takes it."""

    def __init__(self, *, threads: int = 1, memory_limit_mb: int | None = None, warm_code: str = "import runtime.harness"):
        self.session = KernelSession(tempfile.gettempdir(), threads=threads, memory_limit_mb=memory_limit_mb,
                                     startup_code=warm_code)
        self._error: Exception | None = None
        self._lock = threading.Lock()
        self._taken = self._started = self._abandoned = False
        self._thread = threading.Thread(target=self._start, name="iml-warm-kernel", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self.session.start()
        except Exception as exc:  # noqa: BLE001 - the track starts its own kernel instead
            self._error = exc
        with self._lock:
            self._started = True
            abandoned = self._abandoned
        if abandoned:
            self.session.shutdown()

    def take(self, cwd: str | Path, startup_code: str) -> KernelSession | None:
        """The kernel, moved to cwd with startup_code run (it is its startup code from now on,
        for restarts); None when the warm start failed, so the caller starts one the usual way."""
        self._thread.join()
        with self._lock:
            self._taken = True
        session = self.session
        if self._error is not None or not session.alive:
            session.shutdown()
            return None
        session.cwd = Path(cwd).resolve()
        session.startup_code = startup_code
        result, _ = session._run_cell(f"import os\nos.chdir({str(session.cwd)!r})\n" + startup_code, _STARTUP_TIMEOUT_S)
        if not result.ok:
            session.shutdown()
            return None
        return session

    def discard(self) -> None:
        """Stop it, when no track took it (a failed run, bad input). Never waits for a start
        under way: that one stops itself when it ends (and a kernel whose parent process exited
        stops on its own: ipykernel polls its parent), so bad input gets its line at once."""
        with self._lock:
            if self._taken:
                return
            self._taken = True
            if not self._started:
                self._abandoned = True
                return
        self.session.shutdown()


class KernelSession:
    """One persistent kernel: execute cells, survive what they do, restart when needed.

    Used by one thread at a time; different sessions may run in different threads.
    """

    def __init__(
        self,
        cwd: str | Path,
        *,
        threads: int = 1,
        memory_limit_mb: int | None = None,
        env: dict[str, str] | None = None,
        startup_code: str | None = None,
        max_output_chars: int = 20_000,
        restart_grace_s: float = 10.0,
    ) -> None:
        self.cwd = Path(cwd).resolve()
        self.threads = threads
        self.memory_limit_mb = memory_limit_mb
        self.env_overrides = dict(env or {})
        self.startup_code = startup_code
        self.max_output_chars = max_output_chars
        self.restart_grace_s = restart_grace_s
        self.start_time_s: float = 0.0
        self._km: KernelManager | None = None
        self._kc: Any = None  # jupyter_client's BlockingKernelClient
        self._log_path: Path | None = None

    # ---- lifecycle

    def start(self) -> None:
        """Starts the kernel in cwd and runs the startup code; KernelStartError on failure.

        A no-op while the kernel is alive; a dead one is cleaned up and replaced.
        """
        if self._km is not None:
            if self._km.is_alive():
                return
            self._stop()
        began = time.monotonic()
        try:
            self._launch()
            self._run_startup()
        except KernelStartError:
            self._stop()
            raise
        except Exception as exc:  # anything jupyter_client raises: one clear line for the user
            self._stop()
            raise KernelStartError(f"kernel failed to start in {self.cwd}: {_one_line(exc)}") from exc
        self.start_time_s = time.monotonic() - began

    def restart(self) -> None:
        """A fresh kernel process (all variables lost), then the startup code again."""
        self._stop()
        self.start()

    def shutdown(self) -> None:
        """Stops the kernel at once. Every cell has ended and written its files by then, so
        jupyter_client's shutdown handshake has nothing to flush; it cost ~0.5 s per kernel
        out of a 10 s run's final reserve."""
        self._stop()

    @property
    def alive(self) -> bool:
        return self._km is not None and self._km.is_alive()

    def __enter__(self) -> KernelSession:
        if self._km is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _launch(self) -> None:
        if not self.cwd.is_dir():
            raise KernelStartError(f"kernel working directory does not exist: {self.cwd}")
        # TCP: NOTES.md found ipc transport never ready with another cwd.
        self._km = KernelManager(
            kernel_name="python3", transport="tcp", kernel_spec_manager=_SameInterpreterSpecs()
        )
        # The kernel's own stdout/stderr (startup warnings, faulthandler dumps on a segfault)
        # goes to a log file rather than the caller's terminal; its tail explains a death.
        fd, log_name = tempfile.mkstemp(prefix="iml-kernel-", suffix=".log")
        self._log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self._km.start_kernel(
                cwd=str(self.cwd), env=kernel_env(self.threads, self.env_overrides), stdout=log, stderr=log
            )
        self._kc = self._km.client()
        self._kc.start_channels()
        try:
            self._kc.wait_for_ready(timeout=_READY_TIMEOUT_S)
        except RuntimeError as exc:
            log = _one_line(self._log_since(0, 300))
            raise KernelStartError(f"kernel did not become ready: {_one_line(exc)}; kernel log: {log}") from exc

    def _run_startup(self) -> None:
        for label, code in (("bootstrap", _BOOTSTRAP_CODE), ("startup code", self.startup_code)):
            if not code:
                continue
            result, _ = self._run_cell(code, _STARTUP_TIMEOUT_S)
            if not result.ok:
                detail = f"{result.error_name}: {result.error_value}" if result.error_name else result.status
                raise KernelStartError(f"{label} failed ({result.status}): {_one_line(detail)}")

    def _stop(self) -> None:
        km, kc = self._km, self._kc
        self._km = self._kc = None
        pid = _kernel_pid(km) if km is not None else None
        # Listed before shutdown: once the kernel is gone its workers are no longer its children.
        family = _tree(pid) if pid is not None else []
        if kc is not None:
            with contextlib.suppress(Exception):
                kc.stop_channels()
        if km is not None:
            with contextlib.suppress(Exception):
                km.shutdown_kernel(now=True)
        for process in family:  # workers (joblib, dataloaders) that left the process group
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    # ---- execution

    def execute(self, code: str, timeout: float = 600.0) -> ExecResult:
        """Runs one cell; always returns, within about timeout + restart_grace_s + a restart."""
        note = self._ensure_running()
        result, needs_restart = self._run_cell(code, timeout)
        if needs_restart:
            result = self._recover(result)
        if note:
            result.output = f"{note}\n{result.output}" if result.output else note
        return result

    def _ensure_running(self) -> str | None:
        if self._km is None:
            self.start()
            return None
        if self._km.is_alive():
            return None
        self.restart()
        return "[kernel had died since the previous cell; restarted, earlier state is lost]"

    def _recover(self, result: ExecResult) -> ExecResult:
        """Replaces a dead or stuck kernel; the result says the state was lost."""
        try:
            self.restart()
            suffix = "kernel restarted, state lost"
        except KernelStartError as exc:
            suffix = f"kernel restart failed: {exc}"
        result.error_value = f"{result.error_value}; {suffix}" if result.error_value else suffix
        return result

    def _run_cell(self, code: str, timeout: float) -> tuple[ExecResult, bool]:
        """Executes without recovering; returns the result and whether a restart is needed."""
        assert self._km is not None and self._kc is not None
        began = time.monotonic()
        log_offset = self._log_size()
        msg_id = self._kc.execute(code, silent=False, store_history=False, allow_stdin=False, stop_on_error=True)
        cell = _Cell(msg_id, self.max_output_chars)
        with _MemoryWatcher(_kernel_pid(self._km), self.memory_limit_mb) as memory:
            outcome = self._pump(cell, began + timeout, memory)
            interrupted = False
            if outcome == "deadline":
                # Interrupt and wait for the cell to finish: sending the next cell before its
                # reply makes that one come back 'aborted' (NOTES.md).
                with contextlib.suppress(Exception):  # already dead: the pump below sees it
                    self._km.interrupt_kernel()
                interrupted = True
                outcome = self._pump(cell, time.monotonic() + self.restart_grace_s, memory)
            if outcome in ("died", "oom"):
                self._drain_now(cell)  # what it printed before dying
        reply = self._read_reply(msg_id) if outcome == "idle" else None
        result = ExecResult(
            status="ok",
            output=cell.output.text(),
            duration_s=round(time.monotonic() - began, 3),
            peak_memory_mb=None if memory.peak_mb is None else round(memory.peak_mb, 1),
        )
        if cell.error is not None:
            result.error_name = cell.error.get("ename")
            result.error_value = cell.error.get("evalue")
            result.traceback = clean_traceback(cell.error.get("traceback", []))
        self._classify(result, outcome, interrupted, reply, timeout, log_offset)
        return result, outcome != "idle"

    def _classify(
        self,
        result: ExecResult,
        outcome: _Outcome,
        interrupted: bool,
        reply: dict[str, Any] | None,
        timeout: float,
        log_offset: int,
    ) -> None:
        """Sets status and error fields from how the cell ended."""
        if outcome == "oom":
            peak = f", peak {result.peak_memory_mb:.0f} MB" if result.peak_memory_mb else ""
            result.status, result.error_name = "out_of_memory", "MemoryError"
            result.error_value = f"kernel exceeded the memory limit of {self.memory_limit_mb} MB{peak} and was killed"
        elif interrupted:
            how = "interrupted" if outcome == "idle" else f"did not stop within {self.restart_grace_s:g} s of interrupt"
            result.status, result.error_name = "timeout", "TimeoutError"
            result.error_value = f"cell exceeded the {timeout:g} s timeout; {how}"
        elif outcome == "died":
            result.status, result.error_name = "died", "KernelDied"
            result.error_value = f"kernel process died ({self._exit_description()})"
            # The faulthandler dump (segfaults) or a C library's last words, if any.
            result.traceback = self._log_since(log_offset) or result.traceback
        elif result.error_name is not None or (reply or {}).get("status") == "error":
            result.status = "error"
        elif (reply or {}).get("status") == "aborted":
            result.status, result.error_name = "error", "ExecutionAborted"
            result.error_value = "the kernel aborted this cell (a previous cell was still finishing)"

    def _pump(self, cell: _Cell, until: float, memory: _MemoryWatcher) -> _Outcome:
        """Reads the cell's iopub messages until idle, the deadline, death or the memory limit."""
        assert self._km is not None and self._kc is not None
        next_alive_check = time.monotonic() + _ALIVE_CHECK_S
        while True:
            if memory.exceeded:
                return "oom"
            now = time.monotonic()
            if now >= until:
                return "deadline"
            # Checked on a clock, not only when quiet: a dying cell may have been chatty.
            if now >= next_alive_check:
                if not self._km.is_alive():
                    return "oom" if memory.exceeded else "died"
                next_alive_check = now + _ALIVE_CHECK_S
            try:
                msg = self._kc.get_iopub_msg(timeout=max(0.01, min(_POLL_S, until - now)))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == cell.msg_id:
                cell.handle(msg)
                if cell.idle:
                    return "idle"

    def _drain_now(self, cell: _Cell) -> None:
        """Takes the messages already delivered, without waiting for more."""
        for _ in range(100_000):  # bound: a stream can't be infinite once the kernel is dead
            try:
                msg = self._kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                return
            if msg.get("parent_header", {}).get("msg_id") == cell.msg_id:
                cell.handle(msg)

    def _read_reply(self, msg_id: str) -> dict[str, Any] | None:
        """The cell's execute_reply content, skipping replies left over from earlier cells."""
        deadline = time.monotonic() + _REPLY_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self._kc.get_shell_msg(timeout=min(_POLL_S, left))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg["content"]
        return None

    def _exit_description(self) -> str:
        process = getattr(getattr(self._km, "provisioner", None), "process", None)
        code = getattr(process, "returncode", None)
        if code is None:
            return "exit status unknown"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def _log_size(self) -> int:
        with contextlib.suppress(OSError, TypeError):
            return self._log_path.stat().st_size  # type: ignore[union-attr]
        return 0

    def _log_since(self, offset: int, chars: int = _KERNEL_LOG_TAIL) -> str:
        """What the kernel process wrote to its own stdout/stderr since offset, cleaned, last chars."""
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as log:
                # Read generously: most of a faulthandler dump is kernel frames, dropped below.
                log.seek(max(offset, self._log_size() - 20 * chars))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return _clean_kernel_log(text)[-chars:]


# Lines of the kernel's own log that never explain what the user's code did.
_KERNEL_LOG_NOISE = (
    "without encryption",  # ipykernel's TCP warning at every start
    "Extension modules:",  # faulthandler's list of loaded C extensions
    "/IPython/",
    "/ipykernel/",
    "ipykernel_launcher",
    "/asyncio/",
    "/tornado/",
    "/traitlets/",
    "<frozen runpy>",
)


def _clean_kernel_log(text: str) -> str:
    lines = strip_ansi(text).splitlines()
    return "\n".join(line for line in lines if not any(noise in line for noise in _KERNEL_LOG_NOISE)).strip()


def _kernel_pid(km: KernelManager) -> int | None:
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    return pid if isinstance(pid, int) else None


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."
