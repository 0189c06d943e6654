"""Building the messages each LLM role reads, from the templates in this folder.

A template (`prompts/<role>.md`) has a `<!-- system -->` and a `<!-- user -->` section, and
`generate.md` one `<!-- track: NAME -->` section per track. `{{name}}` placeholders are
filled with grounded facts: the task spec, a bounded summary of the profile, the module
contract (`contract.md`, with the one list of what generated code may import), the track's
recipe as a library (its surface: what each class and hook does, and its declared params, the
plan's values labelled as such), the time the attempt has (runtime/budget.py's `AttemptTime`,
formatted here, never recomputed), and a bounded memory of earlier attempts with their measured
seconds. Every piece has a
size limit, so a prompt stays bounded on a 500-column table; code is shown whole or with whole
functions left out by name (prompts/surface.py), never cut mid-function.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from prompts import FALLBACK, MODULES, PROMPTS_DIR, RECIPES_DIR, recipe_tracks
from prompts.imports import imported_modules, imports_text, module_path, recipe_modules
from prompts.surface import first_sentence, parsed, surface, whole
from runtime.budget import AttemptTime, tracks_part
from runtime.python_source import parse
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
RECIPE_CODE_CHARS = 3_000  # a recipe function a traceback names, shown whole beside the failing modules
DEBUG_PROFILE_CHARS = 4_000
HEADER_NAMES = 60
CANDIDATE_VALUES = 12  # values shown per candidate target column

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
            f"- time: its seconds are under # Time\n"
            f"- params: see the recipe's params below (the plan's values are labelled \"the plan's\")")


def seconds(value: float) -> str:
    """Seconds as a model reads them: tenths below 10 s, whole seconds above."""
    return f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


def time_summary(time: AttemptTime | None, base: AttemptResult | None = None) -> str:
    """What the attempt's seconds are and what they mean for one fold (runtime/budget.py computes
    every number; here they are only put in words). `base`: the attempt a refine rewrite moves
    from, whose measured seconds it is told."""
    if time is None:
        return "(not known: the modules are not run by this graph's clock)"
    cuts = f"{time.n_folds} folds" + (f", cut {time.repeats} times ({time.fits} fits)" if time.repeats > 1 else "")
    cuts += " and one more fit on all rows" if time.refit else ""
    dropped = [what for what, there in (("the later cuts", time.repeats > 1), ("the fit on all rows", time.refit)) if there]
    lines = [
        (f"- this attempt's cross-validation may run {seconds(time.attempt_s)}; the harness stops it between folds at "
         f"{seconds(time.deadline_s)}."),
        (f"- per fold: ~{seconds(time.fold_s)} for the whole plan ({cuts}) to end. Past ~{seconds(time.first_cut_fold_s)} a "
         f"fold, not even the first {time.n_folds} folds end, and the attempt is stopped unscored"
         + (f"; {' and '.join(dropped)} are dropped first when time runs short." if dropped else ".")),
        (f"- a fold fits on {time.train_rows:,} training rows"
         + (f" (a sample of its {time.fold_rows:,}: the plan's max_train_rows)" if time.train_rows < time.fold_rows else "")
         + f" and predicts its {time.valid_rows:,} held-out rows and the {time.test_rows:,} test rows; the table has "
         f"{time.columns:,} feature columns."),
        (f"- compute: {time.cores} CPU thread(s) for this track's kernel; "
         + ("a CUDA GPU (torch: `cuda`)." if time.gpu else "no GPU.")),
    ]
    if len(time.tracks) <= 1:
        lines.append(f"- this is the run's only track: its share is {seconds(time.share_s)} of the budget "
                     f"({seconds(max(0.0, time.share_left_s))} of it not used yet).")
    elif time.takes_turns:
        lines.append(f"- the tracks ({', '.join(time.tracks)}) take turns on {time.slots} execution slot(s): this track "
                     f"computes alone on its threads when its turn comes, for its share of {seconds(time.share_s)} "
                     f"({seconds(max(0.0, time.share_left_s))} of it not used yet). The run's clock moves while a track "
                     "waits, its share does not; the tracks behind this one wait for it at most its share, so seconds it "
                     "overruns are theirs.")
    else:
        lines.append(f"- the tracks ({', '.join(time.tracks)}) compute at the same time on {time.slots} execution slots, "
                     f"each on its own threads; this track's share is {seconds(time.share_s)} "
                     f"({seconds(max(0.0, time.share_left_s))} of it not used yet).")
    if base is not None:
        per_fold = f", ~{seconds(base.fit_seconds)} per fold" if base.fit_seconds is not None else ""
        lines.append(f"- the attempt this rewrite moves from took {seconds(base.duration_s)} in all{per_fold}: a rewrite "
                     "that costs more per fold has that much less room.")
    lines.append(f"- the run has {seconds(max(0.0, time.run_left_s))} left before its final reserve (the ensemble and the "
                 "submission).")
    lines.append("- before any fold starts, the check times the fit on growing samples of rows and stops modules whose "
                 "folds cannot end in time (\"too slow: ~X s per fold needed, Y s allowed\").")
    return "\n".join(lines)


def memory_summary(attempts: Sequence[AttemptResult], limit: int = MEMORY_CHARS, items: int = MEMORY_ITEMS) -> str:
    """The latest attempts: source, status, score or the head of the error, and their measured
    seconds (in all, and per fold where the harness or the check measured a fold)."""
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
        if a.duration_s:
            head += f", {seconds(a.duration_s)}"
        if a.fit_seconds is not None:
            head += f", ~{seconds(a.fit_seconds)} per fold" + (" (the check's prediction)" if not a.duration_s else "")
        if a.error:
            first = a.error.strip().splitlines()[0] if a.error.strip() else ""
            head += f" — {first[:300]}"
        lines.append(head)
    return bounded("\n".join(lines), limit)


def recipe_of(track: str) -> str:
    """The recipe a track builds on: its own, else the traditional one (else the fallback)."""
    tracks = recipe_tracks()
    return track if track in tracks else ("traditional" if "traditional" in tracks else FALLBACK)


def import_name(recipe: str, module: str) -> str:
    """prompts.recipes.<recipe>.<module>, the name generated code imports it by."""
    return "prompts.recipes." + ".".join([*recipe.split("/"), module])


def recipe_surface(recipe: str, brief: bool = False) -> str:
    """The recipe as a library: per module its import name and its surface (docstrings, classes,
    hooks with their signatures and docstrings; first paragraphs only when brief)."""
    parts = []
    for module in MODULES:
        source = (RECIPES_DIR / recipe / f"{module}.py").read_text()
        parts.append(f"### {import_name(recipe, module)}\n\n```python\n{surface(source, brief)}```")
    return "\n\n".join(parts)


def other_recipes(recipe: str) -> str:
    """One line per other recipe module generated code may import: its name and first line."""
    lines = []
    for name in recipe_modules():
        if name.startswith(import_name(recipe, "")) or name.split(".")[2] == FALLBACK:
            continue
        lines.append(f"- {name}: {first_sentence(ast.get_docstring(parse(module_path(name).read_text())) or '')}")
    return "\n".join(lines)


def params_text(recipe: str, given: dict[str, Any], whose: str = "the plan's", only_given: bool = False) -> str:
    """The recipe's declared params (runtime/params.py) with what `params` holds labelled as
    `whose` and every other one as the recipe's default (computed from the data at fit time);
    only_given: the lines of what `params` holds alone."""
    from runtime.params import HARNESS_PARAMS, SPACES

    space = SPACES.get(recipe.split("/")[-1])
    lines = []
    if space is not None:
        width = max(len(p.name) for p in space) + 2
        for p in space:
            if only_given and given.get(p.name) is None:
                continue
            rng = f"  [searched {p.low:g}..{p.high:g}{', log' if p.log else ''}]" if p.searched else ""
            value = (f"{whose}: {json.dumps(given[p.name], default=str)}   (default: {p.doc})"
                     if given.get(p.name) is not None else f"default: {p.doc}")
            lines.append(f"  {p.name.ljust(width)}{value}{rng}")
    for key, value in given.items():
        if space is None or key not in space:
            where = HARNESS_PARAMS.get(key, "not declared by the recipe: nothing reads it")
            lines.append(f"  {key}  {whose}: {bounded(json.dumps(value, default=str), 300)}   ({where})")
    return (f"`params` (passed to Features and Model) holds only the values labelled {whose}; every other one "
            f"is the recipe's default, computed from the data at fit time "
            f"(`SPACES[{recipe.split('/')[-1]!r}].resolve(params, Data(...))`, runtime.params):\n\n```\n"
            + ("\n".join(lines) or "  (none declared)") + "\n```")


@lru_cache(maxsize=None)
def contract_text() -> str:
    """The contract, with the one list of imports and the surface of the steps the recipes share."""
    steps = surface(module_path("runtime.recipe_steps").read_text(), brief=True)
    return fill((PROMPTS_DIR / "contract.md").read_text().strip(),
                {"imports": imports_text(), "recipe_steps": f"```python\n{steps}```"})


def recipe_of_source(source: str) -> str | None:
    """The import name of the recipe module whose text `source` is, or None."""
    return _recipe_texts().get(source)


@lru_cache(maxsize=1)
def _recipe_texts() -> dict[str, str]:
    return {module_path(name).read_text(): name for name in recipe_modules()}


def module_view(module: str, source: str, limit: int = MODULE_CHARS, keep: tuple[str, ...] = (),
                recipe_surface_only: bool = True) -> str:
    """A module as a model sees it, never cut mid-function: a recipe module unchanged as its
    surface (recipe_surface_only: for a rewrite; a repair sees the code); other code whole, or
    with the bodies of whole functions left out by name (those in `keep` last), followed by the
    surface of each recipe module it imports."""
    if not source.strip():
        return "(missing)"
    recipe = recipe_of_source(source)
    if recipe is not None and recipe_surface_only:
        return (f"{module}.py is the recipe module `{recipe}`, unchanged. Its surface (bodies left out; "
                f"import it and override one step):\n\n```python\n{surface(source)}```")
    if recipe is not None:
        shown = whole(source, limit, keep)
        return (f"{module}.py is the recipe module `{recipe}`, unchanged (a repair may import it and override "
                f"the failing step):\n{shown.note()}\n```python\n{shown.text}```")
    try:
        parsed(source)
    except SyntaxError as e:
        shown = whole(source, limit)
        return (f"{module}.py does not parse (line {e.lineno}: {e.msg}); as written:\n{shown.note()}\n"
                f"```text\n{shown.text}```")
    shown = whole(source, limit, keep)
    text = f"{shown.note()}```python\n{shown.text}```"
    for name in imported_modules(source):
        if name.startswith("prompts.recipes."):
            text += f"\n\nIt extends `{name}`, whose surface is:\n\n```python\n{surface(module_path(name).read_text())}```"
    return text


TRACEBACK_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')


def traceback_names(error: str) -> tuple[str, ...]:
    """The functions a traceback passes through (their bodies are kept whole)."""
    return tuple(dict.fromkeys(m.group(3) for m in TRACEBACK_LINE.finditer(error or "")))


def traceback_code(error: str, limit: int = RECIPE_CODE_CHARS) -> str:
    """The whole source of each recipe or runtime.recipe_steps function the traceback passes
    through (code the failing modules inherit or call), each as one complete block."""
    files = {str(module_path(n).resolve()): n for n in [*recipe_modules(), "runtime.recipe_steps"]}
    blocks = []
    for path, line, _ in dict.fromkeys(m.groups() for m in TRACEBACK_LINE.finditer(error or "")):
        name = files.get(str(Path(path).resolve())) if path.endswith(".py") else None
        if name is None:
            continue
        source = module_path(name).read_text()
        for node in ast.walk(parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= int(line) <= node.end_lineno:
                code = ast.get_source_segment(source, node, padded=True) or ""
                code = textwrap.dedent(code)
                if len(code) <= limit:
                    blocks.append(f"{name}, `{node.name}` (the traceback's line {line}):\n\n```python\n{code}\n```")
                break
    return "\n\n".join(dict.fromkeys(blocks))


def metrics_text() -> str:
    from runtime.metrics import METRICS

    return "\n".join(f"- {m.name}: {m.description} ({'higher' if m.greater_is_better else 'lower'} is better)"
                     for m in METRICS.values())


# -- the roles ------------------------------------------------------------------------------


def candidates_text(candidates: dict[str, Any] | None) -> str:
    """Each candidate target column's distinct values and their counts (on the rows read)."""
    if not candidates:
        return "(no candidate column: every train column is in test, or the labels come from file names)"
    lines = []
    for column, counts in candidates.items():
        total = int(counts.sum())
        shown = ", ".join(f"{str(v)[:40]!s}: {int(n)}" for v, n in list(counts.items())[:CANDIDATE_VALUES])
        more = f", and {len(counts) - CANDIDATE_VALUES} more values" if len(counts) > CANDIDATE_VALUES else ""
        lines.append(f"- {column}: {len(counts)} distinct values in {total} rows read: {shown}{more}")
    return "\n".join(lines)


