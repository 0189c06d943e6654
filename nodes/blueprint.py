"""blueprint: profile + budget -> validation scheme and one plan per applicable track.

Each rule states its reason; a track that does not fit is recorded in `skipped` with why. What
each track costs, and the downsizing that fits it into its room, is runtime/costs.py's; the
reserves the budget keeps are runtime/budget.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext, Settings, kernel_threads
from graph.llm import client_for
from graph.state import IMLState
from prompts import recipe_tracks
from runtime.budget import final_reserve_s, refine_reserve_s, tracks_pool_s
from runtime.costs import (
    MEMBER_CHECK_S,
    SAFETY,
    Estimate,
    downsize_traditional,
    fit_secondary,
    member_estimates,
    neural_estimate,
    pretrained_estimate,
    recipe_defaults,
    safety,
    traditional_estimate,
)
from runtime.params import HARNESS_PARAMS, SPACES
from runtime.records import (
    Blueprint,
    DataProfile,
    TaskSpec,
    TrackPlan,
    ValidationScheme,
)


def blueprint(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    plan = make_blueprint(state["task"], state["profile"], ctx.settings, budget_s=max(ctx.remaining_s(), 1.0),
                          gpu=ctx.gpu_available(state["run_dir"]))
    llm_update: dict = {}
    client = client_for(ctx)
    if client is not None:
        plan, calls = plan_with_llm(client, state["task"], state["profile"], plan, ctx.events)
        llm_update = {"llm_usage": calls}
    ctx.events.emit("blueprint", tracks=[t.track for t in plan.tracks], skipped=plan.skipped)
    Path(state["run_dir"], "blueprint.json").write_text(plan.model_dump_json(indent=2))
    return {"blueprint": plan, **llm_update}


# -- the rules: which tracks, why, and how the budget is split --------------------------------
#
# On 2 cores tracks take turns (ExecutionSlots), so the shares are sequential time: they add up,
# with the reserves, to at most the whole budget. Each share is its track's estimate times the
# safety factor (runtime/costs.py), so a slow machine still finishes.

REPEAT_MAX_ROWS = 1_000   # up to this many training rows the folds are cut again ...
FOLD_REPEATS = 3          # ... this many times at most


def fold_repeats(profile: DataProfile, plans: list[TrackPlan], works: dict[str, tuple[float, float]]) -> int:
    """How many times the folds are cut: on small data (fits are cheap there, and one cut's fold
    noise is larger than the gains refine and the ensemble weigh) up to FOLD_REPEATS, while every
    planned track's work, that many times over, fits its share beside its fixed costs: at a small
    budget (10 s) the kernel and the check leave no room for it, and the plan shrinks instead."""
    if profile.n_train > REPEAT_MAX_ROWS or [p.track for p in plans] != ["traditional"]:
        return 1  # another track's estimate (a network sized to its room, an encoder) knows no repeats
    for repeats in range(FOLD_REPEATS, 1, -1):
        if all(repeats * works[p.track][0] * safety(p.track) <= p.time_share - works[p.track][1] for p in plans):
            return repeats
    return 1


def recipe_params(track: str) -> set[str]:
    """The params a recipe declares (runtime/params.py), and those the harness reads for any.

    Plans only carry params the recipe reads: a name the recipe does not know would be
    silently ignored, and refine would search a dimension that changes nothing.
    """
    return set(HARNESS_PARAMS) | SPACES[track].names


def make_blueprint(task: TaskSpec, profile: DataProfile, settings: Settings, budget_s: float,
                   available: set[str] | None = None, installed: Callable[[str], bool] | None = None,
                   gpu: bool | None = None) -> Blueprint:
    """The rules' plan: the tracks that apply, why, their parameters and time shares."""
    available = recipe_tracks() if available is None else available
    installed = installed or _installed
    if gpu is None:
        from runtime.kernel import gpu_available

        gpu = gpu_available()
    notes: list[str] = []
    final_s = final_reserve_s(budget_s, settings, profile.n_train + profile.n_test)
    refine_s = refine_reserve_s(budget_s, settings)
    pool = tracks_pool_s(budget_s, final_s, refine_s)
    notes.append(f"budget {budget_s:.0f} s: {final_s:.0f} s kept for ensemble + submit, {refine_s:.0f} s for refine, "
                 f"{pool:.0f} s for the tracks, which take turns on {settings.parallel_kernels} execution slot(s)")

    n_folds = settings.n_folds
    threads = kernel_threads(settings)  # the first track's kernel's: the traditional folds run side by side on them
    skipped: dict[str, str] = {}
    wanted = lambda name: settings.tracks is None or name in settings.tracks  # noqa: E731

    # traditional first: always applicable, and the anchor every other track is measured against
    # (its cost decides the folds, which every track shares, only when it runs)
    if wanted("traditional") and "traditional" in available:
        trad, n_folds = downsize_traditional(task, profile, n_folds, pool / SAFETY, threads)
    else:
        trad = traditional_estimate(task, profile, n_folds, threads=threads)
    candidates: list[tuple[str, Estimate | str]] = [("traditional", trad)]
    secondary = [("pretrained", pretrained_estimate(task, profile, n_folds, installed, gpu=gpu)),
                 ("neural", neural_estimate(task, profile, n_folds, installed, gpu=gpu))]
    side = small_images(profile)
    if side:
        # small pictures (digits, thumbnails) upscaled for an ImageNet encoder lose to a CNN that
        # trains on them at their own size in seconds: the CNN gets the time first
        secondary.reverse()
        notes.append(f"images of ~{side} px: the CNN is planned before the ImageNet encoder")
    candidates += secondary

    plans: list[TrackPlan] = []
    works: dict[str, tuple[float, float]] = {}  # each planned track's estimate: (its folds' work, its fixed costs)
    left, spare = pool, refine_s  # a track after the first may use refine's reserve: diversity before tuning
    for name, est in candidates:
        if not wanted(name):
            skipped[name] = "not among the tracks asked for (--tracks)"
            continue
        if name not in available:
            skipped[name] = "no recipe for this track is installed"
            continue
        if isinstance(est, str):
            skipped[name] = est
            continue
        first = not plans
        room = left if first else left + spare
        if name != "traditional" or plans:
            est = fit_secondary(name, task, profile, n_folds, est, room, installed, gpu, first=first)
            if isinstance(est, str):
                skipped[name] = est
                continue
        known = recipe_params(name)
        params = {k: v for k, v in {**est.params, "seed": settings.seed}.items() if k in known}
        need = min(room, max(est.seconds * safety(name), 10.0))
        plans.append(TrackPlan(track=name, reason=_reason(name, task, profile, est), model_family=_family(name, profile, est.params),
                               feature_steps=est.steps, params=params, time_share=need))
        works[name] = (est.seconds - est.fixed_s, est.fixed_s)
        notes += [f"{name}: {n}" for n in est.notes]
        if need > left:
            notes.append(f"{name}: takes {need - left:.0f} s of refine's reserve (another model for the ensemble "
                         "before more tuning of one)")
            spare -= need - left
        left = max(0.0, left - need)
    trad = next((p for p in plans if p.track == "traditional"), None)
    if trad is not None:
        # the traditional track's other model families get what the tracks leave, refine's reserve
        # included: another family before more tuning of one
        members, if_time, extra, member_notes = plan_members(task, profile, n_folds, left + spare, installed, settings.seed)
        trad.members, trad.members_if_time, trad.time_share = members, if_time, trad.time_share + extra
        work, fixed = works["traditional"]
        works["traditional"] = (work + extra / SAFETY - len(members) * MEMBER_CHECK_S, fixed + len(members) * MEMBER_CHECK_S)
        notes += member_notes
        if extra > left:
            notes.append(f"traditional: its members take {extra - left:.0f} s of refine's reserve (other model families "
                         "before more tuning of one)")
        left = max(0.0, left - extra)
    if plans and left > 0:
        # what no track needs is spread over the planned tracks in proportion: shares are ceilings,
        # and time a track does not use goes to refine anyway
        total = sum(p.time_share for p in plans)
        for p in plans:
            p.time_share += left * p.time_share / total
    repeats = fold_repeats(profile, plans, works)
    if repeats > 1:
        notes.append(f"the {n_folds} folds are cut {repeats} times ({profile.n_train:,} rows: one cut's fold noise would "
                     "decide between candidates; each row is predicted once per cut, and scored on the average); a member "
                     f"tried for time left needs its folds' time {repeats} times over")
        if trad is not None:  # a member run for time left repeats its folds too
            trad.members_if_time = {m: round((s - MEMBER_CHECK_S) * repeats + MEMBER_CHECK_S, 2)
                                    for m, s in trad.members_if_time.items()}
    for p in plans:
        p.time_share = round(min(1.0, p.time_share / budget_s), 3) if budget_s > 0 else 0.0
    if settings.refit:
        notes.append("each attempt is fitted once more on all rows when its time allows: the test rows get half that "
                     "fit's predictions, half the fold models' mean")
    validation = ValidationScheme(kind="kfold" if task.task_type in ("regression", "multitarget") else "stratified",
                                  n_folds=n_folds, seed=settings.seed, repeats=repeats, refit=settings.refit)
    return Blueprint(validation=validation, tracks=plans, skipped=skipped, budget_s=budget_s, notes=notes)


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _reason(name: str, task: TaskSpec, profile: DataProfile, est: Estimate) -> str:
    n, cols = profile.n_train, len(profile.columns)
    images = len(profile.columns_of("image"))
    base = {
        "traditional": f"gradient-boosted trees are the strongest default on tabular data ({n} rows, {cols} columns)"
                       + (f"; on images they read cheap colour, shape and gradient features ({images} image column(s))"
                          if images else ""),
        "pretrained": (f"{images} image column(s): an ImageNet encoder's features carry shapes and textures that "
                       "hand-made features miss" if images else
                       f"{len(profile.columns_of('text'))} text column(s): a pretrained sentence encoder reads meaning that "
                       "word counts miss"),
        "neural": (f"{n} images: a CNN trained on these very images learns what an ImageNet encoder does not know"
                   if images else
                   f"{n} rows of mostly numeric data: a network with scaled inputs adds a model unlike trees to the ensemble"),
    }[name]
    if name == "pretrained":
        base += ("; the encoder is fine-tuned on each fold, its time allowing" if est.params.get("finetune")
                 else "; the encoder stays frozen (fine-tuning does not fit the time, see the notes)")
    return f"{base}; estimated {est.seconds:.0f} s"


