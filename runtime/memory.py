"""What a process holds and gives back: its resident memory, its peak over a step, and handing the
heap freed by a step back to the system.

glibc keeps freed pages for reuse, and pyarrow's allocator its own: after a step that built and
dropped large frames (an extra-trees forest, a large table's conversion or profile) a process would
carry hundreds of MB it no longer uses into the rest of the run, and into its peak."""

from __future__ import annotations

import threading


def release_memory() -> None:
    """Hand the heap a step freed back to the system: Python's garbage, glibc's free pages,
    pyarrow's pool (when pyarrow is loaded)."""
    import ctypes
    import gc
    import sys

    gc.collect()
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        try:
            arrow.default_memory_pool().release_unused()
        except AttributeError:  # an older pyarrow
            pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): their allocators differ
        pass


def rss_mb() -> float:
    """This process's resident memory and its children's (joblib / loky workers compute for it too)."""
    import psutil

    process = psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total / 2 ** 20


class PeakMemory:
    """The process's resident memory at its highest while the `with` body runs, sampled every 50 ms."""

    def __init__(self) -> None:
        self.mb = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.mb = max(self.mb, rss_mb())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.mb = max(self.mb, rss_mb())
