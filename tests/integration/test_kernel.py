"""runtime/kernel.py against real kernels: whatever a cell does, the session survives it."""

from __future__ import annotations

import os
import random
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from machine_speed import slowness

from runtime.kernel import KernelSession, KernelStartError
from runtime.machine import ExecutionSlots, default_slots, gpu_available

MEMORY_LIMIT_MB = 800
MAX_OUTPUT_CHARS = 4_000
GRACE_S = 3.0  # on free cores; stretched by how slow the machine is (`slow`)
STARTUP_CODE = textwrap.dedent(
    """\
    import random, numpy
    STARTUP_MARKER = "ready"
    FIRST_RANDOM = random.random()
    FIRST_NUMPY = float(numpy.random.rand())
    """
)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kernel")
    # Stand-ins for the framework's harness and a generated module, to check which frames
    # a traceback keeps.
    (root / "runtime").mkdir()
    (root / "runtime" / "harness.py").write_text(
        textwrap.dedent(
            """\
            def run_user(fn):
                return fn()


            def check_rows(rows):
                raise ValueError(f"submission has {rows} rows")
            """
        )
    )
    (root / "model.py").write_text(
        textwrap.dedent(
            """\
            def fit():
                return {}["missing_key"]
            """
        )
    )
    return root


@pytest.fixture(scope="module")
def slow() -> float:
    """How many times slower than free cores the machine computes now (machine_speed): the
    seconds a kernel is given to react scale with it."""
    return slowness()


@pytest.fixture(scope="module")
def session(workdir: Path, slow: float) -> Iterator[KernelSession]:
    with KernelSession(
        workdir,
        memory_limit_mb=MEMORY_LIMIT_MB,
        startup_code=STARTUP_CODE,
        max_output_chars=MAX_OUTPUT_CHARS,
        restart_grace_s=GRACE_S * slow,
    ) as kernel:
        yield kernel


@pytest.fixture(scope="module")
def second_session(workdir: Path) -> Iterator[KernelSession]:
    with KernelSession(workdir, threads=2, env={"IML_TEST_FLAG": "on"}) as kernel:
        yield kernel


def assert_usable(session: KernelSession) -> None:
    """The kernel answers, and the startup code has run in it."""
    probe = session.execute("21 * 2, STARTUP_MARKER", timeout=30)
    assert probe.ok, probe
    assert probe.output == "(42, 'ready')"


# ------------------------------------------------------------------ the kernel itself


def test_state_persists_between_cells(session: KernelSession) -> None:
    assert session.alive
    assert session.execute("persisted_value = 41").ok
    result = session.execute("persisted_value + 1")
    assert result.ok and result.output == "42"
    assert result.duration_s >= 0
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 10


def test_kernel_runs_our_interpreter_in_cwd_with_env(session: KernelSession, workdir: Path) -> None:
    result = session.execute(
        "import os, sys\n"
        "print(sys.executable)\n"
        "print(os.getcwd())\n"
        "for k in ('MPLBACKEND', 'PYTHONHASHSEED', 'OMP_NUM_THREADS', 'HF_HUB_OFFLINE', "
        "'TOKENIZERS_PARALLELISM'):\n"
        "    print(k, os.environ.get(k))"
    )
    assert result.ok, result
    lines = result.output.splitlines()
    assert lines[0] == sys.executable
    assert Path(lines[1]).resolve() == workdir.resolve()
    assert lines[2:] == [
        "MPLBACKEND Agg",
        "PYTHONHASHSEED 0",
        "OMP_NUM_THREADS 1",
        "HF_HUB_OFFLINE 1",
        "TOKENIZERS_PARALLELISM false",
    ]
    assert session.start_time_s > 0


def test_env_overrides_and_threads(second_session: KernelSession) -> None:
    result = second_session.execute(
        "import os; print(os.environ['IML_TEST_FLAG'], os.environ['OMP_NUM_THREADS'])"
    )
    assert result.ok and result.output == "on 2"