def _family(name: str, profile: DataProfile | None = None, params: dict | None = None) -> str:
    images = profile is not None and bool(profile.columns_of("image"))
    encoder = "EfficientNet-Lite0" if images else "all-MiniLM-L6-v2"
    pretrained = (f"{encoder} fine-tuned per fold + a linear head" if (params or {}).get("finetune")
                  else f"{encoder} embeddings + a linear head")
    if images:
        return {"traditional": "LightGBM on image features", "pretrained": pretrained, "neural": "torch CNN"}[name]
    return {"traditional": "LightGBM", "pretrained": pretrained, "neural": "torch MLP"}[name]


# -- images -------------------------------------------------------------------------------------

SMALL_IMAGE_SIDE = 64  # images at most this large (median side) are small: digits, icons, thumbnails


def small_images(profile: DataProfile) -> int | None:
    """The images' median side when they are small, else None."""
    sides = [max(c.images.width.get("median", 0), c.images.height.get("median", 0))
             for c in profile.columns if c.kind == "image" and c.images is not None]
    return max(sides) if sides and 0 < max(sides) <= SMALL_IMAGE_SIDE else None


# -- the traditional track's zoo -----------------------------------------------------------------

KNN_MAX_ROWS = 20_000        # beyond, seconds per fold for less than the trees (diamonds, 43k rows: 7 s, RMSE 764 vs 536)
MEMBERS_MAX_ROWS = 200_000   # beyond this the members cost more than they add to LightGBM
# tried in this order while they fit: the cheap linear model, neighbours (cheap on small tables,
# and on clustered classes such as digits better than any tree: 0.98 against LightGBM's 0.97 out
# of fold), CatBoost (the strongest on small tables), extra-trees only where time is left after all
MEMBER_ORDER = ("linear", "knn", "catboost", "extratrees")


