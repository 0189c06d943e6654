"""A session over one Jupyter kernel that survives whatever generated code does.

Generated code loops forever, exits the process, segfaults, eats memory and prints
megabytes. `KernelSession.execute` turns each of those into an `ExecResult` with a
status, and leaves a usable kernel behind (restarting it and re-running the startup
code when the old one is gone). The caller's thread never receives a signal: time,
death and memory are all watched by polling, so sessions can run in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import psutil
import pydantic
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from runtime.cell_output import OutputCollector, clean_traceback, strip_ansi
from runtime.machine import gpu_available

ExecStatus = Literal["ok", "error", "timeout", "died", "out_of_memory"]

# Short enough that a dead kernel or a passed deadline is noticed within ~1 s.
_POLL_S = 0.25
_ALIVE_CHECK_S = 0.5
_MEMORY_SAMPLE_S = 0.2
# Once idle is seen, the shell reply is already on its way; this only bounds a broken kernel.
_REPLY_WAIT_S = 5.0
_READY_TIMEOUT_S = 60.0
_STARTUP_TIMEOUT_S = 600.0
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
        self.output = OutputCollector(max_chars)
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
