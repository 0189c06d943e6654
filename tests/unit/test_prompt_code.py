"""What the coder, debugger and refiner are shown of code: whole functions, never code cut in the
middle; the recipes as a library (their surface, their params with the plan's labelled); one list
of imports, which every code block shown obeys; and the small facts the analyst and the planner
read (candidate targets' values, how time shares are rescaled)."""

import ast
import re

import pytest
from conftest import contract_example
from test_llm_prompts import text, wide_profile

from graph.llm import TrackProposal
from nodes.analyze import candidate_values
from prompts import MODULES, RECIPES_DIR, recipe_tracks, render_member, render_recipe
from prompts.imports import (
    LIBRARIES,
    import_problem,
    imports_text,
    module_path,
    recipe_modules,
)
from prompts.render import (
    analyze_messages,
    blueprint_messages,
    contract_text,
    debug_messages,
    generate_messages,
    load_template,
    refine_messages,
)
from prompts.surface import surface, whole
from runtime.params import SPACES
from runtime.records import AttemptResult
from runtime.task_files import locate_files

CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# names a model has reached for that are not on the list (installed here or not)
NOT_ON_THE_LIST = ("sentence_transformers", "SentenceTransformer", "timm", "torchvision", "xgboost", "tensorflow", "keras")

EXTENDS = contract_example()  # the contract's example of a module that extends a recipe
# a long generated module: 300 functions of a few lines each, so showing it means leaving some out
LONG = "import numpy as np\n\n\n" + "\n\n".join(
    f"def step_{i}(x):\n    \"\"\"Step {i}.\"\"\"\n    y = np.asarray(x) + {i}\n    z = y * 2\n    return z - {i}\n"
    for i in range(300)) + "\n\nclass Features:\n    def __init__(self, task, profile, params):\n        self.p = params\n"
BROKEN = "class Model:\n    def fit(self, X, y\n" + "    x = 1\n" * 3000


def code_variants() -> dict[str, dict[str, str]]:
    variants = {f"recipe {t}": render_recipe(t) for t in sorted(recipe_tracks())}
    variants["member linear"] = render_member("linear")
    variants["extends a recipe"] = {"features": EXTENDS, "model": render_recipe("traditional")["model"]}
    variants["long and broken"] = {"features": LONG, "model": BROKEN}
    return variants


def errors() -> dict[str, str]:
    recipe_file = RECIPES_DIR / "traditional" / "features.py"
    return {
        "in features": 'Traceback (most recent call last):\n  File "/run/tracks/t/attempt_1/features.py", line 40, in fit\nKeyError: \'x\'',
        "through a recipe": (f'Traceback (most recent call last):\n  File "/run/tracks/t/attempt_2/features.py", line 9, in fit\n'
                             f'  File "{recipe_file}", line {_line_of(recipe_file, "fit_text")}, in fit_text\nValueError: empty'),
        "huge": "Traceback\n" * 10_000,
    }