def plan_members(task: TaskSpec, profile: DataProfile, n_folds: int, room_s: float, installed: Callable[[str], bool],
                 seed: int = 0) -> tuple[dict[str, dict], dict[str, float], float, list[str]]:
    """The member recipes the traditional track tries after LightGBM, in MEMBER_ORDER, while they
    fit in room_s: a linear model, neighbours, CatBoost and extra-trees (other errors than
    LightGBM's, so the blend gains; most on small tables). Their params; those that did not fit,
    with the seconds their folds need (the track tries them when its share has that much left:
    on a quiet machine the estimates are pessimistic, and a 10 s plan fits none of them); the
    seconds the planned ones add to the track's share; and notes."""
    from prompts import member_recipes

    available = member_recipes()
    if profile.columns_of("image"):
        return {}, {}, 0.0, ["members: none; the image features are LightGBM's (the other members read tables)"]
    if profile.n_train > MEMBERS_MAX_ROWS:
        return {}, {}, 0.0, [f"members: none at {profile.n_train:,} rows; LightGBM alone"]
    members, if_time, extra, notes = {}, {}, 0.0, []
    estimates = member_estimates(task, profile, n_folds)
    for name in MEMBER_ORDER:
        seconds = estimates[name]
        if name not in available or (name == "catboost" and not installed("catboost")):
            continue
        if name == "knn" and (profile.n_train > KNN_MAX_ROWS or not profile.columns_of("numeric", "categorical", "datetime")):
            continue  # free text alone has no distance between rows; many rows cost the square of their number
        need = seconds * SAFETY
        if need > room_s - extra:
            if_time[name] = round((seconds - MEMBER_CHECK_S) * SAFETY + MEMBER_CHECK_S, 2)
            notes.append(f"members: {name} not planned, ~{seconds:.0f} s and {max(0.0, room_s - extra):.0f} s left for it; "
                         f"tried if the track has {if_time[name]:.1f} s of its share left after the planned ones")
            continue
        members[name] = {"seed": seed} if "seed" in SPACES[name] else {}
        extra += need
        notes.append(f"members: {name} after LightGBM, ~{seconds:.0f} s")
    return members, if_time, extra, notes


