"""solution.py is built from the functions the harness and submit run, never from copies: a
function re-implemented in solution.py's own text, or a harness function it calls without
inlining it, fails here."""

from __future__ import annotations

import ast
import inspect

from nodes import solution
from runtime import data, harness, params, submission


def _defined(source: str) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _called(source: str) -> set[str]:
    return {n.func.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _framework_names() -> set[str]:
    return set().union(*(_defined(inspect.getsource(m)) for m in (data, harness, submission, params)))


def test_solution_text_defines_nothing_the_framework_defines():
    own = _defined(solution.BODY) | _defined(solution.MAIN)
    assert not own & _framework_names(), own & _framework_names()


def test_every_harness_function_solution_calls_is_inlined_from_its_source():
    called = _called(solution.BODY) | _called(solution.MAIN)
    parts = solution.harness_functions()
    for name in called & _defined(inspect.getsource(harness)):
        assert name in solution.HARNESS_PARTS, f"solution.py calls harness.{name} without inlining it"
    for name in solution.HARNESS_PARTS:
        if name != "MULTI":
            assert inspect.getsource(getattr(harness, name)) in parts, name
    inlined = solution.inlined(data) + solution.inlined(submission)
    for name in called & (_defined(inspect.getsource(data)) | _defined(inspect.getsource(submission))):
        assert f"def {name}(" in inlined, name


def test_the_run_and_the_script_share_the_loop_over_folds():
    assert "fold_fits(" in inspect.getsource(harness.Harness._run_attempt)
    assert "fold_fits(" in solution.BODY and "join_encoded(" in solution.BODY
    assert "join_encoded(" in inspect.getsource(harness.Harness._with_encoding)


def test_the_modules_the_recipes_import_are_installed_in_the_script():
    part = solution.runtime_part({"images": None})
    assert "runtime.params" in part and "runtime.images" not in part
    assert "runtime.images" in solution.runtime_part({"images": {"train_pattern": "x"}})
    namespace: dict = {}
    exec(compile("import sys, types\n" + part, "<part>", "exec"), namespace)  # noqa: S102 - our own source
    import sys

    module = sys.modules["runtime.params"]
    assert module.SPACES["traditional"].defaults(module.Data(n=100))["num_leaves"] == 15
    sys.modules["runtime.params"] = params  # the real one back for the other tests
