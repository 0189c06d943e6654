"""Python source parsed into a syntax tree, one thread at a time.

CPython 3.11 counts the depth of the syntax tree it is building in state that all threads
share, so two `ast.parse` calls at once (one track's check while another track's prompt reads a
recipe's surface) can fail with "SystemError: AST constructor recursion depth mismatch"
(python/cpython#106905). Every parse in iML goes through here, under one lock.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse(source, filename)`, never at the same time as another parse of iML's."""
    with _LOCK:
        return ast.parse(source, filename=filename)