def _line_of(path, name: str) -> int:
    tree = ast.parse(path.read_text())
    return next(n.lineno + 3 for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


def every_prompt(task, profile, blueprint):
    attempts = [AttemptResult(track="t", attempt=1, source="llm", status="error", error="KeyError: 'x'", dir=".")]
    for track in ("traditional", "pretrained", "neural", "nosuchtrack"):
        plan = blueprint.tracks[0].model_copy(update={"track": track, "params": {"learning_rate": 0.1, "seed": 0}})
        yield f"generate {track}", generate_messages(task, profile, plan, attempts)
        for name, code in code_variants().items():
            yield f"refine {track} {name}", refine_messages(task, profile, plan, code, 0.5, attempts=attempts)
            for why, error in errors().items():
                yield f"debug {track} {name} {why}", debug_messages(task, profile, plan, code, error, attempts, attempt=1)


@pytest.mark.parametrize("wide", [False, True], ids=["profile", "500 columns"])
def test_no_prompt_shows_code_cut_mid_function(grounded, wide):
    """Every Python block any coder, debugger or refiner prompt shows parses: code is whole, or
    whole functions are left out by name. A module that does not parse is shown as text."""
    _, task, profile, blueprint = grounded
    profile = wide_profile() if wide else profile
    shown = 0
    for label, msgs in every_prompt(task, profile, blueprint):
        body = text(msgs)
        for block in CODE_BLOCK.findall(body):
            try:
                ast.parse(block)
            except SyntaxError as e:
                pytest.fail(f"{label}: a code block does not parse ({e}):\n{block[:500]}")
            shown += 1
        if "long and broken" in label:
            assert "model.py does not parse (line 2" in body and "```text\n" in body, label
            assert "left out for size" in body and "step_0" in body, label  # the long module: named, not cut
    assert shown > 100


def test_the_imports_shown_are_the_list_the_check_enforces(grounded):
    """Every import in every code block shown is one the static check accepts; the contract states
    the list once, with every library on it; no prompt names a library the list lacks."""
    _, task, profile, blueprint = grounded
    contract = contract_text()
    assert contract.count("What a module may import") == 1 and imports_text() in contract
    for top, what in LIBRARIES.items():
        assert what in contract, top
    for label, msgs in every_prompt(task, profile, blueprint):
        body = text(msgs)
        assert body.count("What a module may import") == 1, label
        for name in NOT_ON_THE_LIST:
            assert not re.search(rf"\b{name}\b", body), (label, name)
        for block in CODE_BLOCK.findall(body):
            for node in ast.walk(ast.parse(block)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module != "__future__" else []
                for name in names:
                    assert import_problem(name) is None, (label, name, import_problem(name))


def _defs(tree: ast.Module):
    """Module-level functions and classes, and the methods of those classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            yield node
        if isinstance(node, ast.ClassDef):
            yield from (n for n in node.body if isinstance(n, ast.FunctionDef))


def test_every_recipe_hook_says_what_it_does_and_the_surface_shows_it():
    for name in [*recipe_modules(), "runtime.recipe_steps"]:
        source = module_path(name).read_text()
        shown = surface(source)
        ast.parse(shown)
        for node in _defs(ast.parse(source)):
            if node.name == "__init__":
                continue
            doc = ast.get_docstring(node)
            assert doc, f"{name}: {node.name} has no docstring"
            keyword = "class" if isinstance(node, ast.ClassDef) else "def"
            assert re.search(rf"{keyword} {node.name}\b", shown) and doc.splitlines()[0] in shown, (name, node.name)
        assert len(shown) < len(source), name


def test_the_coder_sees_each_recipe_whole_as_a_library_with_its_params_labelled(grounded):
    _, task, profile, blueprint = grounded
    for track in ("traditional", "pretrained", "neural"):
        plan = blueprint.tracks[0].model_copy(update={"track": track, "params": {
            "seed": 3, "max_train_rows": 500, "drop_columns": ["a"], "coerce_columns": {"b": "categorical"}}})
        body = text(generate_messages(task, profile, plan))
        for module in MODULES:
            assert f"### prompts.recipes.{track}.{module}" in body
        lines = {line.split()[0]: line for line in body.splitlines() if line.startswith("  ") and line.split()}
        for param in SPACES[track]:
            assert param.name in lines, (track, param.name)
        assert "the plan's: 3" in lines["seed"] and "the plan's: 500" in lines["max_train_rows"]
        # what the harness does with its params is said, so that the code does not do it again
        # (told only that the harness "reads" drop_columns, a real model dropped them itself)
        assert "no code needed" in lines["max_train_rows"] and "sample" in lines["max_train_rows"]
        assert "gone from X and from profile['columns']" in lines["drop_columns"]
        assert "no code needed" in lines["drop_columns"] and "no code needed" in lines["coerce_columns"]
        unset = next(p.name for p in SPACES[track] if p.name != "seed")
        assert "default:" in lines[unset] and "the plan's" not in lines[unset], lines[unset]
        assert "prompts.recipes.members.linear.model" in body  # the other recipes, by import name
    assert "SentenceTransformer" not in load_template("generate")["track:pretrained"]


def test_the_refiner_sees_an_unchanged_recipe_as_its_surface_and_a_debugger_its_code(grounded):
    _, task, profile, blueprint = grounded
    plan = blueprint.tracks[0]
    code = render_member("knn")
    refine = text(refine_messages(task, profile, plan, code, 0.5))
    assert "the recipe module `prompts.recipes.members.knn.model`, unchanged" in refine
    assert "def _loo_mix(self, X, y: np.ndarray, k: int) -> float:" in refine and "np.add.at" not in refine
    assert "n_neighbors" in refine and "this attempt's" in refine  # the member's own params, not the track's
    error = errors()["through a recipe"]
    debug = text(debug_messages(task, profile, plan, code, error, attempt=2))
    assert "np.add.at" in debug  # the failing code itself
    # the recipe function the traceback passes through, whole
    assert "prompts.recipes.traditional.features, `fit_text`" in debug and "self.text_model = self._linear_model().fit(M, target)" in debug
    extends = text(refine_messages(task, profile, plan, {"features": EXTENDS, "model": code["model"]}, 0.5))
    assert "It extends `prompts.recipes.traditional.features`" in extends and "def fit_target_encoding" in extends


def test_whole_leaves_out_whole_functions_and_says_which():
    source = (RECIPES_DIR / "traditional" / "features.py").read_text()
    shown = whole(source, 9_000, keep=("fit_text",))
    assert len(shown.text) <= 9_000 and ast.parse(shown.text)
    assert "the module docstring" in shown.left_out and "Features.fit_text" not in shown.left_out
    assert "self.text_model = self._linear_model().fit(M, target)" in shown.text  # kept whole
    for name in shown.left_out[1:]:
        method = name.split(".")[-1]
        assert f"def {method}(" in shown.text  # its signature stays
    assert whole(source, len(source)).text == source and whole(source, len(source)).left_out == []


def test_the_analyst_sees_each_candidate_targets_values_and_counts(grounded):
    import pandas as pd

    task_dir, *_ = grounded
    files = locate_files(task_dir)
    train_cols = list(pd.read_csv(files.train, nrows=0).columns)
    test_cols = list(pd.read_csv(files.test, nrows=0).columns)
    candidates = candidate_values(files.train, train_cols, test_cols, None)
    assert list(candidates) == ["outcome"]
    body = text(analyze_messages(task_dir, "", train_cols, test_cols, None, candidates))
    counts = pd.read_csv(files.train)["outcome"].value_counts()
    assert f"- outcome: 2 distinct values in {counts.sum()} rows read: " in body
    for value, n in counts.items():
        assert f"{value}: {n}" in body


def test_the_planners_schema_prompt_and_merge_keep_the_reserves_alike(grounded):
    """The LLM's shares count by their ratios and split the tracks' part of the budget, the part
    the rules' draft leaves beside the reserves for refine and for the ensemble and submission
    (runtime/budget.py): the schema, the prompt and the merge say and do the same."""
    from graph.context import Settings
    from nodes.blueprint import make_blueprint, merge_llm_plan
    from runtime.budget import final_reserve_s, refine_reserve_s, tracks_part

    _, task, profile, _ = grounded
    blueprint = make_blueprint(task, profile, Settings(), budget_s=600)
    part = tracks_part(blueprint)
    assert part < 1.0  # the draft keeps the reserves
    said = "rescaled to split the tracks' part of the budget, which keeps the reserves for refine and for the ensemble and submission"
    assert said in TrackProposal.model_fields["time_share"].description
    planner = " ".join(text(blueprint_messages(task, profile, blueprint, [p.track for p in blueprint.tracks])).split())
    assert said in planner and "sum to 1" not in planner
    assert f"The tracks split {part:.0%} of it" in planner
    proposal = TrackProposal(track=blueprint.tracks[0].track, reason="r", model_family="m", time_share=0.3)
    merged = merge_llm_plan(type("P", (), {"tracks": [proposal], "validation": None, "notes": ""})(), blueprint)
    assert sum(t.time_share for t in merged.tracks) == pytest.approx(part, abs=1e-3)
    reserves = final_reserve_s(600, Settings(), profile.n_train + profile.n_test) + refine_reserve_s(600, Settings())
    assert sum(t.time_share for t in merged.tracks) * 600 <= 600 - reserves + 1


def test_a_module_extending_a_recipe_gets_its_own_encode_cache_only_when_encode_changes():
    """The harness keys cached encodings by encode and what it reaches: an override of a step
    encode calls is a new encoding; an override of fit is not."""
    from runtime.harness import encode_source, load_module

    base = load_module("features", RECIPES_DIR / "traditional" / "features.py").Features

    class Images(base):
        def _image_features(self, pixels):
            return pixels.reshape(len(pixels), -1)

    class Fits(base):
        def fit(self, X, y):
            return self

    assert encode_source(Fits) == encode_source(base)
    assert encode_source(Images) != encode_source(base)
