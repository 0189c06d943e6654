"""blueprint: profile + budget -> validation scheme and one plan per applicable track.

Each rule states its reason; a track that does not fit is recorded in `skipped` with why. What
each track costs, and the downsizing that fits it into its room, is runtime/costs.py's; the
reserves the budget keeps are runtime/budget.py's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext, Settings, kernel_threads
from graph.llm import client_for
from graph.state import IMLState
from prompts import recipe_tracks, render_recipe
from runtime.budget import (
    attempt_floor_s,
    bag_plan,
    final_reserve_s,
    long_budget,
    refine_reserve_s,
    tracks_part,
    tracks_pool_s,
)
from runtime.columnar import cached_manifest
from runtime.costs import (
    CHECK_S,
    KERNEL_S,
    MEMBER_CHECK_S,
    MEMORY_LIMIT_SHARE,
    MEMORY_SHARE,
    MIN_FOLDS,
    MIN_SAMPLE_ROWS,
    SAFETY,
    Estimate,
    MeasuredCost,
    downsize_traditional,
    fit_secondary,
    measure_slowness,
    member_estimates,
    model_columns,
    neural_estimate,
    planned_profile,
    plan_rows,
    pretrained_estimate,
    recipe_defaults,
    safety,
    traditional_estimate,
)
from runtime.kernel import KernelStartError
from runtime.params import HARNESS_PARAMS, SPACES, WIDE, Data
from runtime.records import (
    Blueprint,
    DataPlan,
    DataProfile,
    MeasuredFit,
    TaskSpec,
    TrackPlan,
    ValidationScheme,
)


def blueprint(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    slowness = measure_slowness()  # before the clock is read: the plan is made for the time left after it
    large = None
    if cached_manifest(state["run_dir"]) is not None:  # the profile read a large table into the columnar cache
        large = plan_large_table(state["task"], state["profile"], ctx, state["run_dir"])
    plan = make_blueprint(state["task"], state["profile"], ctx.settings, budget_s=max(ctx.remaining_s(), 1.0),
                          gpu=ctx.gpu_available(state["run_dir"]), slowness=slowness, large=large)
    if plan.data is not None:
        ctx.events.emit("rows", rows=plan.data.rows, n_rows=plan.data.n_rows, folds=plan.validation.n_folds,
                        estimate_s=plan.data.estimate_s, memory_mb=plan.data.memory_mb, what=plan.data.summary())
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


def fold_repeats(profile: DataProfile, plans: list[TrackPlan], works: dict[str, tuple[float, float]],
                 clocked_pool_s: float) -> int:
    """How many times the folds are cut: on small data (fits are cheap there, and one cut's fold
    noise is larger than the gains refine and the ensemble weigh) up to FOLD_REPEATS, while every
    planned track's work, that many times over, fits its share beside its fixed costs, and all of
    it the tracks' part of the clock (`clocked_pool_s`, before a share is lifted to the floor an
    attempt gets anyway): at a small budget (10 s) the kernel and the check leave no room for it,
    and the plan shrinks instead."""
    if profile.n_train > REPEAT_MAX_ROWS or [p.track for p in plans] != ["traditional"]:
        return 1  # another track's estimate (a network sized to its room, an encoder) knows no repeats
    for repeats in range(FOLD_REPEATS, 1, -1):
        needs = {p.track: repeats * works[p.track][0] * safety(p.track) + works[p.track][1] for p in plans}
        if all(needs[p.track] <= p.time_share for p in plans) and sum(needs.values()) <= clocked_pool_s:
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
                   gpu: bool | None = None, slowness: float = 1.0, large: LargePlan | None = None) -> Blueprint:
    """The rules' plan: the tracks that apply, why, their parameters and time shares.

    slowness: how many times slower than runtime/costs.py's constants the machine computes now
    (measure_slowness). Every estimate is scaled by it: the rooms the estimates must fit are
    divided by it, and the shares the estimates give are multiplied by it.
    `large`: a large table's rows, folds and the traditional attempt's measured estimate
    (`plan_large_table`): every track is planned on those rows; measured on this machine as it is
    now, that estimate is not scaled by `slowness` again."""
    if large is not None and large.traditional is not None:
        slowness = 1.0
    available = recipe_tracks() if available is None else available
    installed = installed or _installed
    if gpu is None:
        from runtime.machine import gpu_available

        gpu = gpu_available()
    notes: list[str] = []
    if large is not None:
        profile = planned_profile(profile, large.data.rows)
        settings = dataclasses.replace(settings, n_folds=large.folds)
        notes.append(f"a large table: {large.data.summary()}")
    final_s = final_reserve_s(budget_s, settings, profile.n_train + profile.n_test)
    refine_s = refine_reserve_s(budget_s, settings)
    # a large table's traditional attempt takes refine's reserve for rows (a candidate there costs a
    # whole attempt): a bag, several cuts of one, would cost more still
    bagging = bag_plan(budget_s) if large is None else None
    bag_s = bagging.reserve_s if bagging is not None else 0.0
    pool = tracks_pool_s(budget_s, final_s, refine_s, bag_s)
    floor = attempt_floor_s(settings)
    clocked_pool = pool
    if pool < floor:
        # the first attempt gets its floor whatever the clock says (runtime/budget.py): a plan made
        # for less only costs quality (10 s runs whose start-up took 8 s of a loaded machine got
        # the smallest plan, finished in 1.5 s of a 5 s floor, and lost 0.05 AUC)
        notes.append(f"the clock leaves the tracks {pool:.1f} s: the plan is made for the {floor:.0f} s an attempt gets anyway")
        pool = floor
    notes.append(f"budget {budget_s:.0f} s: {final_s:.0f} s kept for ensemble + submit, {refine_s:.0f} s for refine, "
                 + (f"{bag_s:.0f} s for the bags, " if bag_s else "")
                 + f"{pool:.0f} s for the tracks, which take turns on {settings.parallel_kernels} execution slot(s)")
    if bagging is not None:
        notes.append(f"a long budget: refine's search stops with up to {bag_s:.0f} s left for the bags: the best attempt "
                     f"of each of the {bagging.families} best model families fitted again with its folds cut "
                     f"{bagging.cuts} times, a seed per cut, every fold model averaged for the test rows, each kept "
                     "only when it beats the attempt it bags beyond fold noise; the ensemble then weighs a stacker over "
                     "every family's out-of-fold predictions, on its own inner folds; members may run "
                     "longer than their estimates")
    if slowness > 1.0:
        notes.append(f"the machine computes {slowness:.1f}x slower than on two free cores (a probe before the plan): "
                     "every estimate below is in free-core seconds, and each share is its estimate times that")

    n_folds = settings.n_folds
    threads = kernel_threads(settings)  # the first track's kernel's: the traditional folds run side by side on them
    skipped: dict[str, str] = {}
    wanted = lambda name: settings.tracks is None or name in settings.tracks  # noqa: E731

    # traditional first: always applicable, and the anchor every other track is measured against
    # (its cost decides the folds, which every track shares, only when it runs)
    lead, lead_need = None, 0.0
    if large is not None and large.traditional is not None and wanted("traditional") and "traditional" in available:
        trad = large.traditional  # measured on the table itself: the rows were chosen to fit
    elif wanted("traditional") and "traditional" in available:
        trad, n_folds = downsize_traditional(task, profile, n_folds, pool / SAFETY / slowness, threads)
        lead, why = lead_member(task, profile, n_folds, trad, pool / SAFETY / slowness, installed)
        if lead is not None:
            # the lead runs first, and LightGBM is planned with the time it leaves
            lead_need = min(pool, member_estimates(task, profile, n_folds)[lead] * SAFETY * slowness)
            trad, n_folds = downsize_traditional(task, profile, n_folds, (pool - lead_need) / SAFETY / slowness, threads)
            notes.append(f"traditional: {lead} before LightGBM, ~{lead_need:.0f} s: {why}")
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
    left, spare = pool - lead_need, refine_s  # a track after the first may use refine's reserve: diversity before tuning
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
        if large is not None and large.data.rows < large.data.n_rows and name != "traditional" and plans:
            # the rows were sampled to fit the traditional attempt's time: another track would take
            # time that more rows for the strongest model use better (a network on 2M of 5M rows ran
            # 3x past its estimate, and its fallback out of time, in 2026's first large runs)
            skipped[name] = (f"a large table sampled to {large.data.rows:,} of {large.data.n_rows:,} rows for the "
                             "traditional attempt's time: no time for another track")
            continue
        first = not plans
        # a large table's traditional attempt may take refine's reserve: a candidate there costs a
        # whole attempt, so refine could not use it, while more rows can
        room = left + spare if (not first or (large is not None and large.traditional is not None)) else left
        if name != "traditional" or plans:
            est = fit_secondary(name, task, profile, n_folds, est, room / slowness, installed, gpu, first=first)
            if isinstance(est, str):
                skipped[name] = est
                continue
        known = recipe_params(name)
        params = {k: v for k, v in {**est.params, "seed": settings.seed}.items() if k in known}
        need = min(room, max(est.seconds * safety(name) * slowness, 10.0))
        plans.append(TrackPlan(track=name, reason=_reason(name, task, profile, est), model_family=_family(name, profile, est.params),
                               feature_steps=est.steps, params=params, time_share=need))
        works[name] = ((est.seconds - est.fixed_s) * slowness, est.fixed_s * slowness)
        notes += [f"{name}: {n}" for n in est.notes]
        if need > left:
            why = "more rows for it, where a refine candidate would cost a whole attempt" if name == "traditional" else \
                "another model for the ensemble before more tuning of one"
            notes.append(f"{name}: takes {need - left:.0f} s of refine's reserve ({why})")
            spare -= need - left
        left = max(0.0, left - need)
    trad = next((p for p in plans if p.track == "traditional"), None)
    if trad is not None:
        # the traditional track's other model families get what the tracks leave, refine's reserve
        # included: another family before more tuning of one
        members, if_time, extra, member_notes = plan_members(task, profile, n_folds, (left + spare) / slowness, installed,
                                                             settings.seed, leave_out=lead)
        extra *= slowness
        if_time = {m: round(s * slowness, 2) for m, s in if_time.items()}
        if lead is not None:
            members = {lead: {"seed": settings.seed} if "seed" in SPACES[lead] else {}, **members}
            trad.lead, trad.time_share = lead, trad.time_share + lead_need
        trad.members, trad.members_if_time, trad.time_share = members, if_time, trad.time_share + extra
        work, fixed = works["traditional"]
        checks = len(members) * MEMBER_CHECK_S * slowness
        works["traditional"] = (work + extra / SAFETY - checks, fixed + checks)
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
    repeats = fold_repeats(profile, plans, works, clocked_pool)
    if repeats > 1:
        notes.append(f"the {n_folds} folds are cut {repeats} times ({profile.n_train:,} rows: one cut's fold noise would "
                     "decide between candidates; each row is predicted once per cut, and scored on the average); a member "
                     f"tried for time left needs its folds' time {repeats} times over")
        if trad is not None:  # a member run for time left repeats its folds too
            check = MEMBER_CHECK_S * slowness
            trad.members_if_time = {m: round((s - check) * repeats + check, 2) for m, s in trad.members_if_time.items()}
    cap = settings.max_fit_rows
    if cap and large is None and profile.n_train * (n_folds - 1) / n_folds > cap:
        for p in plans:  # the user's cap on a fit's rows: a seeded sample of each fold's training rows
            p.params["max_train_rows"] = min(int(p.params.get("max_train_rows") or cap), cap)
        notes.append(f"each fold's fit on at most {cap:,} of its training rows (--max-fit-rows)")
    for p in plans:
        p.time_share = round(min(1.0, p.time_share / budget_s), 3) if budget_s > 0 else 0.0
    if settings.refit:
        notes.append("each attempt is fitted once more on all rows when its time allows: the test rows get half that "
                     "fit's predictions, half the fold models' mean")
    validation = ValidationScheme(kind="kfold" if task.task_type in ("regression", "multitarget") else "stratified",
                                  n_folds=n_folds, seed=settings.seed, repeats=repeats, refit=settings.refit)
    return Blueprint(validation=validation, tracks=plans, skipped=skipped, budget_s=budget_s, notes=notes,
                     slowness=slowness, data=large.data if large is not None else None, bagging=bagging,
                     stack=long_budget(budget_s))


# -- large tables: the rows, measured --------------------------------------------------------------


@dataclass
class LargePlan:
    data: DataPlan
    folds: int
    traditional: Estimate | None  # None: not measured (no time for it, or the measuring fit failed)


MEASURE_SHARE = 0.15      # the measuring fits may take this share of the budget at most ...
MEASURE_MIN_S = 20.0      # ... and never less than this (the kernel's start and the sample's load included)
MEASURE_VALID_SHARE = 4   # the valid rows of a measuring fit: its training rows over this, ...
MEASURE_VALID_MAX = 50_000  # ... at most this many
MEASURE_ROWS_FOR_RESERVE = 1_000_000  # the final reserve is planned for at most this many rows before the rows are known


def plan_large_table(task: TaskSpec, profile: DataProfile, ctx: RunContext, run_dir: str) -> LargePlan:
    """The rows, folds and rounds of a large table (read into the columnar cache by the profile),
    from the traditional recipe measured on two samples of it in the traditional track's kernel
    (runtime/harness.py's `measure`), and the memory its kernels may use. Without time for the
    measure, or when it fails, the plan falls back to the cost constants (runtime/costs.py)."""
    settings = ctx.settings
    n_rows = profile.n_train
    memory_mb, memory_note = run_memory_mb(settings)
    limit = MEMORY_LIMIT_SHARE * memory_mb
    if settings.kernel_memory_mb:
        limit = min(limit, float(settings.kernel_memory_mb))
    size = min(settings.measure_rows, n_rows // 4)
    sizes = [size // 2, size]
    valid = max(1, min(size // MEASURE_VALID_SHARE, MEASURE_VALID_MAX))
    params = {"seed": settings.seed}
    measured, why = None, ""
    wanted = settings.tracks is None or "traditional" in settings.tracks
    if not wanted or "traditional" not in recipe_tracks():
        why = "the traditional track is not planned: the cost constants decide"
    elif size < 2 * MIN_SAMPLE_ROWS:
        why = f"too few rows ({n_rows:,}) to measure on a part of them"
    else:
        measured, why = measure_traditional(ctx, run_dir, params, sizes, valid,
                                            timeout_s=max(MEASURE_MIN_S, MEASURE_SHARE * ctx.remaining_s()), limit_mb=limit)
    budget_s = max(ctx.remaining_s(), 1.0)  # what the measure left
    final_s = final_reserve_s(budget_s, settings, profile.n_test + min(n_rows, MEASURE_ROWS_FOR_RESERVE))
    # the tracks' pool and refine's reserve: a refine candidate on a large table costs a whole
    # attempt, so the reserve is rows for the traditional attempt instead (make_blueprint gives it)
    pool = tracks_pool_s(budget_s, final_s, 0.0)
    room_s = max(1.0, pool / SAFETY - KERNEL_S - CHECK_S)
    memory_room = MEMORY_SHARE * memory_mb
    declared = int(SPACES["traditional"]["n_estimators"].default_for(Data(n=n_rows)))
    if measured is not None:
        cost = MeasuredCost.from_measure(measured)
        choice = plan_rows(cost, n_rows, profile.n_test, room_s, settings.n_folds, settings.refit, memory_room, declared,
                           settings.max_fit_rows)
        data = DataPlan(n_rows=n_rows, rows=choice.rows, seed=settings.seed,
                        rounds=choice.rounds if choice.rounds < declared else None, measured=measured,
                        estimate_s=round(choice.seconds, 1), memory_mb=round(choice.memory_mb), memory_limit_mb=round(limit),
                        reasons=choice.reasons + [memory_note])
        trad_params = {"seed": settings.seed, **({"n_estimators": choice.rounds} if choice.rounds < declared else {})}
        steps = traditional_estimate(task, planned_profile(profile, choice.rows), choice.folds, trad_params).steps
        steps.insert(0, data.summary())
        estimate = Estimate(seconds=KERNEL_S + CHECK_S + choice.seconds, params=trad_params, steps=steps,
                            fixed_s=KERNEL_S + CHECK_S, notes=[f"measured: {r}" for r in choice.reasons[1:]])
        return LargePlan(data=data, folds=choice.folds, traditional=estimate)
    # not measured: the constants' plan on the rows the user allows, the estimate's own downsizing on top
    rows = n_rows if settings.max_fit_rows is None else min(n_rows, int(settings.max_fit_rows * MIN_FOLDS / (MIN_FOLDS - 1)))
    folds = settings.n_folds if rows == n_rows else min(settings.n_folds, MIN_FOLDS)
    data = DataPlan(n_rows=n_rows, rows=rows, seed=settings.seed, memory_limit_mb=round(limit),
                    reasons=[f"not measured ({why}): {'all rows' if rows == n_rows else 'at most --max-fit-rows per fit'}, "
                             "the cost constants' plan", memory_note])
    return LargePlan(data=data, folds=folds, traditional=None)


def measure_traditional(ctx: RunContext, run_dir: str, params: dict, sizes: list[int], valid: int, timeout_s: float,
                        limit_mb: float) -> tuple[MeasuredFit | None, str]:
    """The traditional recipe's measuring fits in the traditional track's kernel (started now,
    with the harness and the table's sample: the track reuses it), or None and why not."""
    folder = Path(run_dir) / "measure"
    folder.mkdir(exist_ok=True)
    for module, source in render_recipe("traditional").items():
        (folder / f"{module}.py").write_text(source)
    ctx.events.emit("measure", rows=sizes, valid_rows=valid, timeout_s=round(timeout_s, 1),
                    what=f"measuring the traditional recipe on {sizes[0]:,} and {sizes[-1]:,} rows of the table")
    code = f"H.measure({str(folder)!r}, {params!r}, {sizes!r}, {valid!r})"
    try:
        with ctx.slots.hold():
            kernel = ctx.kernel("traditional", run_dir)
            kernel.memory_limit_mb = limit_mb
            result = kernel.execute(code, timeout=timeout_s)
    except KernelStartError as e:
        return None, f"the kernel did not start: {e}"
    if not result.ok:
        return None, f"the measuring fit {result.status}: {(result.error_value or '')[:200]}"
    try:
        measured = MeasuredFit.model_validate_json((folder / "measure.json").read_text())
    except (OSError, ValueError) as e:
        return None, f"its result did not read back: {e}"
    ctx.events.emit("measured", **measured.model_dump())
    return measured, ""


def run_memory_mb(settings: Settings) -> tuple[float, str]:
    """The memory the run may use (--memory-mb, else what the machine has available now, the
    running kernels' own included), and where that figure comes from."""
    if settings.memory_mb:
        return float(settings.memory_mb), f"memory: {settings.memory_mb:,.0f} MB (--memory-mb)"
    import psutil

    available = psutil.virtual_memory().available / 2 ** 20
    return available, f"memory: {available:,.0f} MB available on this machine when the plan was made"


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
# tried in this order while they fit: LightGBM on y / x where the target is an amount that scales
# with a positive column x (superstore by hand: 22.2 -> 14.8 MAE; only where the profile found
# such a column), the cheap linear model, neighbours (cheap on small tables, and on clustered
# classes such as digits better than any tree: 0.98 against LightGBM's 0.97 out of fold),
# CatBoost (the strongest on small tables), extra-trees only where time is left after all
MEMBER_ORDER = ("ratio", "linear", "knn", "catboost", "extratrees")


def plan_members(task: TaskSpec, profile: DataProfile, n_folds: int, room_s: float, installed: Callable[[str], bool],
                 seed: int = 0, leave_out: str | None = None) -> tuple[dict[str, dict], dict[str, float], float, list[str]]:
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
        seconds = estimates.get(name)
        if seconds is None or name == leave_out or name not in available or (name == "catboost" and not installed("catboost")):
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


def wide_numeric(profile: DataProfile) -> bool:
    """More than WIDE numeric columns, and most of the model's: pixels, spectra, many measurements."""
    numeric = len(profile.columns_of("numeric"))
    return numeric > WIDE and numeric >= 0.8 * model_columns(profile)


def categorical_share(profile: DataProfile) -> tuple[int, int]:
    """(categorical columns, usable columns) of a table without text or images; (0, 0) with them."""
    usable = [c for c in profile.columns if c.kind not in ("id", "constant")]
    if any(c.kind in ("text", "image") for c in usable):
        return 0, 0
    return sum(c.kind == "categorical" for c in usable), len(usable)


def lead_member(task: TaskSpec, profile: DataProfile, n_folds: int, trad: Estimate, room_s: float,
                installed: Callable[[str], bool]) -> tuple[str | None, str]:
    """The member that runs before LightGBM, and why, or (None, ""); `room_s` is the tracks' pool
    in free-core seconds.

    - Most columns categorical: CatBoost, when it fits the room. Its ordered target statistics
      suit such tables better than LightGBM's category splits (superstore, 7 of 11 columns
      categorical: CatBoost 19.2 MAE against LightGBM's 22.2 by hand), and as a member after
      LightGBM it met its check or fold deadline and never ran.
    - A wide numeric table where LightGBM, downsized, still does not fit the room or had to
      sample its rows: the cheaper of neighbours and the linear model. mnist at 10 s: LightGBM
      planned on 1,000 sampled rows timed out and the run submitted the constant (0.10
      accuracy); kNN on the raw pixels scores 0.93 in 1.5 s."""
    from prompts import member_recipes

    available = member_recipes()
    estimates = member_estimates(task, profile, n_folds)
    cats, usable = categorical_share(profile)
    if cats > 0.5 * usable and "catboost" in available and installed("catboost") and estimates["catboost"] <= room_s:
        return "catboost", (f"{cats} of {usable} columns categorical: CatBoost's ordered target statistics suit them "
                            f"better than LightGBM's category splits; ~{estimates['catboost']:.0f} s")
    work_room = max(room_s - trad.fixed_s, 0.75 * room_s)
    sampled = "max_train_rows" in trad.params
    if profile.columns_of("image") or not wide_numeric(profile) or (trad.seconds - trad.fixed_s <= work_room and not sampled):
        return None, ""
    fitting = [m for m in ("knn", "linear") if m in available and (m != "knn" or profile.n_train <= KNN_MAX_ROWS)]
    if not fitting:
        return None, ""
    lead = min(fitting, key=lambda m: estimates[m])
    why = (f"{model_columns(profile)} columns, mostly numeric: LightGBM needs "
           f"~{trad.seconds - trad.fixed_s:.0f} s of folds{' on sampled rows' if sampled else ''} where "
           f"{work_room:.0f} s fit; {lead} scores in ~{estimates[lead]:.0f} s")
    return lead, why


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
    folds and seed always the framework's. Its time shares count by their ratios: they split the
    tracks' part of the budget as the rules' draft has it (runtime/budget.py `tracks_part`), so the
    reserves for refine and for the ensemble and submission stay."""
    offered = {t.track: t for t in draft.tracks}
    total = (sum(p.time_share for p in proposal.tracks) or 1.0) / (tracks_part(draft) or 1.0)
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
    return Blueprint(validation=validation, tracks=tracks, skipped=skipped, budget_s=draft.budget_s, notes=notes,
                     slowness=draft.slowness, data=draft.data,  # a large table's rows are the measure's, whatever the LLM plans
                     bagging=draft.bagging, stack=draft.stack)
