"""The pretrained track frozen against fine-tuned, on small samples of the example tasks.

    python -m scripts.bench_finetune [--tasks movie_reviews,reviews_dated,digits_images]
        [--rows 300] [--test-rows 100] [--folds 2] [--time-budget 5m] [--repeats 2] [--out DIR]

For each task and repeat r: the example written with seed r, its training rows sampled down to
`--rows` and its test rows to `--test-rows`; analyze, profile and blueprint plan it at
`--time-budget` (all tracks, as a run would), which says whether it would fine-tune and why;
then the pretrained recipe runs twice through the harness on the same folds (one cut): frozen
(the plan's frozen settings) and fine-tuned (the plan's settings when it chose fine-tuning,
else the richest that fits the whole budget, else the leanest). It prints, per run, the plan's
choice, each mode's out-of-fold score, seconds, and the fine-tuning's estimate against its
measured time, and writes them to OUT/results.jsonl. CPU or GPU: whatever torch sees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_TASKS = "movie_reviews,reviews_dated,digits_images"


def sampled_task(name: str, seed: int, rows: int, test_rows: int, out: Path) -> Path:
    """The example `name` (seed `seed`) with `rows` training rows and `test_rows` test rows,
    sampled with that seed; image folders are linked, not copied."""
    from graph.context import Settings
    from runtime.task_reader import read_task
    from scripts.examples import make_example

    full, task_dir = out / "full", out / "task"
    for folder in (full, task_dir):
        shutil.rmtree(folder, ignore_errors=True)
    make_example(name, full, seed=seed)
    spec = read_task(full, Settings())
    rng = np.random.RandomState(seed)
    task_dir.mkdir(parents=True)
    for item in full.iterdir():
        if item.is_dir() and item.name != ".answers":
            (task_dir / item.name).symlink_to(item.resolve(), target_is_directory=True)
        elif item.is_file():
            shutil.copy(item, task_dir / item.name)
    sample_file = spec.sample_submission_file
    for file, keep in ((spec.train_file, rows), (spec.test_file or sample_file, test_rows)):
        frame = pd.read_csv(full / file)
        if len(frame) > keep:
            frame = frame.iloc[np.sort(rng.choice(len(frame), keep, replace=False))]
        frame.to_csv(task_dir / file, index=False)
    if spec.test_file and sample_file and spec.id_column:  # the sample submission lists the kept test ids
        test_ids = pd.read_csv(task_dir / spec.test_file)[spec.id_column]
        sample = pd.read_csv(full / sample_file)
        sample[sample[spec.id_column].isin(test_ids)].to_csv(task_dir / sample_file, index=False)
    return task_dir


def plan_run(task_dir: Path, run_dir: Path, budget_s: float, folds: int) -> dict:
    """The task read, profiled and planned by the blueprint's rules (all tracks) into a run
    folder, as scripts/bench_kernel.py does; the validation cut once."""
    from graph.context import Settings
    from nodes.blueprint import make_blueprint
    from runtime.data_profile import profile_data
    from runtime.task_reader import read_task

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    task = read_task(task_dir, Settings())
    profile = profile_data(task)
    plan = make_blueprint(task, profile, Settings(time_budget_s=budget_s, n_folds=folds), budget_s=budget_s)
    plan.validation.repeats = 1  # both modes on one cut of the same folds
    for name, model in (("task", task), ("profile", profile), ("blueprint", plan)):
        (run_dir / f"{name}.json").write_text(model.model_dump_json(indent=2))
    return {"task": task, "profile": profile, "blueprint": plan}


def modes(state: dict, budget_s: float, folds: int) -> tuple[dict, dict, str, float | None]:
    """(frozen params, fine-tuned params, the plan's choice with its note, the fine-tuning's estimate)."""
    from graph.context import Settings
    from runtime.budget import final_reserve_s, refine_reserve_s, tracks_pool_s
    from runtime.costs import SAFETY, Estimate, finetune_estimate, finetune_plan

    bp, task, profile = state["blueprint"], state["task"], state["profile"]
    plan = next((t for t in bp.tracks if t.track == "pretrained"), None)
    notes = [n for n in bp.notes if n.startswith("pretrained:")]
    gpu = _cuda()
    if plan is not None and plan.params.get("finetune"):
        tuned = dict(plan.params)
        frozen = {"seed": tuned["seed"]}
        choice = "fine-tune: " + next((n for n in notes if "fine-tuned:" in n), "")
        est = finetune_estimate(task, profile, folds, gpu, max_length=tuned.get("max_length", 128),
                                image_size=tuned.get("image_size", 224), epochs=tuned["epochs"]).seconds
        return frozen, tuned, choice, est
    frozen = dict(plan.params) if plan is not None else {"seed": 0}
    choice = "frozen: " + (" ".join(notes) or (bp.skipped.get("pretrained") or "")) if plan else \
        f"skipped: {bp.skipped.get('pretrained')}"
    settings = Settings(time_budget_s=budget_s)
    pool = tracks_pool_s(budget_s, final_reserve_s(budget_s, settings, profile.n_train + profile.n_test),
                         refine_reserve_s(budget_s, settings))
    whole = finetune_plan(task, profile, folds, pool / SAFETY, gpu)
    if not isinstance(whole, Estimate):  # the leanest setting: what the comparison can afford
        images = bool(profile.columns_of("image"))
        whole = finetune_estimate(task, profile, folds, gpu, **({"image_size": 64} if images else {"max_length": 64}),
                                  epochs=2)
    return frozen, {**whole.params, "seed": frozen.get("seed", 0)}, choice, whole.seconds


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_mode(harness, folder: Path, params: dict) -> dict:
    """The pretrained recipe with these params through the harness: score, seconds, status."""
    from prompts import render_recipe

    folder.mkdir(parents=True, exist_ok=True)
    for module, source in render_recipe("pretrained").items():
        (folder / f"{module}.py").write_text(source)
    started = time.time()
    result = harness.run_attempt(folder, params)
    return {"status": result["status"], "score": result.get("score"), "seconds": round(time.time() - started, 1),
            "device": result.get("device"), "error": result.get("error")}


def main(argv: list[str] | None = None) -> int:
    from scripts.cli import parse_duration

    p = argparse.ArgumentParser(prog="python -m scripts.bench_finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=DEFAULT_TASKS)
    p.add_argument("--rows", type=int, default=300, help="training rows sampled from each example (default 300)")
    p.add_argument("--test-rows", type=int, default=100, help="test rows sampled (default 100)")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--time-budget", type=parse_duration, default=parse_duration("5m"), help="the plan's budget (default 5m)")
    p.add_argument("--repeats", type=int, default=2, help="example seeds 0..K-1 (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch's CPU threads, as a track's kernel gets (default 2)")
    p.add_argument("--out", type=Path, default=Path(".bench/finetune"))
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from runtime.harness import Harness

    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    print(f"{'task':15} {'seed':>4} {'metric':8} {'frozen':>9} {'s':>6} {'tuned':>9} {'s':>6} {'est s':>6}  plan")
    for name in args.tasks.split(","):
        for seed in range(args.repeats):
            where = args.out / f"{name}-{seed}"
            task_dir = sampled_task(name, seed, args.rows, args.test_rows, where)
            state = plan_run(task_dir, where / "run", args.time_budget, args.folds)
            frozen, tuned, choice, estimate = modes(state, args.time_budget, args.folds)
            harness = Harness(where / "run")
            row = {"task": name, "seed": seed, "rows": args.rows, "folds": args.folds, "budget_s": args.time_budget,
                   "metric": harness.metric.name, "plan": choice, "frozen_params": frozen, "tuned_params": tuned,
                   "tuned_estimate_s": estimate,
                   "frozen": run_mode(harness, where / "frozen", frozen), "tuned": run_mode(harness, where / "tuned", tuned)}
            with results.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            fr, tu = row["frozen"], row["tuned"]
            print(f"{name:15} {seed:4d} {row['metric']:8} {_score(fr):>9} {fr['seconds']:6.0f} {_score(tu):>9} "
                  f"{tu['seconds']:6.0f} {estimate or 0:6.0f}  {choice[:140]}", flush=True)
    print(f"results in {results}")
    return 0


def _score(mode: dict) -> str:
    return f"{mode['score']:.4f}" if mode["status"] == "ok" else mode["status"]


if __name__ == "__main__":
    raise SystemExit(main())
