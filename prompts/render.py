"""Building the messages each LLM role reads, from the templates in this folder.

A template (`prompts/<role>.md`) has a `<!-- system -->` and a `<!-- user -->` section, and
`generate.md` one `<!-- track: NAME -->` section per track. `{{name}}` placeholders are
filled with grounded facts: the task spec, a bounded summary of the profile, the module
contract (`contract.md`), the track's recipe as an exemplar, and a bounded memory of earlier
attempts. Every piece has a size limit, so a prompt stays bounded on a 500-column table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from prompts import FALLBACK, PROMPTS_DIR, recipe_tracks, render_recipe
from runtime.records import AttemptResult, Blueprint, DataProfile, TaskSpec, TrackPlan

# Size limits in characters (about 4 characters a token).
DESCRIPTION_CHARS = 6_000
PROFILE_CHARS = 6_000
DETAILED_COLUMNS = 40  # columns described one per line; the rest by kind, names only
NAMES_CHARS = 1_200  # names listed per kind beyond the detailed ones
WARNINGS = 12
CLASSES = 30
MEMORY_ITEMS = 6
MEMORY_CHARS = 3_000
ERROR_CHARS = 4_000
MODULE_CHARS = 8_000  # each module shown for repair or refinement
RECIPE_CHARS = 12_000  # the exemplar, both modules together with the params table (debug shows less)
DEBUG_PROFILE_CHARS = 4_000
HEADER_NAMES = 60

SECTION = re.compile(r"^<!--\s*(system|user|track:\s*[\w-]+)\s*-->[ \t]*$", re.MULTILINE)
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


# -- templates ------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def load_template(role: str) -> dict[str, str]:
    """The sections of prompts/<role>.md: {"system": ..., "user": ..., "track:NAME": ...}."""
    text = (PROMPTS_DIR / f"{role}.md").read_text()
    parts = SECTION.split(text)
    sections: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        sections[re.sub(r"\s+", "", name)] = body.strip("\n")
    if "system" not in sections or "user" not in sections:
        raise ValueError(f"prompts/{role}.md needs a <!-- system --> and a <!-- user --> section")
    return sections


def fill(text: str, values: dict[str, Any]) -> str:
    """Replace {{name}} with values[name]; a placeholder without a value is an error."""
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise KeyError(f"no value for placeholder(s) {missing}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def messages(role: str, values: dict[str, Any]) -> list[BaseMessage]:
    template = load_template(role)
    return [SystemMessage(fill(template["system"], values)), HumanMessage(fill(template["user"], values))]


def track_guidance(track: str) -> str:
    sections = load_template("generate")
    return sections.get(f"track:{track}") or sections["track:default"]


# -- bounded pieces -------------------------------------------------------------------------


def bounded(text: str, limit: int) -> str:
    """Head and tail of a long text, with what was cut said in the middle."""
    text = text or ""
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut ...]\n"
    head = (limit - len(marker)) * 2 // 3
    tail = max(0, limit - len(marker) - head)
    return text[:head] + marker + (text[-tail:] if tail else "")


def names_list(names: Sequence[str], limit: int) -> str:
    """Comma-separated names up to `limit` characters, then how many more."""
    out, used = [], 0
    for i, name in enumerate(names):
        piece = (", " if out else "") + str(name)
        if used + len(piece) > limit:
            return "".join(out) + f", ... and {len(names) - i} more"
        out.append(piece)
        used += len(piece)
    return "".join(out)


def task_summary(task: TaskSpec) -> str:
    direction = "higher is better" if task.greater_is_better else "lower is better"
    lines = [
        f"- task type: {task.task_type}",
        f"- target column(s): {', '.join(repr(c) for c in task.target_columns)}" + (" (one-hot classes)" if task.one_hot else ""),
        f"- metric: {task.metric} ({direction})",
        f"- id column: {repr(task.id_column) if task.id_column else 'none (rows are identified by order)'}",
        f"- submission: {task.submission_format} in columns {names_list(task.submission_columns, 300)}",
    ]
    if task.classes:
        shown = task.classes[:CLASSES]
        more = f" and {len(task.classes) - CLASSES} more" if len(task.classes) > CLASSES else ""
        lines.append(f"- classes in code order 0..{len(task.classes) - 1}: {shown}{more}")
    return "\n".join(lines)


def _column_line(c) -> str:
    if c.images is not None:
        s = c.images
        size = (f"{s.width.get('median')}x{s.height.get('median')} px median (width {s.width.get('min')}.."
                f"{s.width.get('max')}, height {s.height.get('min')}..{s.height.get('max')})" if s.width else "sizes unknown")
        return (f"- {c.name}: image (each row's file path, read through runtime.images.load_images): {s.count} files, "
                f"{s.missing} missing, {s.unreadable} of {s.sampled} sampled unreadable; {size}; modes "
                f"{dict(s.modes)}; formats {dict(s.formats)}; e.g. {', '.join(s.examples[:2])}")
    examples = ", ".join(e[:30] for e in c.examples[:3])
    extra = f", mean length {c.mean_length:.0f} chars" if c.mean_length is not None else ""
    return (f"- {c.name}: {c.kind} ({c.dtype}), {c.missing_share:.1%} missing, "
            f"{c.cardinality} distinct{extra}; e.g. {examples}")


def profile_summary(profile: DataProfile, limit: int = PROFILE_CHARS) -> str:
    """Rows, columns (each one in detail up to a point, then names by kind), target, warnings."""
    kinds: dict[str, list[str]] = {}
    for c in profile.columns:
        kinds.setdefault(c.kind, []).append(c.name)
    counts = ", ".join(f"{len(v)} {k}" for k, v in kinds.items())
    lines = [f"{profile.n_train} train rows, {profile.n_test} test rows, {len(profile.columns)} feature columns ({counts})."]

    t = profile.target
    if t.kind == "classes":
        items = list(t.class_counts.items())
        total = sum(n for _, n in items) or 1
        shown = ", ".join(f"{k}: {n} ({n / total:.1%})" for k, n in items[:CLASSES])
        more = f", and {len(items) - CLASSES} more classes" if len(items) > CLASSES else ""
        lines.append(f"Target distribution: {shown}{more}.")
    else:
        lines.append(f"Target values: mean {t.mean:.4g}, std {t.std:.4g}, min {t.min:.4g}, max {t.max:.4g}, skew {t.skew:.3g}.")

    if profile.warnings:
        lines.append("Warnings:")
        lines += [f"- {w[:200]}" for w in profile.warnings[:WARNINGS]]
        if len(profile.warnings) > WARNINGS:
            lines.append(f"- ... and {len(profile.warnings) - WARNINGS} more warnings")

    lines.append("Columns:")
    # image columns first: with a wide table beside them they must not be cut from the details
    ordered = sorted(profile.columns, key=lambda c: c.kind != "image")
    detailed = ordered[:DETAILED_COLUMNS]
    lines += [_column_line(c) for c in detailed]
    rest = ordered[DETAILED_COLUMNS:]
    if rest:
        by_kind: dict[str, list] = {}
        for c in rest:
            by_kind.setdefault(c.kind, []).append(c)
        lines.append(f"The other {len(rest)} columns, by kind:")
        for kind, cols in by_kind.items():
            missing = max(c.missing_share for c in cols)
            lines.append(f"- {len(cols)} {kind} (up to {missing:.0%} missing): "
                         f"{names_list([c.name for c in cols], NAMES_CHARS // max(1, len(by_kind)))}")
    return bounded("\n".join(lines), limit)


def plan_summary(plan: TrackPlan) -> str:
    steps = "\n".join(f"  - {s[:200]}" for s in plan.feature_steps[:15]) or "  - (none)"
    return (f"- model family: {plan.model_family}\n- why: {plan.reason[:400]}\n- feature steps:\n{steps}\n"
            f"- params (passed to Features and Model as `params`): {bounded(json.dumps(plan.params, default=str), 1500)}\n"
            f"- time share: {plan.time_share:.0%} of the run's budget")


def memory_summary(attempts: Sequence[AttemptResult], limit: int = MEMORY_CHARS, items: int = MEMORY_ITEMS) -> str:
    """The latest attempts: source, status, score or the head of the error."""
    if not attempts:
        return "None yet: this is the first attempt."
    shown = list(attempts)[-items:]
    lines = []
    if len(attempts) > len(shown):
        lines.append(f"({len(attempts) - len(shown)} earlier attempts not shown)")
    for a in shown:
        head = f"- attempt {a.attempt} ({a.source}): {a.status}"
        if a.score is not None:
            head += f", score {a.score:.6g}"
        if a.error:
            first = a.error.strip().splitlines()[0] if a.error.strip() else ""
            head += f" — {first[:300]}"
        lines.append(head)
    return bounded("\n".join(lines), limit)


def recipe_text(track: str, limit: int = RECIPE_CHARS) -> str:
    """The track's recipe (or the traditional one, for a track without its own) as markdown,
    each module cut to its share of `limit`."""
    name = track if track in recipe_tracks() else ("traditional" if "traditional" in recipe_tracks() else FALLBACK)
    code = render_recipe(name)
    note = "" if name == track else f"(from the {name} track: this track has no recipe of its own)\n\n"
    table = params_text(name)
    share = max(0, limit - len(table)) // max(1, len(code))
    return note + table + "\n\n".join(f"## {module}.py\n\n```python\n{bounded(source.rstrip(), share)}\n```"
                                                 for module, source in code.items())


def params_text(recipe: str) -> str:
    """The recipe's declared params (runtime/params.py): what a plan or a rewrite may set."""
    from runtime.params import SPACES

    space = SPACES.get(recipe)
    if space is None:
        return ""
    return (f"## params the recipe reads (`SPACES[{recipe!r}].resolve(params, Data(...))` from runtime.params; "
            f"name, default, meaning)\n\n```\n{space.table()}\n```\n\n")


