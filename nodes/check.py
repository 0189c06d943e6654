"""check: stop broken modules before a full execution.

Static rules run here on the source; the dynamic check runs the modules on a small sample in
the track's kernel (`Harness.check_attempt`). Each failure is one actionable line naming the
module, the line and the rule: the text `debug` receives.
"""

from __future__ import annotations

import ast
import json

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import TrackState
from nodes.track import (
    attempt_dir,
    attempt_params,
    attempt_time,
    attempt_timeout,
    run_in_kernel,
    take_turn,
    write_modules,
)
from prompts.imports import import_problem, module_path
from runtime import budget
from runtime.params import SPACES
from runtime.python_source import parse
from runtime.records import AttemptResult

CONTRACT = {
    "features": {
        "Features": {"__init__": ["self", "task", "profile", "params"], "fit": ["self", "X", "y"], "transform": ["self", "X"]},
    },
    "model": {
        "Model": {"__init__": ["self", "task", "params"], "fit": ["self", "X", "y", "X_valid", "y_valid"], "predict": ["self", "X"]},
    },
}
FORBIDDEN_CALLS = {
    "open": "must not open files; the harness passes the data",
    "eval": "must not use eval",
    "exec": "must not use exec",
    "compile": "must not compile code at run time",
    "input": "must not read input; there is no one to answer",
    "exit": "must not exit; raise an exception instead",
    "quit": "must not exit; raise an exception instead",
    "__import__": "must import with import statements",
    "breakpoint": "must not start a debugger",
}
FORBIDDEN_ATTRS = {
    "system": "must not run shell commands",
    "popen": "must not run shell commands",
    "_exit": "must not exit the process; raise an exception instead",
    "exit": "must not exit; raise an exception instead",
    "remove": "must not delete files",
    "unlink": "must not delete files",
    "rmtree": "must not delete files",
    "read_csv": "must not read files; the harness passes the data",
    "read_parquet": "must not read files; the harness passes the data",
    "to_csv": "must not write files; the harness saves predictions",
    "read_text": "must not read files; the harness passes the data",
    "write_text": "must not write files",
    "savetxt": "must not write files",
    "loadtxt": "must not read files; the harness passes the data",
}
# `remove`/`exit` are common method names (list.remove); only flag them on these modules.
MODULE_ONLY_ATTRS = {"remove": {"os"}, "unlink": {"os"}, "exit": {"sys", "os"}}


def check(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    folder = attempt_dir(state)
    write_modules(folder, state["code"])
    problems = static_problems(state["code"])
    slow, fold_s = None, None
    if not problems:
        take_turn(state, ctx)  # before the timeout is reckoned: the clock runs while it waits
        problems, timing = dynamic_problems(state, ctx)
        if not problems and timing:
            # held against the seconds the attempt has now, after its check
            slow, fold_s = time_verdict(state, ctx, timing)
    if not problems and slow is None:
        return {"last_error": None}
    message = slow or "\n".join(problems)
    (folder / "log.txt").write_text("check failed:\n" + message + "\n")
    result = AttemptResult(
        track=state["plan"].track,
        attempt=state["attempt"],
        source=state["source"],
        # too slow before any fold: a timeout like one the harness measures, with its fold's seconds
        status="timeout" if slow else "check_failed",
        error=message,
        params=attempt_params(state),
        dir=str(folder),
        member=state.get("member"),
        fit_seconds=fold_s,
    )
    (folder / "result.json").write_text(result.model_dump_json(indent=2))
    runtime.context.events.emit("attempt", track=result.track, attempt=result.attempt, status=result.status, error=message[:300])
    return {"last_error": message, "attempts": [result]}


def parse_module(source: str, module: str) -> ast.Module:
    return parse(source, filename=f"{module}.py")


def static_problems(code: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for module, classes in CONTRACT.items():
        source = code.get(module)
        if source is None:
            problems.append(f"{module}.py: missing; a track's solution is features.py and model.py")
            continue
        try:
            tree = parse_module(source, module)
        except SyntaxError as e:
            problems.append(f"{module}.py line {e.lineno}: syntax error: {e.msg}")
            continue
        problems += _contract_problems(module, tree, classes)
        problems += _safety_problems(module, tree)
    return problems


def _contract_problems(module: str, tree: ast.Module, classes: dict[str, dict[str, list[str]]]) -> list[str]:
    problems = []
    defined = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for cls, methods in classes.items():
        node = defined.get(cls)
        if node is None:
            problems.append(f"{module}.py: class {cls} is missing; the contract requires it at module level")
            continue
        funcs, complete = class_methods(tree, node)
        for name, expected in methods.items():
            func = funcs.get(name)
            if func is None and not complete:
                continue  # inherited from a class read nowhere here: the dynamic check calls it
            if func is None:
                problems.append(f"{module}.py line {node.lineno}: {cls}.{name} is missing; expected def {name}({', '.join(expected)})")
                continue
            args = [a.arg for a in func.args.args]
            required = len(args) - len(func.args.defaults)
            if args[: len(expected)] != expected or required > len(expected):
                problems.append(
                    f"{module}.py line {func.lineno}: {cls}.{name}({', '.join(args)}) does not match the contract {name}({', '.join(expected)})"
                )
    return problems


def class_methods(tree: ast.Module, node: ast.ClassDef, depth: int = 0) -> tuple[dict[str, ast.FunctionDef], bool]:
    """A class's methods, its own and those it inherits from classes defined in the same module
    or imported from iML's modules for generated code (a recipe's Features, EstimatorModel), the
    nearest definition first; and whether every base class could be read."""
    funcs = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
    complete = True
    for base in node.bases:
        found = _base_class(tree, base) if depth < 8 else None
        if found is None:
            complete = False
            continue
        inherited, whole = class_methods(*found, depth + 1)
        complete &= whole
        for name, func in inherited.items():
            funcs.setdefault(name, func)
    return funcs, complete


def _base_class(tree: ast.Module, base: ast.expr) -> tuple[ast.Module, ast.ClassDef] | None:
    """(the module's tree, the class) a base expression names: `Name` (a class of this module
    or one imported from an iML module) or `module.Name` (an imported iML module)."""
    if isinstance(base, ast.Name):
        local = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == base.id), None)
        if local is not None:
            return tree, local
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    if (alias.asname or alias.name) == base.id:
                        return _class_in(node.module, alias.name)
    elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
        for node in tree.body:
            names = node.names if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            for alias in names:
                if (alias.asname or alias.name.split(".")[0]) == base.value.id:
                    module = alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
                    return _class_in(module, base.attr)
    return None