def test_seeds_are_fixed_before_startup_code(session: KernelSession) -> None:
    result = session.execute("print(repr(FIRST_RANDOM)); print(repr(FIRST_NUMPY))")
    assert result.ok, result
    expected_random = random.Random(0).random()
    expected_numpy = float(np.random.RandomState(0).rand())
    assert result.output.splitlines() == [repr(expected_random), repr(expected_numpy)]


# ------------------------------------------------------------------ code that misbehaves


def test_infinite_loop_times_out_and_keeps_state(session: KernelSession) -> None:
    assert session.execute("kept_through_interrupt = 7").ok
    result = session.execute("print('looping'); \nwhile True:\n    pass", timeout=2)
    assert result.status == "timeout"
    assert result.error_name == "TimeoutError"
    assert "2 s timeout" in result.error_value and "interrupted" in result.error_value
    assert "looping" in result.output
    assert 2 <= result.duration_s < 2 + session.restart_grace_s
    # The interrupt stopped the cell, so nothing was lost and the next cell is not 'aborted'.
    after = session.execute("kept_through_interrupt")
    assert after.ok and after.output == "7"
    assert_usable(session)


def test_loop_that_ignores_interrupts_is_restarted(session: KernelSession, slow: float) -> None:
    assert session.execute("lost_by_restart = 1").ok
    code = "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass"
    result = session.execute(code, timeout=1)
    assert result.status == "timeout"
    assert "restarted" in result.error_value
    assert result.duration_s < 1 + session.restart_grace_s + 2 * slow
    assert session.execute("lost_by_restart").error_name == "NameError"
    assert_usable(session)


def test_os_exit_is_died_and_startup_code_runs_again(session: KernelSession, slow: float) -> None:
    assert session.execute("STARTUP_MARKER = 'changed'; defined_before_crash = 1").ok
    # The pause lets the print leave the kernel: os._exit drops zmq's unsent queue.
    result = session.execute("import os, time\nprint('about to exit', flush=True)\ntime.sleep(0.5)\nos._exit(1)")
    assert result.status == "died"
    assert result.error_name == "KernelDied"
    assert "exit code 1" in result.error_value and "restarted" in result.error_value
    assert "about to exit" in result.output
    assert result.duration_s < 3.5 * slow  # noticed by polling, not by a timeout
    # The variable from the startup code exists again; the one from before the crash does not.
    assert_usable(session)
    assert session.execute("defined_before_crash").error_name == "NameError"


def test_segfault_is_died_with_the_crash_site(session: KernelSession, slow: float) -> None:
    code = "import ctypes\ndef crash_here():\n    ctypes.string_at(0)\ncrash_here()"
    result = session.execute(code)
    assert result.status == "died"
    assert "SIGSEGV" in result.error_value
    assert "Segmentation fault" in result.traceback and "crash_here" in result.traceback
    assert result.duration_s < 3 * slow
    assert_usable(session)


def test_kernel_killed_between_cells_is_restarted(session: KernelSession) -> None:
    pid = int(session.execute("import os; os.getpid()").output)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60  # waits for the death to show, not a fixed time
    while session.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not session.alive
    result = session.execute("STARTUP_MARKER")
    assert result.ok and result.output.endswith("'ready'")
    assert "restarted" in result.output  # the caller is told its state is gone
    assert session.alive


def test_memory_blowup_is_out_of_memory(session: KernelSession) -> None:
    # At most 6 GiB even if the watcher failed (the machine has 24 GiB), at ~1 GiB/s so the
    # 0.2 s sampling can keep up.
    code = textwrap.dedent(
        """\
        import time
        hoard = []
        for _ in range(60):
            hoard.append(bytearray(100 * 2**20))
            time.sleep(0.1)
        print("allocated", len(hoard))
        """
    )
    result = session.execute(code, timeout=60)
    assert result.status == "out_of_memory", result
    assert result.error_name == "MemoryError"
    assert f"{MEMORY_LIMIT_MB} MB" in result.error_value
    assert result.peak_memory_mb is not None and result.peak_memory_mb > MEMORY_LIMIT_MB
    assert "allocated" not in result.output
    assert_usable(session)


