"""Parsing Python source from several threads at once: the tracks' checks and prompts do.

CPython 3.11 keeps the depth of the syntax tree it is building in state every thread shares; a
thread switch in the middle of one `ast.parse` (a finalizer run by the garbage collector) lets
another parse change it, and the first fails with "SystemError: AST constructor recursion depth
mismatch". A recorded run with a real model died of it: one track's check parsed its modules
while the other track's prompt parsed a recipe's surface."""

from __future__ import annotations

import gc
import re
import sys
import threading
from pathlib import Path

from runtime.python_source import parse

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("graph", "nodes", "prompts", "runtime", "scripts")


class Garbage:
    """A cycle with a finalizer: collecting it runs Python code, where threads switch."""

    def __init__(self):
        self.me = self

    def __del__(self):
        sum(range(50))


def test_parses_from_many_threads_at_once_never_fail():
    source = (ROOT / "prompts" / "recipes" / "traditional" / "features.py").read_text()
    failures: list[str] = []

    def work():
        for _ in range(100):
            for _ in range(200):
                Garbage()
            try:
                parse(source)
            except SystemError as e:  # what an unlocked ast.parse raised here within a second
                failures.append(str(e))
                return

    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 5, 5)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert failures == []


def test_every_parse_of_iml_goes_through_the_one_lock():
    direct = [f"{path.relative_to(ROOT)}:{n}"
              for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
              if path != ROOT / "runtime" / "python_source.py"
              for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\bast\.parse\(", line)]
    assert direct == []
