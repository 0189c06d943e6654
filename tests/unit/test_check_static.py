from nodes.check import static_problems
from prompts import FALLBACK, recipe_tracks, render_recipe


def test_every_recipe_passes_the_static_check():
    for track in sorted(recipe_tracks()) + [FALLBACK]:
        assert static_problems(render_recipe(track)) == [], track


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
    src = render_recipe("traditional")["model"].replace("def predict(self, X)", "def predict(self, X, extra)")
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
    }
    for snippet, expected in cases.items():
        problems = static_problems(_with("features", snippet + base))
        assert any(expected in p and "line" in p for p in problems), (snippet, problems)


def test_ordinary_method_names_are_not_flagged():
    src = render_recipe("traditional")["features"] + "\ncols = ['a']\ncols.remove('a')\n"
    assert static_problems(_with("features", src)) == []
