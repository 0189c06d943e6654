"""blueprint: profile + budget -> validation scheme and one plan per applicable track.

Each rule states its reason; a track that does not fit is recorded in `skipped` with why.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext, Settings
from graph.state import Blueprint, DataProfile, IMLState, TaskSpec, TrackPlan, ValidationScheme
from prompts import recipe_tracks


def blueprint(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    plan = make_blueprint(state["task"], state["profile"], ctx.settings, budget_s=max(ctx.remaining_s(), 1.0))
    ctx.events.emit("blueprint", tracks=[t.track for t in plan.tracks], skipped=plan.skipped)
    Path(state["run_dir"], "blueprint.json").write_text(plan.model_dump_json(indent=2))
    return {"blueprint": plan}


def make_blueprint(task: TaskSpec, profile: DataProfile, settings: Settings, budget_s: float) -> Blueprint:
    validation = ValidationScheme(
        kind="kfold" if task.task_type == "regression" else "stratified",
        n_folds=settings.n_folds,
        seed=settings.seed,
    )
    candidates = [traditional_plan(task, profile)]
    tracks, skipped = [], {}
    available = recipe_tracks()
    for plan in candidates:
        if settings.tracks is not None and plan.track not in settings.tracks:
            skipped[plan.track] = "not among the tracks asked for (--tracks)"
        elif plan.track not in available:
            skipped[plan.track] = "no recipe for this track is installed"
        else:
            tracks.append(plan)
    total = sum(t.time_share for t in tracks) or 1.0
    for t in tracks:
        t.time_share = round(t.time_share / total, 3)
    return Blueprint(validation=validation, tracks=tracks, skipped=skipped, budget_s=budget_s)


def traditional_plan(task: TaskSpec, profile: DataProfile) -> TrackPlan:
    n = profile.n_train
    cats = profile.columns_of("categorical")
    texts = profile.columns_of("text")
    steps = ["drop id and constant columns", "numeric columns as they are (LightGBM handles missing values)"]
    if cats:
        steps.append(f"{len(cats)} categorical columns as LightGBM categories")
    if profile.columns_of("datetime"):
        steps.append("datetime columns split into parts")
    if texts:
        steps.append(f"{len(texts)} text columns as length and word counts")
    params = {
        "learning_rate": 0.05 if n < 20_000 else 0.08,
        "num_leaves": 15 if n < 2_000 else 31 if n < 50_000 else 63,
        "min_child_samples": 10 if n < 2_000 else 20,
        "n_estimators": 2000,
        "early_stopping_rounds": 100,
        "seed": 0,
    }
    return TrackPlan(
        track="traditional",
        reason=f"gradient-boosted trees are the strongest default on tabular data ({n} rows, {len(profile.columns)} columns)",
        model_family="LightGBM",
        feature_steps=steps,
        params=params,
        time_share=1.0,
    )