def _class_in(module: str, name: str) -> tuple[ast.Module, ast.ClassDef] | None:
    path = module_path(module)
    if path is None:
        return None
    tree = parse_module(path.read_text(), module)
    found = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    return (tree, found) if found is not None else None


def _guarded_imports(tree: ast.Module) -> set[int]:
    """Imports inside `try: ... except ImportError` (or ModuleNotFoundError): optional backends
    the code handles being absent, so an absent package there is no problem."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = {h.type.id for h in node.handlers if isinstance(h.type, ast.Name)}
            caught |= {e.id for h in node.handlers if isinstance(h.type, ast.Tuple) for e in h.type.elts if isinstance(e, ast.Name)}
            if caught & {"ImportError", "ModuleNotFoundError"}:
                guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return guarded


def _safety_problems(module: str, tree: ast.Module) -> list[str]:
    problems = []
    guarded = _guarded_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            problems.append(f"{module}.py line {node.lineno}: a relative import: import modules by their full name")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, why in _import_problems(node, id(node) in guarded):
                problems.append(f"{module}.py line {node.lineno}: import {name}: {why}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                problems.append(f"{module}.py line {node.lineno}: {func.id}() is not allowed: generated code {FORBIDDEN_CALLS[func.id]}")
            elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_ATTRS:
                owner = func.value.id if isinstance(func.value, ast.Name) else None
                allowed_owners = MODULE_ONLY_ATTRS.get(func.attr)
                if allowed_owners is None or owner in allowed_owners:
                    problems.append(f"{module}.py line {node.lineno}: .{func.attr}() is not allowed: generated code {FORBIDDEN_ATTRS[func.attr]}")
    return problems


def _import_problems(node: ast.Import | ast.ImportFrom, guarded: bool) -> list[tuple[str, str]]:
    """(name, why) for each module the statement imports that generated code may not."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [(n, why) for n in names if (why := import_problem(n, guarded))]
    why = import_problem(node.module or "", guarded)
    # `from runtime import images`, `from prompts.recipes.traditional import features`: submodules
    if why and all(import_problem(f"{node.module}.{a.name}", guarded) is None for a in node.names):
        return []
    return [(node.module or "", why)] if why else []


def dynamic_problems(state: TrackState, ctx: RunContext) -> tuple[list[str], dict | None]:
    """The problems the modules show on a small sample in the kernel, and (when there are none)
    the time one fold's fit is predicted to take (runtime/harness.py `_fit_timing`)."""
    folder = attempt_dir(state)
    recipe = "fallback" if state.get("source") == "fallback" else state.get("member") or state["plan"].track
    own = attempt_params(state)
    params = SPACES[recipe].for_check(own) if recipe in SPACES else own
    probe = {"params": own, **budget.probe(attempt_time(state, ctx), state.get("source", ""))}
    code = (f"H.check_attempt({str(folder)!r}, json.loads({json.dumps(params)!r}), "
            f"probe=json.loads({json.dumps(probe, default=str)!r}))")
    written = folder / "check.json"
    written.unlink(missing_ok=True)  # what an earlier check of this attempt wrote (a resumed run) is not this one's
    outcome = run_in_kernel(state, ctx, code, timeout=attempt_timeout(state, ctx, check=True))
    report = json.loads(written.read_text()) if written.exists() else {}
    timing = report.get("timing")
    if outcome.status == "timeout" and report.get("problems") == [] and timing and "probing" in timing:
        # the modules passed; the cell's time ran out while one fit was timed: that fit alone took longer
        return [], budget.cut_short(timing, outcome.duration_s)
    if outcome.error:
        return [f"dynamic check on a small sample failed: {outcome.error}"], None
    return report["problems"], timing


def time_verdict(state: TrackState, ctx: RunContext, timing: dict) -> tuple[str | None, float | None]:
    """What the check says of the attempt's time (runtime/budget.py `too_slow`), and the fold's
    predicted seconds; said in the run's events either way."""
    time = attempt_time(state, ctx)
    fold_s = budget.predicted_fold_s(timing, time.n_folds)
    slow = budget.too_slow(timing, time)
    ctx.events.emit("check_time", track=state["plan"].track, attempt=state["attempt"], source=state.get("source"),
                    fold_s=None if fold_s is None else round(fold_s, 3), allowed_fold_s=round(time.first_cut_fold_s, 3),
                    setup_s=timing.get("setup_s"), points=timing.get("points"), exponent=timing.get("exponent"),
                    probe_s=timing.get("probe_s"), too_slow=slow is not None, error=timing.get("error"))
    return slow, fold_s