def test_ten_megabytes_of_output_is_bounded(session: KernelSession) -> None:
    code = "for i in range(100_000):\n    print(f'line {i:06d} ' + 'x' * 90)"
    result = session.execute(code, timeout=60)
    assert result.ok, result.status
    assert len(result.output) <= MAX_OUTPUT_CHARS
    assert result.output.startswith("line 000000 ")
    assert result.output.endswith("line 099999 " + "x" * 90)
    assert "chars omitted]" in result.output
    assert_usable(session)


def test_one_enormous_line_is_bounded(session: KernelSession) -> None:
    result = session.execute("print('a' * 3_000_000 + 'z')", timeout=60)
    assert result.ok
    assert len(result.output) <= MAX_OUTPUT_CHARS
    assert result.output.startswith("aaaa") and result.output.endswith("az")


def test_error_has_name_value_and_short_traceback(session: KernelSession) -> None:
    result = session.execute("def divide(x):\n    return x / 0\n\ndivide(1)")
    assert result.status == "error"
    assert result.error_name == "ZeroDivisionError"
    assert result.error_value == "division by zero"
    tb = result.traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "divide" in tb and "return x / 0" in tb
    assert "\x1b" not in tb and "ipykernel" not in tb and "IPython" not in tb
    assert len(tb) < 1_000
    assert_usable(session)


def test_syntax_error_is_an_error(session: KernelSession) -> None:
    result = session.execute("x = (1,\n")
    assert result.status == "error" and result.error_name == "SyntaxError"
    assert "\x1b" not in result.traceback


def test_harness_frames_dropped_only_when_user_code_fails(session: KernelSession) -> None:
    load = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('fake_harness', 'runtime/harness.py')\n"
        "fake_harness = importlib.util.module_from_spec(spec); spec.loader.exec_module(fake_harness)\n"
        "sys.path.insert(0, '.'); import model\n"
    )
    assert session.execute(load).ok
    in_string = session.execute(
        "namespace = {}\n"
        "exec(compile('def train():\\n    return 1 / 0\\n', '<string>', 'exec'), namespace)\n"
        "fake_harness.run_user(namespace['train'])"
    )
    assert in_string.error_name == "ZeroDivisionError"
    assert "<string>" in in_string.traceback and "harness.py" not in in_string.traceback

    in_module = session.execute("fake_harness.run_user(model.fit)")
    assert in_module.error_name == "KeyError"
    assert "model.py" in in_module.traceback and "harness.py" not in in_module.traceback

    in_harness = session.execute("fake_harness.check_rows(3)")
    assert in_harness.error_name == "ValueError"
    assert "harness.py" in in_harness.traceback and "check_rows" in in_harness.traceback


def test_progress_bars_collapse_and_ansi_is_stripped(session: KernelSession) -> None:
    code = textwrap.dedent(
        """\
        import sys
        from tqdm import tqdm
        for _ in tqdm(range(50), mininterval=0, ascii=True, file=sys.stdout):
            pass
        for pct in range(0, 101, 10):
            print(f"\\rmanual {pct}%", end="", flush=True)
        print()
        print("\\x1b[1;31mred\\x1b[0m and \\x1b[32mgreen\\x1b[0m")
        """
    )
    result = session.execute(code)
    assert result.ok, result
    lines = result.output.splitlines()
    assert "\r" not in result.output and "\x1b" not in result.output
    tqdm_lines = [line for line in lines if "/50" in line]
    assert len(tqdm_lines) == 1 and "50/50" in tqdm_lines[0]
    assert lines[-2:] == ["manual 100%", "red and green"]


def test_results_and_displays_are_in_output(session: KernelSession) -> None:
    result = session.execute("from IPython.display import display\ndisplay('shown')\nprint('printed')\n'returned'")
    assert result.ok
    assert result.output.splitlines() == ["'shown'", "printed", "'returned'"]


# ------------------------------------------------------------------ starting


