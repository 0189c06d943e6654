"""debug: repair a failed attempt.

With an LLM, the LLM gets the failing modules, the error with its traceback and the earlier
attempts, and returns repaired modules (source "debug"), up to `max_debug_attempts` repairs.
After that, or when the LLM gives no usable answer, the track falls back to its own recipe
(when the recipe has not failed already), then to the simpler recipe shared by all tracks.
Recipe code that fails (offline, or after the LLM's repairs) is repaired before the track
retreats: the columns the error points to (by name, or the kind of column the failing step
handles: dates, text, images, categories) get another kind (`coerce_columns`: a date that does
not parse becomes a category) or, when that failed already, are left out (`drop_columns`), and
the same recipe runs again with the rest (source "repair"), at most MAX_REPAIRS times. The
bare shared recipe is the last resort. `fell_back` stops the loop if that fails too.
"""

from __future__ import annotations

import re
from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext, kernel_threads
from graph.llm import LLMError, ModuleCode, client_for, code_from_answer
from graph.state import TrackState
from nodes.track import attempt_params, attempt_time, attempt_timeout
from prompts import FALLBACK, render_recipe
from prompts.render import debug_messages
from runtime import budget
from runtime.costs import MIN_SAMPLE_ROWS, Estimate, planned_profile, pretrained_estimate, rows_for_speed, shrink_for_speed


def debug(state: TrackState, runtime: Runtime[RunContext]) -> dict:
    track = state["plan"].track
    llm_update: dict = {}
    client = client_for(runtime.context)
    attempts = state.get("attempts", [])
    if attempts and attempts[-1].status == "timeout" and attempts[-1].source in ("recipe", "repair") and not state.get("fell_back"):
        retry = params_for_speed(state, runtime.context)
        if retry is not None:
            smaller, needs_s = retry
            runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="repair", smaller=smaller,
                                        needs_s=round(needs_s, 1))
            return {"code": state["code"], "source": "repair", "repairs": {**(state.get("repairs") or {}), **smaller},
                    "needs_s": needs_s, "fell_back": False, "attempt": state["attempt"] + 1, "last_error": None}
    if attempts and out_of_memory(attempts[-1]) and attempts[-1].source in ("recipe", "repair") and not state.get("fell_back"):
        smaller = params_for_memory(state)
        if smaller is not None:
            runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="repair", smaller=smaller,
                                        why="out of memory")
            return {"code": state["code"], "source": "repair", "repairs": {**(state.get("repairs") or {}), **smaller},
                    "fell_back": False, "attempt": state["attempt"] + 1, "last_error": None}
    if attempts and attempts[-1].source in ("recipe", "repair") and not state.get("fell_back"):
        repairs = column_repairs(state)
        if repairs is not None:
            runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="repair", repairs=repairs)
            return {"code": state["code"], "source": "repair", "repairs": repairs, "fell_back": False,
                    "attempt": state["attempt"] + 1, "last_error": None}
    if client is not None:
        repaired = repair_with_llm(state, runtime.context, client)
        if "code" in repaired:
            return repaired
        llm_update = repaired  # no repair (limit reached, time spent, or no usable answer): fall back
        tried = {a.source for a in state.get("attempts", [])}
        if not tried & {"recipe", "fallback"}:
            # The LLM's code failed, not the recipe: the track's own recipe is the stronger fallback.
            runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="fallback", recipe=track)
            return {"code": render_recipe(track), "source": "fallback", "fell_back": False, "attempt": state["attempt"] + 1,
                    "last_error": None, **llm_update}
    runtime.context.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="fallback")
    return {"code": render_recipe(FALLBACK), "source": "fallback", "fell_back": True, "attempt": state["attempt"] + 1, "last_error": None,
            **llm_update}


MAX_REPAIRS = 3
MAX_SHRINKS = 2     # retries of a too slow attempt with cheaper params, before the fallback


