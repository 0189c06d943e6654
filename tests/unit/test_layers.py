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
# the graph's assembly wires the nodes in: it alone stands above the nodes (LangGraph's templates
# keep graph.py beside state.py the same way); the run driver compiles what it builds
ASSEMBLY = {"graph/builder.py"}
# The command line and the bench reach the nodes only through the graph (graph.runner): the
# services they use (reading a task, writing and validating submissions, the report) live below.
# The exceptions plan a run folder by hand with the blueprint's rules: to time a kernel, and to
# compare the pretrained track frozen and fine-tuned under the plan the rules make.
SCRIPTS_USING_NODES = {"scripts/bench_kernel.py": {"nodes.blueprint"}, "scripts/bench_finetune.py": {"nodes.blueprint"}}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


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


def test_scripts_reach_the_nodes_only_through_the_graph():
    uphill = {
        str(path.relative_to(REPO)): sorted(name for name in imported_modules(path) if name.split(".")[0] == "nodes"
                                            and name not in SCRIPTS_USING_NODES.get(str(path.relative_to(REPO)), set()))
        for path in sorted((REPO / "scripts").rglob("*.py"))
    }
    assert {file: names for file, names in uphill.items() if names} == {}


def test_nodes_hold_nodes_only():
    """Every module in nodes/ is a stage (or the track's steps) that the graph's assembly wires in:
    a service that only nodes, scripts or the bench call belongs below, in runtime/ or graph/."""
    wired = {name for name in imported_modules(REPO / "graph" / "builder.py") if name.startswith("nodes.")}
    files = {f"nodes.{path.stem}" for path in (REPO / "nodes").glob("*.py") if path.stem != "__init__"}
    assert files - wired == set()
    assert not [p for p in (REPO / "nodes").iterdir() if p.is_dir() and p.name != "__pycache__"]  # no templates, no data
