"""How many times slower than free cores this machine computes right now, for tests that give
real work a time budget or a timeout and expect it to fit: they scale the seconds by it.

Measured, not assumed: a fixed piece of pure-Python work runs in one process per core at once,
and the wall time it took against the CPU time it got says what share of the cores the test's
processes (its kernels, its `iml run`) get beside whatever else runs. A free machine reads 1 and
keeps the seconds the tests were written with, so the suite takes no longer there; a machine
shared with two busy processes reads about 2.

- `scaled`: a budget or limit that decides a verdict (a run must score in it), measured at the
  test's own moment.
- `backstop`: a limit that only stops a hang (pytest-timeout's, a subprocess's), measured once
  as the session starts.
- `UNCAPPED`: work whose only clock is a recipe's own is taken off the clock instead.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys

# each process's work: ~0.1 s of CPU on the 2-core machine the tests' budgets were set on
PROBE = """
import time
wall, cpu = time.perf_counter(), time.process_time()
n = 0
for i in range(1_500_000):
    n += i % 7
print(time.perf_counter() - wall, time.process_time() - cpu)
"""
NOISE = 1.25  # below this a machine counts as free: what a free machine reads, give or take

# The neural recipe's time cap per fit is the one recipe param that reads the clock: a busy machine
# trains fewer epochs inside it, so a test whose verdict is a score or two equal fits lifts it (on
# free cores those fits stop on their patience well inside the cap, so lifting it costs no time).
UNCAPPED = {"max_seconds": 1e6}


def slowness() -> float:
    """Wall seconds per CPU second each core's process got now (1.0 when the machine is free)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    probes = [subprocess.Popen([sys.executable, "-I", "-S", "-c", PROBE], stdout=subprocess.PIPE, text=True)
              for _ in range(cores)]
    ratios = []
    for probe in probes:
        out, _ = probe.communicate(timeout=600)
        wall, cpu = map(float, out.split())
        ratios.append(wall / max(cpu, 1e-6))
    ratio = statistics.median(ratios)
    return 1.0 if ratio < NOISE else ratio


@functools.cache
def session_slowness() -> float:
    """`slowness()` as the session started (measured once per process)."""
    return slowness()


def scaled(seconds: float) -> float:
    """`seconds`, set for free cores, stretched by how slow the machine is now."""
    return seconds * slowness()


def scaled_duration(seconds: float) -> str:
    """`scaled(seconds)` written as `iml --time-budget` reads it."""
    return f"{scaled(seconds):.1f}s"


def backstop(seconds: float) -> float:
    """A limit against a hang, set for free cores, stretched by how slow the session found the machine."""
    return seconds * session_slowness()
