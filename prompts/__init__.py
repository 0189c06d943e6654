"""Everything an LLM reads: role templates and the recipes of each track.

Recipes are readable modules that obey the contract; the offline coder renders them as they
are, and the LLM sees them as exemplars.
"""

from __future__ import annotations

from pathlib import Path

PROMPTS_DIR = Path(__file__).parent
RECIPES_DIR = PROMPTS_DIR / "recipes"
MODULES = ("features", "model")
FALLBACK = "fallback"
# other model families a track may add as attempts beside its own recipe (the traditional
# track's zoo: CatBoost, a linear model), each a complete recipe under recipes/members/<name>
MEMBERS_DIR = RECIPES_DIR / "members"


def recipe_tracks() -> set[str]:
    """Tracks with a complete recipe (features.py and model.py)."""
    return {
        d.name
        for d in RECIPES_DIR.iterdir()
        if d.is_dir() and d.name != FALLBACK and all((d / f"{m}.py").exists() for m in MODULES)
    }


def member_recipes() -> set[str]:
    """Member recipes (recipes/members/<name>) that are complete."""
    if not MEMBERS_DIR.is_dir():
        return set()
    return {d.name for d in MEMBERS_DIR.iterdir() if d.is_dir() and all((d / f"{m}.py").exists() for m in MODULES)}


def render_member(name: str) -> dict[str, str]:
    return render_recipe(f"members/{name}")


def render_recipe(track: str) -> dict[str, str]:
    """The recipe's modules as source text, keyed by module name."""
    folder = RECIPES_DIR / track
    return {m: (folder / f"{m}.py").read_text() for m in MODULES}
