"""What a model is shown of code: a module's surface, and source that is never cut mid-function.

- `surface(source)`: the module's docstring, its constants, and each class and function with its
  signature and docstring, bodies replaced by `...` — the part of a recipe a module that extends
  it needs (what each class and hook does), a fraction of its text.
- `whole(source, limit, keep)`: the source as it is when it fits; else the bodies of whole
  functions are left out (signature and docstring kept, `...` for the body) — the longest first,
  never those named in `keep` — and what was left out is said by name. What is shown parses.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from functools import lru_cache

from runtime.python_source import parse

CONSTANT_CHARS = 240  # a module-level constant longer than this is shown by name only


@lru_cache(maxsize=64)
def parsed(source: str) -> ast.Module:
    """The source's syntax tree (read, never changed: shared by the views of one source)."""
    return parse(source)


@lru_cache(maxsize=64)
def surface(source: str, brief: bool = False) -> str:
    """The module as stubs: docstring, imports, constants, classes and functions with signatures
    and docstrings; brief: classes and functions only, each docstring's first sentence. Parses
    as Python."""
    tree = parsed(source)
    lines = source.splitlines()
    out: list[str] = []
    doc = ast.get_docstring(tree, clean=False)
    if doc and not brief:
        out.append(f'"""{doc}"""\n')
    imports = [ast.unparse(n) for n in tree.body
               if isinstance(n, (ast.Import, ast.ImportFrom)) and getattr(n, "module", None) != "__future__"]
    imports = imports if not brief else []
    if imports:
        out.append("\n".join(imports))
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and not brief:
            text = "\n".join(lines[node.lineno - 1:node.end_lineno])
            if len(text) <= CONSTANT_CHARS:
                out.append(text)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(_stub(node, lines, "", brief))
    return "\n\n".join(out).strip() + "\n"


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (or the first paragraph), on one line."""
    flat = " ".join(text.split("\n\n")[0].split())
    end = re.search(r"\.(\s|$)", flat)
    return flat[:end.start() + 1] if end else flat


def _stub(node: ast.AST, lines: list[str], indent: str, brief: bool) -> str:
    header = _header(node, lines, annotated=not brief)
    doc = ast.get_docstring(node, clean=True)
    if brief:  # one line each: the signature, then its docstring's first sentence as a comment
        comment = f"  # {first_sentence(doc)}" if doc else ""
        members = [_stub(n, lines, indent + "    ", brief) for n in getattr(node, "body", [])
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        if isinstance(node, ast.ClassDef) and members:
            return "\n".join([*(indent + h for h in header[:-1]), indent + header[-1] + comment, *members])
        return "\n".join([*(indent + h for h in header[:-1]), indent + header[-1] + " ..." + comment])
    inner = indent + "    "
    body = [f'{inner}"""{_indented(doc, inner)}"""'] if doc else []
    if isinstance(node, ast.ClassDef):
        body += [_stub(n, lines, inner, brief) for n in node.body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    if not body or not isinstance(node, ast.ClassDef):
        body.append(f"{inner}...")
    return "\n".join([*(indent + line for line in header), *body])


def _header(node: ast.AST, lines: list[str], annotated: bool = True) -> list[str]:
    """The decorators and the def / class line, as ast.unparse writes them (comments dropped;
    type annotations too unless annotated)."""
    bare = copy.copy(node)
    bare.body = [ast.Pass()]
    if not annotated and not isinstance(node, ast.ClassDef):
        bare.returns = None
        bare.args = copy.deepcopy(node.args)
        for arg in [*bare.args.posonlyargs, *bare.args.args, *bare.args.kwonlyargs, bare.args.vararg, bare.args.kwarg]:
            if arg is not None:
                arg.annotation = None
    return ast.unparse(bare).splitlines()[:-1]


def _indented(doc: str, inner: str) -> str:
    return doc.replace("\n", "\n" + inner) if "\n" in doc else doc


@dataclass
class Shown:
    """Source as shown to a model, and the functions whose bodies were left out for size."""

    text: str
    left_out: list[str]

    def note(self) -> str:
        if not self.left_out:
            return ""
        functions = [n for n in self.left_out if n != "the module docstring" and not n.startswith(("lines ", "the last "))]
        other = [n for n in self.left_out if n not in functions]
        parts = other + ([f"the bodies of {', '.join(functions)} (signatures and docstrings kept)"] if functions else [])
        return "(left out for size: " + "; ".join(parts) + ")\n"


def whole(source: str, limit: int, keep: tuple[str, ...] = ()) -> Shown:
    """`source` within `limit` characters, never cut mid-function: the bodies of whole functions
    (the longest first, never one named in `keep`, by name or Class.name) are left out until it
    fits (those in `keep` last), then whole top-level statements from the end. Source that does
    not parse is shown up to the limit in whole lines, as written."""
    if len(source) <= limit:
        return Shown(source, [])
    try:
        tree = parsed(source)
    except SyntaxError:
        return _lines_up_to(source, limit)
    lines = source.splitlines()
    doc = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) \
        and isinstance(tree.body[0].value.value, str) else None
    if doc is not None and doc.end_lineno - doc.lineno > 2:  # prose goes first: the code matters more
        source = "\n".join([*lines[:doc.lineno - 1], '"""(the module docstring, left out for size)"""',
                            *lines[doc.end_lineno:]]) + "\n"
        shown = whole(source, limit, keep)
        return Shown(shown.text, ["the module docstring", *shown.left_out])
    kept = lambda name: name in keep or name.split(".")[-1] in keep
    # the longest bodies first; those to keep only when nothing else is left
    functions = sorted(_functions(tree), key=lambda f: (kept(f[0]), -(f[2].end_lineno - f[2].lineno)))
    elided: dict[int, tuple[str, ast.AST, int]] = {}
    size = len(source)
    for name, depth, node in functions:
        if node.end_lineno - node.lineno < 3:
            continue
        if any(node.lineno > n.lineno and node.end_lineno <= n.end_lineno for _, n, _ in elided.values()):
            continue  # inside a body already left out
        elided[node.lineno] = (name, node, depth)
        size -= _saved(lines, node)
        if size <= limit:
            break
    text = _without_bodies(lines, elided)
    if len(text) <= limit:
        return Shown(text, _names(elided))
    return _statements_up_to(text, limit, _names(elided))


def _saved(lines: list[str], node: ast.AST) -> int:
    """Characters leaving out this function's body saves."""
    written = len("\n".join(lines[node.lineno - 1:node.end_lineno]))
    return written - len("\n".join(_body_left_out(lines, node)))


