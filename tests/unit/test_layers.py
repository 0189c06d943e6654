"""The layers point down: scripts -> nodes -> prompts -> graph -> runtime. Read from the source's
own import statements (every one, at any depth: a function-level import is an import too)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# each package and the packages above it, which it must never import
ABOVE = {
    "runtime": {"graph", "nodes", "prompts", "scripts"},
    "graph": {"nodes", "prompts", "scripts"},
    "prompts": {"nodes", "scripts"},
    "nodes": {"scripts"},
}
# the graph's assembly wires the nodes in, and the run driver compiles that graph: they alone
# stand above the nodes (LangGraph's templates keep graph.py beside state.py the same way)
ASSEMBLY = {"graph/builder.py", "graph/runner.py"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_scan_sees_function_level_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from graph.state import IMLState\n    import nodes.track\n")
    assert imported_packages(source) == {"os", "graph", "nodes"}


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_package_imports_nothing_above_it(package):
    uphill = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & ABOVE[package])
        for path in sorted((REPO / package).rglob("*.py"))
        if str(path.relative_to(REPO)) not in ASSEMBLY
    }
    assert {file: names for file, names in uphill.items() if names} == {}