# -- with an LLM: its plan, validated against the profile, or the rules' draft ------------------


def plan_with_llm(client, task: TaskSpec, profile: DataProfile, draft: Blueprint, events=None) -> tuple[Blueprint, list]:
    """The LLM revises the rules' draft; its plan is used only when it holds up against the
    profile (tracks offered, columns that exist, sane shares and parameters), else the draft
    stands. Either way `Blueprint.notes` says what happened."""
    from graph.llm import LLMError, PlanProposal
    from prompts.render import blueprint_messages

    offered = [t.track for t in draft.tracks]
    if not offered:
        return draft, []
    try:
        answer = client.ask(PlanProposal, blueprint_messages(task, profile, draft, offered),
                            role="blueprint", node="blueprint", events=events)
    except LLMError as e:
        return draft.model_copy(update={"notes": [*draft.notes, f"LLM: no usable plan ({str(e)[:200]}); the rules' plan"]}), e.calls
    problems = llm_plan_problems(answer.value, task, profile, draft)
    if problems:
        note = "LLM plan rejected, the rules' plan stands: " + "; ".join(problems[:6])
        if events is not None:
            events.emit("blueprint_llm", accepted=False, problems=problems)
        return draft.model_copy(update={"notes": [*draft.notes, note]}), answer.calls
    plan = merge_llm_plan(answer.value, draft)
    if events is not None:
        events.emit("blueprint_llm", accepted=True, tracks=[t.track for t in plan.tracks])
    return plan, answer.calls