def test_failing_startup_code_is_one_clear_line(workdir: Path) -> None:
    broken = KernelSession(workdir, startup_code="raise ValueError('bad setup')")
    with pytest.raises(KernelStartError) as caught:
        broken.start()
    message = str(caught.value)
    assert "ValueError" in message and "bad setup" in message and "\n" not in message
    assert not broken.alive


def test_start_is_idempotent_and_replaces_a_dead_kernel(second_session: KernelSession) -> None:
    assert second_session.execute("kept_by_start = 3").ok
    second_session.start()  # alive: nothing happens
    assert second_session.execute("kept_by_start").output == "3"
    pid = int(second_session.execute("import os; os.getpid()").output)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60  # waits for the death to show, not a fixed time
    while second_session.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    second_session.start()  # dead: a fresh kernel
    assert second_session.alive
    assert second_session.execute("1 + 1").output == "2"


def test_missing_cwd_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(KernelStartError, match="does not exist"):
        KernelSession(tmp_path / "nowhere").start()


# ------------------------------------------------------------------ concurrency


def test_one_slot_serialises_sessions_in_threads(
    session: KernelSession, second_session: KernelSession
) -> None:
    slots = ExecutionSlots(1)
    intervals: list[tuple[float, float]] = []
    results = []
    lock = threading.Lock()

    def run(kernel: KernelSession) -> None:
        with slots.hold():
            entered = time.monotonic()
            result = kernel.execute("import time; time.sleep(0.3); 'slept'")
            left = time.monotonic()
        with lock:
            intervals.append((entered, left))
            results.append(result)

    threads = [threading.Thread(target=run, args=(kernel,)) for kernel in (session, second_session)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.output for r in results] == ["'slept'", "'slept'"]
    (first_in, first_out), (second_in, second_out) = sorted(intervals)
    assert first_out <= second_in  # never both inside


def test_two_slots_let_two_threads_in_at_once() -> None:
    slots = ExecutionSlots(2)
    both_inside = threading.Barrier(2, timeout=10)  # breaks (raises) unless both get in together
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with slots.hold():
                both_inside.wait()
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []


def test_default_slots_and_gpu_check(monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert 1 <= default_slots() <= cpus
    if cpus <= 2:
        assert default_slots() == 1  # tracks take turns on a small machine
    gpu_available.cache_clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpu_available() is False
    gpu_available.cache_clear()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert isinstance(gpu_available(), bool)
    gpu_available.cache_clear()


def test_a_warm_kernel_moves_to_the_run_and_keeps_its_startup_code(tmp_path: Path) -> None:
    """Started in a neutral folder with only imports; taken by a track, it moves to the run's
    folder and runs the track's startup code, which a restart after a death runs again."""
    from runtime.kernel import WarmKernel

    warm = WarmKernel(warm_code="import numpy\nWARM = True")
    run = tmp_path / "run"
    run.mkdir()
    session = warm.take(run, STARTUP_CODE)
    try:
        assert session is not None
        result = session.execute("import os\nprint(os.getcwd(), WARM, STARTUP_MARKER)")
        assert result.ok and result.output.split() == [str(run.resolve()), "True", "ready"], result.output
        assert session.execute("import os\nos._exit(1)").status == "died"
        again = session.execute("import os\nprint(os.getcwd(), STARTUP_MARKER)")
        assert again.ok and again.output.split() == [str(run.resolve()), "ready"], again.output
    finally:
        session.shutdown()
    warm.discard()  # taken already: nothing left to stop


def test_a_warm_kernel_that_failed_to_start_is_not_handed_out(tmp_path: Path) -> None:
    from runtime.kernel import WarmKernel

    broken = WarmKernel(warm_code="raise RuntimeError('no')")
    assert broken.take(tmp_path, STARTUP_CODE) is None
    unused = WarmKernel()
    unused.discard()  # no track took it (bad input): it returns at once, the start under way stops itself
    unused._thread.join()
    assert not unused.session.alive
    started = WarmKernel()
    started._thread.join()
    assert started.session.alive
    started.discard()  # no track took it: the run ended first
    assert not started.session.alive
