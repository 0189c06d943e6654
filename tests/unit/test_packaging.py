import tomllib
from pathlib import Path

import graph
import nodes
import prompts
import runtime

REPO = Path(__file__).resolve().parents[2]


def test_top_level_packages_come_from_this_repository():
    for package in (graph, nodes, prompts, runtime):
        assert Path(package.__file__).resolve().parent.parent == REPO, package.__file__


def test_the_distribution_installs_exactly_the_project_packages():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert sorted(packages) == ["graph", "nodes", "prompts", "runtime", "scripts"]
    assert "tests" not in packages
    assert config["project"]["scripts"]["iml"] == "scripts.cli:main"


def test_langgraph_json_points_at_a_graph_without_checkpointer():
    import json

    from graph.builder import graph as served

    spec = json.loads((REPO / "langgraph.json").read_text())
    assert spec["graphs"]["iml"] == "./graph/builder.py:graph"
    assert served.checkpointer is None

