"""The run's settings, and the kernel a run starts before anything else.

A module of its own, importing neither pandas nor LangGraph: `iml run` reads its settings and
starts the first track's kernel here, so the kernel's imports overlap the framework's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from runtime.kernel import WarmKernel
from runtime.machine import default_slots

RAY_SLOTS = 8  # execution slots when Ray schedules the kernels: more than there are tracks
HARNESS_STARTUP = "from runtime.harness import Harness\nH = Harness({run_dir!r})\n"


@dataclass
class Settings:
    time_budget_s: float = 600.0
    n_folds: int = 5
    seed: int = 0
    max_debug_attempts: int = 2
    min_attempt_timeout_s: float = 20.0  # an attempt gets at least this (at most half the budget), even when it is spent
    max_attempt_timeout_s: float | None = None  # cap on one attempt (check or execute); default: the track's share
    parallel_kernels: int = field(default_factory=default_slots)
    kernel_threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    kernel_memory_mb: int | None = None
    tracks: tuple[str, ...] | None = None  # restrict the blueprint to these tracks
    target: str | None = None
    metric: str | None = None
    id_column: str | None = None
    # caps on the run's LLM use, checked before each request; once reached the run goes on offline
    max_llm_cost_usd: float | None = field(default_factory=lambda: _env_number("IML_MAX_LLM_COST", float))
    max_llm_tokens: int | None = field(default_factory=lambda: _env_number("IML_MAX_LLM_TOKENS", int))
    # a Ray cluster for the tracks' kernels ("auto", "local", host:port); None: kernels run here
    ray_address: str | None = field(default_factory=lambda: os.environ.get("IML_RAY_ADDRESS", "").strip() or None)
    ray_cpus_per_track: float | None = None  # None: the cluster's CPUs split over the planned tracks
    ray_max_retries: int = 2  # new actors for one cell whose actor died, before the cell counts as died
    # bounds of refine's search and of the budget's reserves
    # each attempt also fitted on all rows when its time allows; the test rows get half that fit's
    # predictions, half the fold models' mean (out-of-fold scores are unchanged)
    refit: bool = True
    refine_max_candidates: int = 60  # per base attempt: each model family refine moves on to gets as many
    refine_max_reseeds: int = 8  # the best params with other seeds: members that average out bagging noise
    refine_llm_rewrites: int = 3  # LLM rewrites of one module before the parameter search (with an LLM)
    final_reserve_share: float = 0.06  # of the budget, kept for ensemble + submit + the outputs ...
    final_reserve_min_s: float = 2.5  # ... and never less: at 10 s the stage took 1.1-1.6 s (kernel close, blend in the kernel, the report)
    refine_reserve_share: float = 0.15  # of budgets of 45 s or more, kept for refine's search
    recursion_limit: int = 10_000  # graph steps per (sub)graph run; refine's loop is bounded by time and candidates
    # large tables (README, "Large tables"): a training table of this size or more is converted once to a
    # columnar cache in the run folder, profiled on a sample, and its rows planned by a measured fit
    large_table_mb: float = 32.0
    profile_sample_rows: int = 100_000  # a large table's profile: the rows sampled for kinds, examples, warnings
    measure_rows: int = 200_000  # the blueprint's measuring fits: this many rows, and half as many
    max_fit_rows: int | None = None  # no fit sees more training rows than this (None: as many as the time allows)
    memory_mb: float | None = None  # the memory the run may use; None: what the machine has available at its start


def _env_number(name: str, kind: type) -> Any:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except ValueError:
        from runtime.errors import TaskInputError

        raise TaskInputError(f"{name}={value!r} is not a number") from None


def kernel_threads(settings: Settings) -> int:
    """Threads each local kernel computes with: the cores shared by the kernels that may compute at once."""
    return max(1, settings.kernel_threads // max(1, settings.parallel_kernels))


def warm_kernel(settings: Settings) -> WarmKernel | None:
    """A kernel for the run's first track, started now (None on a Ray cluster, whose actors
    start their own kernels)."""
    if settings.ray_address:
        return None
    return WarmKernel(threads=kernel_threads(settings), memory_limit_mb=settings.kernel_memory_mb)