def llm_plan_problems(proposal, task: TaskSpec, profile: DataProfile, draft: Blueprint) -> list[str]:
    import math

    problems: list[str] = []
    offered = {t.track: t for t in draft.tracks}
    columns = {c.name: c for c in profile.columns}
    if not proposal.tracks:
        problems.append("it runs no track")
    seen: set[str] = set()
    for p in proposal.tracks:
        if p.track not in offered:
            problems.append(f"track '{p.track}' is not offered ({', '.join(offered)})")
            continue
        if p.track in seen:
            problems.append(f"track '{p.track}' appears twice")
        seen.add(p.track)
        if not (isinstance(p.time_share, (int, float)) and math.isfinite(p.time_share) and 0.02 <= p.time_share <= 1.0):
            problems.append(f"track '{p.track}' has time share {p.time_share}, outside 0.02..1")
        unknown = [c for c in p.drop_columns if c not in columns]
        if unknown:
            problems.append(f"track '{p.track}' drops columns that do not exist: {unknown[:5]}")
        if columns and len(set(p.drop_columns) & set(columns)) >= len(columns):
            problems.append(f"track '{p.track}' drops every column")
        defaults = recipe_defaults(p.track, task, profile, draft.validation.n_folds)
        for key, value in p.params.items():
            base = offered[p.track].params.get(key, defaults.get(key))
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(base, (int, float)) and not isinstance(base, bool) and value is not None:
                if not numeric or not math.isfinite(value):
                    problems.append(f"track '{p.track}' parameter {key}={value!r} is not a number like the recipe's {base!r}")
                elif (base > 0) != (value > 0):
                    problems.append(f"track '{p.track}' parameter {key}={value!r} changes the sign of the recipe's {base!r}")
    kind = proposal.validation
    if kind == "group" and (not proposal.group_column or proposal.group_column not in columns):
        problems.append(f"group validation needs an existing group column, not {proposal.group_column!r}")
    if kind == "time":
        col = columns.get(proposal.time_column or "")
        if col is None or col.kind != "datetime":
            problems.append(f"time validation needs an existing datetime column, not {proposal.time_column!r}")
    if kind == "stratified" and task.task_type in ("regression", "multitarget"):
        problems.append("stratified folds need classes; this is a regression task")
    return problems


def merge_llm_plan(proposal, draft: Blueprint) -> Blueprint:
    """The validated proposal as a Blueprint: the draft's fields where the LLM left them empty,
    folds and seed always the framework's."""
    offered = {t.track: t for t in draft.tracks}
    total = sum(p.time_share for p in proposal.tracks) or 1.0
    tracks = []
    for p in proposal.tracks:
        base = offered[p.track]
        params = {**base.params, **{k: v for k, v in p.params.items() if v is not None}}
        steps = [s for s in p.feature_steps if s.strip()] or list(base.feature_steps)
        if p.drop_columns:
            params["drop_columns"] = list(p.drop_columns)
            steps.append(f"drop columns: {', '.join(p.drop_columns)}")
        tracks.append(TrackPlan(
            track=base.track,
            reason=(p.reason.strip() or base.reason)[:500],
            model_family=(p.model_family.strip() or base.model_family)[:100],
            feature_steps=[s[:300] for s in steps[:20]],
            params=params,
            time_share=round(p.time_share / total, 3),
        ))
    skipped = dict(draft.skipped)
    for name in offered:
        if name not in {t.track for t in tracks}:
            skipped[name] = "the LLM's plan leaves it out for this data"
    validation = draft.validation
    if proposal.validation and proposal.validation != validation.kind:
        validation = validation.model_copy(update={
            "kind": proposal.validation,
            "group_column": proposal.group_column if proposal.validation == "group" else None,
            "time_column": proposal.time_column if proposal.validation == "time" else None,
        })
    notes = [*draft.notes, "LLM plan accepted" + (f": {proposal.notes.strip()[:300]}" if proposal.notes.strip() else "")]
    return Blueprint(validation=validation, tracks=tracks, skipped=skipped, budget_s=draft.budget_s, notes=notes)