def analyze_messages(task_dir: Path, description: str, train_cols: list[str], test_cols: list[str],
                     sample_cols: list[str] | None, candidates: dict[str, Any] | None = None) -> list[BaseMessage]:
    """candidates: column -> its value counts (a pandas Series), the columns that may be the target."""
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
        "candidates": candidates_text(candidates),
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
        "budget": (f"{draft.budget_s:.0f} seconds for the whole run, {draft.validation.n_folds}-fold cross-validation. "
                   f"The tracks split {tracks_part(draft):.0%} of it ({seconds(tracks_part(draft) * draft.budget_s)}); the "
                   "rest is kept for refine and for the ensemble and submission."),
        "draft": bounded(json.dumps(draft_json, indent=2, default=str), 4000),
    })


def generate_messages(task: TaskSpec, profile: DataProfile, plan: TrackPlan,
                      attempts: Sequence[AttemptResult] = (), time: AttemptTime | None = None) -> list[BaseMessage]:
    recipe = recipe_of(plan.track)
    return messages("generate", {
        "time": time_summary(time),
        "contract": contract_text(),
        "task": task_summary(task),
        "profile": profile_summary(profile),
        "track": plan.track,
        "plan": plan_summary(plan),
        "track_guidance": track_guidance(plan.track),
        "recipe_note": "" if recipe == plan.track else f"(from the {recipe} track: this track has no recipe of its own)\n\n",
        "recipe": recipe_surface(recipe),
        "params": params_text(recipe, plan.params),
        "others": other_recipes(recipe),
        "memory": memory_summary(attempts),
    })