def contract_text() -> str:
    return (PROMPTS_DIR / "contract.md").read_text().strip()


def metrics_text() -> str:
    from runtime.metrics import METRICS

    return "\n".join(f"- {m.name}: {m.description} ({'higher' if m.greater_is_better else 'lower'} is better)"
                     for m in METRICS.values())


# -- the roles ------------------------------------------------------------------------------


def analyze_messages(task_dir: Path, description: str, train_cols: list[str], test_cols: list[str],
                     sample_cols: list[str] | None) -> list[BaseMessage]:
    files = []
    for path in sorted(task_dir.iterdir())[:30]:
        if path.is_file() and not path.name.startswith("."):
            files.append(f"- {path.name} ({path.stat().st_size:,} bytes)")
    only_train = [c for c in train_cols if c not in test_cols]
    columns = [
        f"train.csv ({len(train_cols)} columns): {names_list(train_cols, HEADER_NAMES * 12)}",
        f"test.csv ({len(test_cols)} columns): {names_list(test_cols, HEADER_NAMES * 12)}",
        f"Columns only in train.csv: {names_list(only_train, 600) or 'none'}",
    ]
    if sample_cols is not None:
        columns.append(f"sample_submission.csv columns: {names_list(sample_cols, 600)}")
    return messages("analyze", {
        "description": bounded(description.strip() or "(no description.md)", DESCRIPTION_CHARS),
        "files": "\n".join(files) or "(none)",
        "columns": "\n".join(columns),
        "metrics": metrics_text(),
    })


