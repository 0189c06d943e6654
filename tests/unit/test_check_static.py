from conftest import contract_example

from nodes.check import static_problems
from prompts import (
    FALLBACK,
    member_recipes,
    recipe_tracks,
    render_member,
    render_recipe,
)


def test_every_recipe_passes_the_static_check():
    """The recipes obey the one list of what generated code may import (prompts/imports.py)."""
    for track in sorted(recipe_tracks()) + [FALLBACK]:
        assert static_problems(render_recipe(track)) == [], track
    for member in sorted(member_recipes()):
        assert static_problems(render_member(member)) == [], member


def _with(module: str, source: str) -> dict:
    code = render_recipe("traditional")
    code[module] = source
    return code


def test_syntax_error_names_module_and_line():
    problems = static_problems(_with("model", "class Model:\n    def fit(self\n"))
    assert problems == ["model.py line 2: syntax error: '(' was never closed"]


def test_missing_class_and_method_and_wrong_signature():
    assert any("class Model is missing" in p for p in static_problems(_with("model", "x = 1\n")))
    src = "class Features:\n    def __init__(self, task, profile, params): pass\n    def fit(self, X, y): return self\n"
    assert any("Features.transform is missing" in p for p in static_problems(_with("features", src)))
    src = render_recipe("neural")["model"].replace("def predict(self, X)", "def predict(self, X, extra)")
    assert any("Model.predict(self, X, extra) does not match" in p for p in static_problems(_with("model", src)))


def test_forbidden_calls_and_imports():
    base = render_recipe("traditional")["features"]
    cases = {
        "import subprocess\n": "import subprocess",
        "import requests\n": "must not use the network",
        "import not_a_real_package_xyz\n": "is not installed",
        "X = open('/etc/passwd').read()\n": "open() is not allowed",
        "import pandas as pd\nX = pd.read_csv('train.csv')\n": ".read_csv() is not allowed",
        "import os\nos._exit(1)\n": "._exit() is not allowed",
        "import os\nos.system('ls')\n": ".system() is not allowed",
        "eval('1')\n": "eval() is not allowed",
        # the one list of what generated code may import (prompts/imports.py)
        "from runtime.harness import fit_fold\n": "is iML's own code",
        "import prompts.render\n": "is iML's own code",
        "from prompts.recipes.nowhere.features import Features\n": "does not exist",
        "try:\n    import timm\nexcept ImportError:\n    timm = None\n": "not among the libraries",
        "import sentence_transformers\n": "not among the libraries",
        "from . import model\n": "relative import",
        "import shutil\n": "must not move or delete files",
    }
    for snippet, expected in cases.items():
        problems = static_problems(_with("features", snippet + base))
        assert any(expected in p and "line" in p for p in problems), (snippet, problems)


def test_ordinary_method_names_are_not_flagged():
    src = render_recipe("traditional")["features"] + "\ncols = ['a']\ncols.remove('a')\n"
    assert static_problems(_with("features", src)) == []


EXTENDS = contract_example()  # the contract's example of a module that extends a recipe


def test_a_module_that_extends_a_recipe_inherits_its_contract():
    """A subclass of a recipe's class need not repeat the methods it keeps: the check reads them
    from the recipe; an override still has to match the contract."""
    assert static_problems(_with("features", EXTENDS)) == []
    model = "from runtime.recipe_steps import EstimatorModel\n\nclass Model(EstimatorModel):\n    def fit(self, X, y, X_valid=None, y_valid=None):\n        return self\n"
    assert static_problems(_with("model", model)) == []
    bad = EXTENDS + "\n    def transform(self, X, extra):\n        return X\n"
    assert any("Features.transform(self, X, extra) does not match" in p for p in static_problems(_with("features", bad)))
    # a base read nowhere (a local alias of a library class): the dynamic check calls what it lacks
    vague = "import pandas as pd\n\nclass Features(pd.DataFrame):\n    pass\n"
    assert not any("Features." in p for p in static_problems(_with("features", vague)))
    # nothing to inherit from: the methods are missing
    plain = "class Base:\n    pass\n\nclass Features(Base):\n    pass\n"
    assert any("Features.fit is missing" in p for p in static_problems(_with("features", plain)))


def test_only_the_listed_imports_pass():
    base = render_recipe("traditional")["features"]
    allowed = ["from prompts.recipes.members.linear.features import Features as Linear\n",
               "from runtime import images\n", "import runtime.recipe_steps as steps\n", "import os, json\n"]
    for snippet in allowed:
        assert static_problems(_with("features", snippet + base)) == [], snippet
