"""What this machine offers the kernels: how many may compute at once, and whether a GPU is there.

Read without importing torch (seconds of import time) and cached, so every stage may ask.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator


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