def params_for_speed(state: TrackState, ctx: RunContext) -> tuple[dict, float] | None:
    """Cheaper params for the recipe whose attempt was too slow for its time (the plan shrinks,
    as the blueprint's does for a small budget, now from the speed measured), with the seconds
    the retry needs at that speed; or None: not the traditional track, shrunk MAX_SHRINKS times
    already, or no cheaper step left."""
    attempts = state["attempts"]
    shrinks = sum(a.status == "timeout" and a.source in ("recipe", "repair") for a in attempts)  # not the members'
    params = attempt_params(state)
    if state["plan"].track == "pretrained" and params.get("finetune"):
        return frozen_retreat(state, params, ctx.gpu_available(state["run_dir"]))
    if state["plan"].track != "traditional" or shrinks > MAX_SHRINKS:
        return None
    last = attempts[-1]
    # killed by the cell's timeout inside one fold: a fit took at least that long
    fit_seconds = last.fit_seconds or last.duration_s
    blueprint = state["blueprint"]
    room_s = budget.retry_room_s(attempt_timeout(state, ctx))
    if blueprint.data is not None:
        # a large table's plan was measured: its retry keeps the plan's settings on fewer rows
        folds = blueprint.validation.n_folds
        current = int(params.get("max_train_rows") or blueprint.data.rows * (folds - 1) / folds)
        rows = rows_for_speed(current, fit_seconds, folds, blueprint.validation.refit, room_s)
        if rows is not None:
            return {"max_train_rows": rows}, budget.retry_needs_s(room_s)
    profile = planned_profile(state["profile"], blueprint.data.rows if blueprint.data else None)
    est = shrink_for_speed(state["task"], profile, blueprint.validation.n_folds, params, fit_seconds, room_s,
                           kernel_threads(ctx.settings))
    if est is None:
        return None
    needs_s = budget.retry_needs_s(est.measured_s or 0.0)
    return {k: v for k, v in est.params.items() if params.get(k) != v}, needs_s


def out_of_memory(attempt) -> bool:
    """Stopped at its kernel's memory limit, or killed by the system (SIGKILL) as a kernel out of memory is."""
    return attempt.status == "out_of_memory" or (attempt.status == "died" and "SIGKILL" in (attempt.error or ""))


def params_for_memory(state: TrackState) -> dict | None:
    """A retry of an attempt whose kernel ran out of memory: each fold's fit on half the training
    rows it had (`max_train_rows`, a seeded sample; every row is still predicted); None once that
    is below MIN_SAMPLE_ROWS or it was halved MAX_SHRINKS times already."""
    attempts = state["attempts"]
    if sum(out_of_memory(a) and a.source in ("recipe", "repair") for a in attempts) > MAX_SHRINKS:
        return None
    blueprint, profile = state["blueprint"], state["profile"]
    rows = blueprint.data.rows if blueprint.data is not None else profile.n_train
    folds = blueprint.validation.n_folds
    current = attempt_params(state).get("max_train_rows") or int(rows * (folds - 1) / folds)
    half = int(current) // 2
    return {"max_train_rows": half} if half >= MIN_SAMPLE_ROWS else None


def frozen_retreat(state: TrackState, params: dict, gpu: bool) -> tuple[dict, float]:
    """The pretrained track's retry when fine-tuning could not end in its time: its frozen path
    (embeddings once, a linear head), the plan's other choice, at the same text and image sizes;
    with the seconds runtime/costs.py estimates for it. Better than the bare fallback recipe."""
    frozen = pretrained_estimate(state["task"], state["profile"], state["blueprint"].validation.n_folds, lambda _: True,
                                 max_length=int(params.get("max_length") or 128), gpu=gpu,
                                 image_size=int(params.get("image_size") or 224))
    return {"finetune": False}, budget.retry_needs_s(frozen.seconds if isinstance(frozen, Estimate) else 0.0)


# what a failing step's traceback says about the kind of column it handles
KIND_CLUES = {
    "datetime": ("datetime", "to_datetime", "timestamp", "timezone", "tz-aware", "tz-naive", "_date_parts", "day_of_week"),
    "text": ("tfidf", "vectorizer", "_text_matrix", "_docs", "tokeniz", "vocabulary", "_embed_texts"),
    "image": ("load_images", "_image_features", "_embed_images", "pil", "image", "pixel", "hog"),
    "categorical": ("categor", "_te_table", "_te_apply", "target encod"),
    "numeric": ("to_numeric", "could not convert string to float", "numeric", "_numbers", "_logged"),
}
# a column's kind when its own step failed: another way to read it, before leaving it out
COERCE_TO = {"datetime": "categorical", "text": "categorical", "numeric": "categorical"}


