"""The cluster benchmark: `iml batch` over example tasks in one local process at a time, then
with their tracks on a Ray cluster of two 1-CPU worker nodes on this machine; per task the wall
time, validity and score of each, the ratio, and what an attempt costs in an actor beyond its
own compute (the transfer and scheduling around the cell) against a local kernel.

    python -m scripts.bench_cluster [--tasks iris,penguins,wine,breast_cancer] [--time-budget 60s] [--out .bench/cluster]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scripts.cli import parse_duration
from scripts.examples import make_example

REPO = Path(__file__).resolve().parents[1]


def batch(tasks: list[Path], out: Path, budget_s: float, extra: list[str]) -> float:
    began = time.time()
    subprocess.run([sys.executable, "-m", "scripts.cli", "batch", *map(str, tasks), "--out", str(out),
                    "--time-budget", f"{budget_s}s", "--quiet", *extra], cwd=REPO, check=False)
    return time.time() - began


def rows(out: Path) -> dict[str, dict]:
    with (out / "summary.csv").open() as f:
        return {r["task"]: r for r in csv.DictReader(f)}


def valid(task_dir: Path, submission: str) -> bool:
    if not submission:
        return False
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "validate", str(task_dir), submission], cwd=REPO,
                          capture_output=True)
    return done.returncode == 0


def attempt_overheads(run: Path) -> list[float]:
    """Per attempt: the seconds between cross_validate and its result, minus the harness's own."""
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]
    started = {}
    out = []
    for e in events:
        key = (e.get("track"), e.get("attempt"))
        if e["event"] == "cross_validate":
            started[key] = e["t"]
        elif e["event"] == "attempt" and key in started and e.get("status") == "ok" and not e.get("reused"):
            out.append(e["t"] - started.pop(key) - float(e.get("duration_s") or 0.0))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="iris,penguins,wine,breast_cancer")
    p.add_argument("--time-budget", type=parse_duration, default=parse_duration("60s"))
    p.add_argument("--out", type=Path, default=Path(".bench/cluster"))
    args = p.parse_args(argv)
    import ray
    from ray.cluster_utils import Cluster

    out = args.out.resolve() / time.strftime("%Y%m%d-%H%M%S")
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    tasks = [make_example(n, out / "tasks" / n) for n in names]
    local_s = batch(tasks, out / "local", args.time_budget, ["--parallel", "1"])
    # a head that runs nothing and two 1-CPU nodes: two raylets on this machine, as two machines would be
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        ray_s = batch(tasks, out / "ray", args.time_budget, ["--ray", cluster.address])
    finally:
        ray.shutdown()
        cluster.shutdown()
    local, remote = rows(out / "local"), rows(out / "ray")
    lines = [f"`python -m scripts.bench_cluster --tasks {args.tasks} --time-budget {args.time_budget:.0f}s` "
             f"({time.strftime('%Y-%m-%d')}, this machine's CPUs shared by both)", "",
             "| task | metric | local s | local CV | valid | Ray s | Ray CV | valid |", "|---|---|---|---|---|---|---|---|"]
    for name, task_dir in zip(names, tasks):
        a, b = local.get(name, {}), remote.get(name, {})
        lines.append(f"| {name} | {a.get('metric', '')} | {a.get('seconds', '')} | {a.get('cv_score', '')} | "
                     f"{valid(task_dir, a.get('submission', ''))} | {b.get('seconds', '')} | {b.get('cv_score', '')} | "
                     f"{valid(task_dir, b.get('submission', ''))} |")
    over_local = [x for n in names for x in attempt_overheads(out / "local" / "runs" / n)]
    over_ray = [x for n in names for x in attempt_overheads(out / "ray" / "runs" / n)]
    lines += ["", f"batch wall time: local --parallel 1 **{local_s:.0f} s**, Ray (2 x 1-CPU nodes) **{ray_s:.0f} s**, "
              f"ratio {ray_s / local_s:.2f}",
              f"attempt overhead beyond the harness's own seconds (median over {len(over_local)} / {len(over_ray)} "
              f"attempts): local kernel {statistics.median(over_local) * 1000:.0f} ms, Ray actor "
              f"{statistics.median(over_ray) * 1000:.0f} ms"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
