"""solution.py is built from the modules the harness and submit run, whole, never from copies
or picked parts: a function re-implemented in solution.py's own text, or a framework function it
calls that no inlined module defines, fails here."""

from __future__ import annotations

import ast
import inspect

from runtime import data, fold_loop, harness, params, solution, submission


def _defined(source: str) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _called(source: str) -> set[str]:
    return {n.func.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _framework_names() -> set[str]:
    return set().union(*(_defined(inspect.getsource(m)) for m in (data, fold_loop, harness, submission, params)))


def _inlined_text() -> str:
    return "\n\n".join(solution.inlined(name) for name in solution.INLINED)


def test_solution_text_defines_nothing_the_framework_defines():
    own = _defined(solution.BODY) | _defined(solution.MAIN)
    assert not own & _framework_names(), own & _framework_names()


def test_every_framework_function_solution_calls_is_inlined():
    called = _called(solution.BODY) | _called(solution.MAIN)
    text = _inlined_text()
    assert called & _defined(inspect.getsource(fold_loop)), "the script runs the fold loop"
    for name in called & _framework_names():
        assert f"def {name}(" in text or f"class {name}" in text, f"solution.py calls {name} without inlining it"


def test_the_fold_loop_is_inlined_as_the_whole_module():
    text = _inlined_text()
    tree = ast.parse(inspect.getsource(fold_loop))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            assert inspect.getsource(getattr(fold_loop, node.name)) in text, node.name
        elif isinstance(node, ast.Assign):
            assert ast.get_source_segment(inspect.getsource(fold_loop), node) in text
    assert "from runtime" not in text and "import runtime" not in text  # its imports of iML are the inlined modules


def test_inlining_reads_the_fold_loop_without_importing_sklearn():
    """The framework's process renders solution.py without sklearn (~60 MB): the modules are read, not imported."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom runtime.solution import INLINED, inlined\n"
            "assert 'def fold_fits(' in ''.join(inlined(n) for n in INLINED)\n"
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_run_and_the_script_share_the_loop_over_folds():
    assert "fold_fits(" in inspect.getsource(harness.Harness._run_attempt)
    assert "fold_fits(" in solution.BODY and "join_encoded(" in solution.BODY
    assert "join_encoded(" in inspect.getsource(harness.Harness._with_encoding)


def test_the_modules_the_recipes_import_are_installed_in_the_script():
    part = solution.runtime_part({"images": None})
    installed = "sys.modules[{!r}] = "
    assert installed.format("runtime.params") in part and installed.format("runtime.recipe_steps") in part
    assert installed.format("runtime.images") not in part
    assert installed.format("runtime.images") in solution.runtime_part({"images": {"train_pattern": "x"}})
    # a member that extends a recipe: that recipe module is carried too, after what it imports
    from prompts.imports import library_modules  # what submit hands render_solution (the recipes sit above runtime)

    extends = "from prompts.recipes.members.linear.features import Features as Base\n\nclass Features(Base):\n    pass\n"
    library = library_modules([extends])
    assert list(library) == ["runtime.params", "runtime.recipe_steps", "prompts.recipes.members.linear.features"]
    names = list(library)
    import sys

    saved = {name: sys.modules.get(name) for name in (*names, "prompts.recipes", "prompts.recipes.members",
                                                       "prompts.recipes.members.linear")}
    try:
        exec(compile("import sys, types\n" + solution.runtime_part({"images": None}, library), "<part>", "exec"), {})  # noqa: S102
        module = sys.modules["runtime.params"]
        assert module is not params and module.SPACES["traditional"].defaults(module.Data(n=100))["num_leaves"] == 15
        namespace: dict = {}
        exec(compile(extends, "<features>", "exec"), namespace)  # noqa: S102 - the member's module, as solution.py runs it
        assert namespace["Features"].__mro__[1] is sys.modules["prompts.recipes.members.linear.features"].Features
    finally:  # the real modules back for the other tests
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