def _body_left_out(lines: list[str], node: ast.AST) -> list[str]:
    """The function as shown without its body: decorators, signature, docstring, `...`."""
    line = lines[node.lineno - 1]
    indent = line[:len(line) - len(line.lstrip())]
    body_indent = indent + "    "
    doc = ast.get_docstring(node, clean=True)
    out = [indent + h for h in _header(node, lines)]
    if doc:
        out.append(f'{body_indent}"""{_indented(doc, body_indent)}"""')
    return [*out, f"{body_indent}...  # body left out for size"]


def _functions(tree: ast.Module) -> list[tuple[str, int, ast.AST]]:
    found = []

    def visit(node: ast.AST, prefix: str, depth: int) -> None:
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, depth, child))
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".", depth + 1)

    visit(tree, "", 0)
    return found


def _without_bodies(lines: list[str], elided: dict[int, tuple[str, ast.AST, int]]) -> str:
    out, skip_until = [], 0
    for i, line in enumerate(lines, start=1):
        if i <= skip_until:
            continue
        if i in elided:
            node = elided[i][1]
            out += _body_left_out(lines, node)
            skip_until = node.end_lineno
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _names(elided: dict[int, tuple[str, ast.AST, int]]) -> list[str]:
    return [name for _, (name, _, _) in sorted(elided.items())]


def _statements_up_to(text: str, limit: int, left_out: list[str]) -> Shown:
    """Whole top-level statements from the start while they fit; the rest named."""
    tree = parse(text)
    lines = text.splitlines()
    kept_end, dropped = 0, []
    for node in tree.body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        size = len("\n".join(lines[:node.end_lineno]))
        if size <= limit and not dropped:
            kept_end = node.end_lineno
        else:
            dropped.append((getattr(node, "name", None), start, node.end_lineno))
    shown = "\n".join(lines[:kept_end]) + "\n"
    if dropped:
        named = [n for n, _, _ in dropped if n]
        what = f"lines {dropped[0][1]}-{dropped[-1][2]}: {len(dropped)} top-level statements"
        left_out = [*left_out, what + (f" ({', '.join(named[:20])})" if named else "")]
    return Shown(shown, left_out)


def _lines_up_to(source: str, limit: int) -> Shown:
    lines = source.splitlines()
    kept, size = [], 0
    for line in lines:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    rest = len(lines) - len(kept)
    return Shown("\n".join(kept) + "\n", [f"the last {rest} lines (the source does not parse, so it is shown in whole lines)"] if rest else [])