def column_repairs(state: TrackState) -> dict | None:
    """The next repairs for the recipe's failure, or None when there is none left to try: the
    feature columns the error names, else those of the kind its failing step handles; each is
    first read as another kind (COERCE_TO), then left out. Never every column."""
    repairs = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, (list, tuple)) else v)
               for k, v in (state.get("repairs") or {}).items()}  # a too slow attempt's retry adds plain params
    if sum(1 for a in state.get("attempts", []) if a.source == "repair") >= MAX_REPAIRS:
        return None
    last = state["attempts"][-1]
    error = (state.get("last_error") or last.error or "")
    log = Path(last.dir, "log.txt")
    if log.exists():
        error += "\n" + log.read_text(errors="replace")[-4000:]
    dropped = set(repairs.get("drop_columns", []))
    coerced = dict(repairs.get("coerce_columns", {}))
    kinds = {c.name: coerced.get(c.name, c.kind) for c in state["profile"].columns if c.name not in dropped}
    named = [c for c in kinds if re.search(rf"['\"`]{re.escape(c)}['\"`]", error)]
    if not named:
        lowered = error.lower()
        for kind, clues in KIND_CLUES.items():
            if any(k == kind for k in kinds.values()) and any(clue in lowered for clue in clues):
                named = [c for c, k in kinds.items() if k == kind]
                break
    if not named or len(named) >= len(kinds) and not any(kinds[c] in COERCE_TO and c not in coerced for c in named):
        return None
    for c in named:
        if kinds[c] in COERCE_TO and c not in coerced:
            coerced[c] = COERCE_TO[kinds[c]]
        else:
            dropped.add(c)
            coerced.pop(c, None)
    if len(dropped) >= len(state["profile"].columns):
        return None
    kept = {k: v for k, v in repairs.items() if k not in ("drop_columns", "coerce_columns")}  # a retry's cheaper params
    return {**kept, **({"drop_columns": sorted(dropped)} if dropped else {}), **({"coerce_columns": coerced} if coerced else {})}


def llm_repairs(state: TrackState) -> int:
    return sum(1 for a in state.get("attempts", []) if a.source == "debug")


def repair_with_llm(state: TrackState, ctx: RunContext, client) -> dict:
    """The next attempt's update with the LLM's repaired modules, or {"llm_usage": ...} (maybe
    empty) when the track should fall back instead."""
    track = state["plan"].track
    if llm_repairs(state) >= ctx.settings.max_debug_attempts:
        ctx.events.emit("debug_llm", track=track, gave_up=f"{ctx.settings.max_debug_attempts} LLM repairs failed")
        return {}
    if ctx.remaining_s() <= 0:
        ctx.events.emit("debug_llm", track=track, gave_up="the time budget is spent")
        return {}
    attempts = state.get("attempts", [])
    last = attempts[-1] if attempts else None
    error = state.get("last_error") or (last.error if last else None) or "unknown error"
    log = Path(last.dir, "log.txt") if last is not None and last.status != "check_failed" else None
    if log is not None and log.exists():
        output = log.read_text(errors="replace").strip()
        if output and output not in error:
            error += "\n\nOutput of the attempt (its end):\n" + output[-2000:]
    try:
        answer = client.ask(ModuleCode, debug_messages(state["task"], state["profile"], state["plan"], state["code"], error,
                                                       attempts, attempt=state["attempt"], status=last.status if last else "failed",
                                                       time=attempt_time(state, ctx)),
                            role="debug", node="debug", track=track, events=ctx.events)
    except LLMError as e:
        ctx.events.emit("debug_llm", track=track, gave_up=f"LLM: {str(e)[:200]}")
        return {"llm_usage": e.calls}
    code, notes = code_from_answer(answer.value, state["code"])
    ctx.events.emit("debug", track=track, attempt=state["attempt"] + 1, source="debug", notes=notes[:300])
    return {"code": code, "source": "debug", "fell_back": False, "attempt": state["attempt"] + 1, "last_error": None,
            "llm_usage": answer.calls}