def blueprint_messages(task: TaskSpec, profile: DataProfile, draft: Blueprint, offered: Sequence[str]) -> list[BaseMessage]:
    draft_json = {
        "tracks": [p.model_dump(include={"track", "reason", "model_family", "feature_steps", "params", "time_share"})
                   for p in draft.tracks],
        "validation": draft.validation.kind,
        "group_column": draft.validation.group_column,
        "time_column": draft.validation.time_column,
    }
    skipped = "".join(f"\n- {name}: not offered ({why})" for name, why in draft.skipped.items())
    return messages("blueprint", {
        "task": task_summary(task),
        "profile": profile_summary(profile),
        "tracks": "\n".join(f"- {t}" for t in offered) + skipped,
        "budget": f"{draft.budget_s:.0f} seconds for the whole run, {draft.validation.n_folds}-fold cross-validation",
        "draft": bounded(json.dumps(draft_json, indent=2, default=str), 4000),
    })


def generate_messages(task: TaskSpec, profile: DataProfile, plan: TrackPlan,
                      attempts: Sequence[AttemptResult] = ()) -> list[BaseMessage]:
    return messages("generate", {
        "contract": contract_text(),
        "task": task_summary(task),
        "profile": profile_summary(profile),
        "track": plan.track,
        "plan": plan_summary(plan),
        "track_guidance": track_guidance(plan.track),
        "recipe": recipe_text(plan.track),
        "memory": memory_summary(attempts),
    })


def debug_messages(task: TaskSpec, profile: DataProfile, plan: TrackPlan, code: dict[str, str], error: str,
                   attempts: Sequence[AttemptResult] = (), attempt: int | None = None,
                   status: str = "failed") -> list[BaseMessage]:
    return messages("debug", {
        "contract": contract_text(),
        "task": task_summary(task),
        "profile": profile_summary(profile, DEBUG_PROFILE_CHARS),
        "track": plan.track,
        "plan": plan_summary(plan),
        "attempt": f"attempt {attempt}" if attempt is not None else "the last attempt",
        "status": status,
        "features": bounded(code.get("features", "(missing)"), MODULE_CHARS),
        "model": bounded(code.get("model", "(missing)"), MODULE_CHARS),
        "error": bounded(error.strip(), ERROR_CHARS),
        "memory": memory_summary(attempts),
        "recipe": recipe_text(plan.track, RECIPE_CHARS // 2),
    })


def refine_messages(task: TaskSpec, profile: DataProfile, plan: TrackPlan, code: dict[str, str], score: float | None,
                    params: dict | None = None, attempts: Sequence[AttemptResult] = (),
                    focus: str | None = None) -> list[BaseMessage]:
    direction = "higher is better" if task.greater_is_better else "lower is better"
    return messages("refine", {
        "contract": contract_text(),
        "task": task_summary(task),
        "profile": profile_summary(profile),
        "track": plan.track,
        "score": f"{task.metric} {score:.6g} ({direction})" if score is not None else "not scored",
        "params": bounded(json.dumps(params if params is not None else plan.params, default=str), 1500),
        "features": bounded(code.get("features", ""), MODULE_CHARS),
        "model": bounded(code.get("model", ""), MODULE_CHARS),
        "memory": memory_summary(attempts),
        "focus": f"this time: {focus}" if focus else "choose the one where a change should help most",
        "metric": task.metric,
    })


def prompt_chars(msgs: Sequence[BaseMessage]) -> int:
    return sum(len(m.content) for m in msgs if isinstance(m.content, str))