def failing_modules(error: str) -> set[str]:
    """The modules (features, model) an error names: its traceback's files or the check's lines."""
    return {m for m in MODULES if re.search(rf'(/|"|^|\s){m}\.py\b', error or "", re.MULTILINE)}


def debug_messages(task: TaskSpec, profile: DataProfile, plan: TrackPlan, code: dict[str, str], error: str,
                   attempts: Sequence[AttemptResult] = (), attempt: int | None = None,
                   status: str = "failed", time: AttemptTime | None = None) -> list[BaseMessage]:
    recipe = recipe_of(plan.track)
    keep = traceback_names(error)
    # the module the error names gets most of the room; both the same when it names none or both
    named = failing_modules(error)
    room = {m: (MODULE_CHARS * 7 // 4 if m in named else MODULE_CHARS // 2) if len(named) == 1 else MODULE_CHARS
            for m in MODULES}
    return messages("debug", {
        "time": time_summary(time),
        "contract": contract_text(),
        "task": task_summary(task),
        "profile": profile_summary(profile, DEBUG_PROFILE_CHARS),
        "track": plan.track,
        "plan": plan_summary(plan),
        "params": params_text(recipe, plan.params, only_given=True),
        "attempt": f"attempt {attempt}" if attempt is not None else "the last attempt",
        "status": status,
        "features": module_view("features", code.get("features", ""), room["features"], keep, recipe_surface_only=False),
        "model": module_view("model", code.get("model", ""), room["model"], keep, recipe_surface_only=False),
        "error": bounded(error.strip(), ERROR_CHARS),
        "traceback_code": traceback_code(error) or "(the traceback passes through no recipe code)",
        "memory": memory_summary(attempts),
        "recipe": "(shown with the modules above: they are, or extend, a recipe)" if any(
            recipe_of_source(c) or any(n.startswith("prompts.recipes.") for n in _imports(c)) for c in code.values())
        else recipe_surface(recipe, brief=True),
    })


def _imports(source: str) -> list[str]:
    try:
        return imported_modules(source)
    except SyntaxError:
        return []


def refine_messages(task: TaskSpec, profile: DataProfile, plan: TrackPlan, code: dict[str, str], score: float | None,
                    params: dict | None = None, attempts: Sequence[AttemptResult] = (),
                    focus: str | None = None, time: AttemptTime | None = None,
                    base: AttemptResult | None = None) -> list[BaseMessage]:
    """`time`: the rewrite's attempt (it runs on refine's time); `base`: the attempt it moves from."""
    direction = "higher is better" if task.greater_is_better else "lower is better"
    recipe = recipe_of(plan.track)
    for module in MODULES:  # the best attempt may run a member of the zoo: its params are that recipe's
        name = recipe_of_source(code.get(module, ""))
        if name is not None:
            recipe = "/".join(name.split(".")[2:-1])
    return messages("refine", {
        "time": time_summary(time, base),
        "contract": contract_text(),
        "task": task_summary(task),
        "profile": profile_summary(profile),
        "track": plan.track,
        "score": f"{task.metric} {score:.6g} ({direction})" if score is not None else "not scored",
        "params": params_text(recipe, params if params is not None else plan.params, "this attempt's"),
        "features": module_view("features", code.get("features", "")),
        "model": module_view("model", code.get("model", "")),
        "memory": memory_summary(attempts),
        "focus": f"this time: {focus}" if focus else "choose the one where a change should help most",
        "metric": task.metric,
    })


def prompt_chars(msgs: Sequence[BaseMessage]) -> int:
    return sum(len(m.content) for m in msgs if isinstance(m.content, str))
