"""Benchmark of the execution engine (issue 3), reported as numbers and ratios.

    python -m scripts.bench_kernel [--task diamonds] [--repeats 3]

1. kernel start: a bare KernelSession, and one with the harness loaded (the data read once);
2. one attempt in a warm kernel against the same attempt in a fresh `python` process, which
   pays for imports and reading the data every time;
3. what loading the data once saves across attempts on a 50k-row task.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from graph.context import HARNESS_STARTUP, Settings
from nodes.blueprint import make_blueprint
from prompts import render_recipe
from runtime.data_profile import profile_data
from runtime.kernel import KernelSession
from runtime.task_reader import read_task
from scripts.examples import make_example

PLAIN_ATTEMPT = """
import json, sys, time
started = time.time()
from runtime.harness import Harness
H = Harness(sys.argv[1])
loaded = time.time()
H.run_attempt(sys.argv[2], json.loads(sys.argv[3]))
print(json.dumps({"load_s": loaded - started, "total_s": time.time() - started}))
"""


def prepare(task_name: str, root: Path, n_estimators: int) -> tuple[Path, Path, dict]:
    task_dir = make_example(task_name, root / "task")
    run_dir = root / "run"
    run_dir.mkdir()
    task = read_task(task_dir, Settings())
    profile = profile_data(task)
    plan = make_blueprint(task, profile, Settings(n_folds=5), budget_s=600)
    for name, model in (("task", task), ("profile", profile), ("blueprint", plan)):
        (run_dir / f"{name}.json").write_text(model.model_dump_json())
    # A light, fixed model: the point is what surrounds the model code, not the model.
    params = {"n_estimators": n_estimators, "early_stopping_rounds": 20, "seed": 0}
    attempt = run_dir / "attempt"
    attempt.mkdir()
    for module, source in render_recipe("traditional").items():
        (attempt / f"{module}.py").write_text(source)
    return run_dir, attempt, params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="diamonds", help="example task (default diamonds, 54k rows)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--estimators", type=int, default=100, help="boosting rounds of the timed attempt")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        run_dir, attempt, params = prepare(args.task, Path(tmp), args.estimators)
        rows = sum(1 for _ in open(Path(tmp) / "task" / "train.csv")) - 1
        bare, loaded = [], []
        for _ in range(args.repeats):
            with KernelSession(run_dir) as k:
                bare.append(k.start_time_s)
            with KernelSession(run_dir, startup_code=HARNESS_STARTUP.format(run_dir=str(run_dir))) as k:
                loaded.append(k.start_time_s)

        cell = f"import json\n_r = H.run_attempt({str(attempt)!r}, json.loads({json.dumps(params)!r}))"
        in_kernel, harness_own = [], []
        with KernelSession(run_dir, startup_code=HARNESS_STARTUP.format(run_dir=str(run_dir))) as k:
            k.execute(cell, timeout=600)  # warm-up: first-call imports inside the recipe
            for _ in range(args.repeats):
                result = k.execute(cell, timeout=600)
                assert result.ok, result.error_value
                in_kernel.append(result.duration_s)
                harness_own.append(json.loads((attempt / "result.json").read_text())["duration_s"])

        plain, plain_load = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", PLAIN_ATTEMPT, str(run_dir), str(attempt), json.dumps(params)],
                                 capture_output=True, text=True, check=True)
            plain.append(time.perf_counter() - started)
            plain_load.append(json.loads(out.stdout.strip().splitlines()[-1])["load_s"])

    med = statistics.median
    overhead = med(in_kernel) - med(harness_own)
    load_cost = med(loaded) - med(bare)
    rows_out = [
        ("task", f"{args.task} ({rows} train rows), {args.repeats} repeats, medians"),
        ("kernel start, bare", f"{med(bare):.2f} s"),
        ("kernel start, harness + data loaded", f"{med(loaded):.2f} s"),
        ("one attempt, warm kernel (cell round trip)", f"{med(in_kernel):.2f} s"),
        ("  of which the harness's own CV work", f"{med(harness_own):.2f} s"),
        ("  kernel messaging overhead", f"{overhead * 1000:.0f} ms ({overhead / med(harness_own):.1%} of the attempt)"),
        ("one attempt, fresh python process", f"{med(plain):.2f} s (imports + data {med(plain_load):.2f} s)"),
        ("fresh process / warm kernel", f"{med(plain) / med(in_kernel):.2f}x"),
        ("data load saved per attempt after the first", f"{med(plain_load):.2f} s (kernel-measured {load_cost:.2f} s)"),
        ("saved over 10 attempts", f"{10 * (med(plain) - med(in_kernel)):.1f} s"),
    ]
    width = max(len(k) for k, _ in rows_out)
    for key, value in rows_out:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
