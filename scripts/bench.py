"""`iml bench`: iml against its peers on the example tasks, at the same time budget.

    iml bench                                   # every example, 60 s, iml + AutoGluon + FLAML + LightGBM
    iml bench --tasks churn,diamonds --time-budget 2m --seeds 3

Each peer is installed once by this script into its own venv under `.bench/venvs/<peer>`
(AutoGluon pins its own pandas, so the peers cannot share iml's venv) and runs through a
small runner in `scripts/peers/`, as its own process, on the same train/test files iml gets.
A runner writes its test predictions in the model contract's form; the bench turns them into
a submission with iml's own formatter (`nodes.submit.format_submission`), so every system's
file is judged by the same `validate_submission` and graded by the same
`scripts.examples.grade` against the answers the example kept aside.

Measured per run: the graded score, whether the file is valid, wall time, and the peak
memory of the whole process tree (the system's process and every child, e.g. iml's kernels:
the sum of their proportional set sizes, so a library two processes share counts once),
sampled with psutil every 0.2 s. Results go to `.bench/results/` as CSV (one row per run)
and markdown (one row per task).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
import time
import venv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(".bench")
PEERS_DIR = Path(__file__).resolve().parent / "peers"
SYSTEMS = ("iml", "autogluon", "flaml", "lightgbm")


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    requirements: tuple[str, ...]
    first: tuple[str, ...] = ()  # installed before the rest: torch's CPU wheel, in a venv that pulls torch
    noisy: bool = False  # repeated with --seeds: its result depends on timing or a random search


PEERS: dict[str, Peer] = {
    # autogluon.tabular with these extras does not pull torch (its neural models are then
    # skipped); a peer that pulls torch lists "torch==2.13.0" in `first`, or pip fetches
    # gigabytes of CUDA wheels.
    "autogluon": Peer("autogluon", "AutoGluon 1.6 medium_quality",
                      ("autogluon.tabular[lightgbm,catboost,xgboost]==1.6.*", "psutil"), noisy=True),
    "flaml": Peer("flaml", "FLAML 2.7", ("flaml[automl]==2.7.*", "psutil"), noisy=True),
    "lightgbm": Peer("lightgbm", "LightGBM defaults", ("lightgbm==4.7.*", "pandas", "scikit-learn", "psutil")),
}


@dataclass
class RunResult:
    task: str
    system: str
    seed: int
    metric: str
    greater_is_better: bool
    budget_s: float = 0.0
    score: float | None = None
    valid: bool = False
    wall_s: float = 0.0
    peak_mb: float = 0.0
    problems: str = ""
    dir: str = ""


# --------------------------------------------------------------------------- peer venvs


def venv_python(peer: Peer, root: Path = BENCH_DIR) -> Path:
    return root / "venvs" / peer.name / "bin" / "python"


def ensure_venv(peer: Peer, root: Path = BENCH_DIR, log: Callable[[str], None] = print) -> Path:
    """Create the peer's venv and install it, once; a marker records what was installed."""
    folder = root / "venvs" / peer.name
    marker = folder / ".installed"
    wanted = "\n".join(peer.first + peer.requirements)
    if marker.exists() and marker.read_text() == wanted:
        return venv_python(peer, root)
    log(f"installing {peer.label} into {folder} (once; AutoGluon takes minutes) ...")
    venv.EnvBuilder(with_pip=True, clear=folder.exists()).create(folder)
    logfile = root / "logs" / f"install_{peer.name}.txt"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
    with logfile.open("a") as out:
        for group in (peer.first, peer.requirements):
            if group:
                done = subprocess.run(pip + list(group), stdout=out, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    raise RuntimeError(f"installing {peer.name} failed ({' '.join(group)}); see {logfile}")
    marker.write_text(wanted)
    return venv_python(peer, root)


# --------------------------------------------------------------------------- measuring


class TreeMemory:
    """Peak memory of a process and all its descendants (the sum of their proportional set
    sizes), sampled in a thread every interval_s."""

    def __init__(self, pid: int, interval_s: float = 0.2):
        self.pid, self.interval_s, self.peak_mb = pid, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                total += _proportional_bytes(p)
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(self.interval_s)


def _proportional_bytes(p: psutil.Process) -> int:
    """The process's proportional set size: its private pages plus its share of pages it
    shares with others (libraries mapped by several processes of the tree count once in the
    sum, not once per process as RSS would). RSS where PSS cannot be read."""
    try:
        return int(p.memory_full_info().pss)
    except (psutil.Error, AttributeError):
        try:
            return int(p.memory_info().rss)
        except psutil.Error:
            return 0


def run_measured(cmd: list[str], log_path: Path, timeout_s: float, cwd: Path = REPO) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak MB of the process tree). A run past timeout_s is killed."""
    started = time.time()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with TreeMemory(proc.pid) as memory:
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                code = proc.wait()
                log.write(f"\nbench: killed after {timeout_s:.0f} s\n")
    return code, time.time() - started, memory.peak_mb


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


# --------------------------------------------------------------------------- one run


def prepare_task(name: str, root: Path = BENCH_DIR) -> Path:
    from scripts.examples import ANSWERS_DIR, make_example

    task_dir = root / "tasks" / name
    if not (task_dir / ANSWERS_DIR / "meta.json").exists():
        make_example(name, task_dir, seed=0)
    return task_dir


def run_iml(name: str, task_dir: Path, budget_s: float, seed: int, root: Path) -> tuple[Path, int, float, float]:
    out = (root / "runs" / name / f"iml-seed{seed}").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "scripts.cli", "run", str(task_dir.resolve()), "--time-budget", f"{budget_s:g}s",
           "--out", str(out), "--seed", str(seed), "--quiet"]
    log = out.parent / f"iml-seed{seed}.log"
    code, wall, peak = run_measured(cmd, log, timeout_s=budget_s * 3 + 120)
    return out / "submission.csv", code, wall, peak


def run_peer(peer: Peer, name: str, task_dir: Path, budget_s: float, seed: int, root: Path) -> tuple[Path, int, float, float]:
    from graph.context import Settings
    from nodes.analyze import read_task
    from nodes.submit import format_submission
    from runtime.data import labelled, read_test, read_train

    from runtime.harness import encode_target

    task = read_task(task_dir, Settings())
    work = (root / "runs" / name / f"{peer.name}-seed{seed}").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # The peers get the tables as iml reads them (any format, encoding or separator), as plain CSV,
    # and the target encoded as iml encodes it (class codes in iml's order; (n, t) for several).
    train = labelled(read_train(task.model_dump()), task.target_columns)
    test = read_test(task.model_dump())
    if task.images:  # tabular peers read images as their raw pixels
        train, test = (raw_pixels(frame, task) for frame in (train, test))
    columns = [c for c in (task.id_column, *task.feature_columns) if c]
    if task.images:
        columns = [c for c in columns if c != task.images.column] + [c for c in train.columns if c.startswith("px_")]
    train[columns + task.target_columns].to_csv(work / "train.csv", index=False)
    test[columns].to_csv(work / "test.csv", index=False)
    np.save(work / "y.npy", encode_target(train, task.model_dump()))
    spec = {**task.model_dump(), "train": str(work / "train.csv"), "test": str(work / "test.csv"), "time_budget": budget_s,
            "seed": seed}
    (work / "spec.json").write_text(json.dumps(spec, indent=2))
    cmd = [str(venv_python(peer, root).resolve()), str(PEERS_DIR / f"run_{peer.name}.py"), str(work)]
    code, wall, peak = run_measured(cmd, work / "log.txt", timeout_s=budget_s * 3 + 120, cwd=work)
    submission = work / "submission.csv"
    if code == 0 and (work / "pred.npy").exists():
        format_submission(task, np.load(work / "pred.npy")).to_csv(submission, index=False)
    return submission, code, wall, peak


RAW_PIXELS_MAX_SIDE = 64  # larger images go to the peers at this side: 64 x 64 x 3 columns at most


def raw_pixels(frame, task):
    """An image task's rows for a tabular peer: the image column as its pixels at the images'
    own size (the median side, at most 64), grey when the files are grey."""
    import pandas as pd

    from nodes.profile import profile_images
    from runtime.images import load_images

    paths = frame[task.images.column]
    stats = profile_images(paths, paths.iloc[:0], Path(task.task_dir)).images
    side = min(RAW_PIXELS_MAX_SIDE, max(stats.width.get("median", 32), stats.height.get("median", 32)))
    pixels = load_images(paths, side)
    grey = set(stats.modes) <= {"L", "1", "I", "I;16", "F", "LA"}
    values = (pixels[..., 0] if grey else pixels).reshape(len(frame), -1)
    columns = pd.DataFrame(values, columns=[f"px_{i}" for i in range(values.shape[1])], index=frame.index)
    return pd.concat([frame.drop(columns=[task.images.column]), columns], axis=1)


def judge(result: RunResult, task_dir: Path, submission: Path, code: int) -> RunResult:
    from graph.context import Settings
    from nodes.analyze import read_task
    from nodes.submit import validate_submission
    from scripts.examples import grade

    if not submission.exists():
        result.problems = f"no submission (exit code {code})"
        return result
    problems = validate_submission(read_task(task_dir, Settings()), submission)
    result.valid = not problems
    result.problems = "; ".join(problems)
    try:
        result.score = float(grade(task_dir, submission).score)
    except Exception as e:  # an ungradable file is a result of the run, not a crash of the bench
        result.problems = (result.problems + "; " if result.problems else "") + f"grade: {e}"
    return result


# --------------------------------------------------------------------------- the table


def summarize(results: list[RunResult], systems: list[str]) -> pd.DataFrame:
    """One row per task: mean score over seeds, validity, mean wall time, max peak memory,
    and iml's ratio to each peer (> 1 means iml is better, whatever the metric's direction)."""
    frame = pd.DataFrame([asdict(r) for r in results])
    rows = []
    for task, group in frame.groupby("task", sort=False):
        row = {"task": task, "metric": group.metric.iloc[0]}
        higher = bool(group.greater_is_better.iloc[0])
        for s in systems:
            g = group[group.system == s]
            scores = g.score.dropna()
            row[f"{s}_score"] = float(scores.mean()) if len(scores) else math.nan
            row[f"{s}_std"] = float(scores.std()) if len(scores) > 1 else math.nan
            row[f"{s}_valid"] = f"{int(g.valid.sum())}/{len(g)}"
            row[f"{s}_s"] = float(g.wall_s.mean()) if len(g) else math.nan
            row[f"{s}_mb"] = float(g.peak_mb.max()) if len(g) else math.nan
        for s in systems:
            if s == "iml":
                continue
            a, b = row["iml_score"], row[f"{s}_score"]
            row[f"iml/{s}"] = ratio(a, b, higher)
        rows.append(row)
    return pd.DataFrame(rows)


def ratio(iml: float, peer: float, higher: bool) -> float:
    if any(math.isnan(v) for v in (iml, peer)) or (iml == 0 if not higher else peer == 0):
        return math.nan
    return iml / peer if higher else peer / iml


def verdict(table: pd.DataFrame, systems: list[str]) -> list[str]:
    """The issue's targets, checked on the table."""
    lines = []
    complete = lambda v: v.split("/")[0] == v.split("/")[1]  # noqa: E731
    invalid = table.loc[[not complete(v) for v in table["iml_valid"]], "task"].tolist()
    lines.append("every iml submission valid: " + ("yes" if not invalid else "NO (" + ", ".join(invalid) + ")"))
    for s in systems[1:]:
        bad = table.loc[[not complete(v) for v in table[f"{s}_valid"]], "task"].tolist()
        if bad:
            lines.append(f"{s}: no valid submission on " + ", ".join(bad))
    if "autogluon" in systems:
        beats = int((table["iml/autogluon"] >= 1.0).sum())
        need = math.ceil(5 * len(table) / 6)  # the zoo issue's target: 10 of 12, five sixths of any count
        lines.append(f"iml >= AutoGluon on {beats}/{len(table)} tasks (target: {need})")
        lighter = int((table["iml_mb"] <= table["autogluon_mb"]).sum())
        lines.append(f"iml peak memory <= AutoGluon's on {lighter}/{len(table)} tasks")
    if "lightgbm" in systems:
        below = table.loc[table["iml/lightgbm"] < 1.0, "task"].tolist()
        lines.append("iml below LightGBM defaults on: " + (", ".join(below) if below else "no task"))
    return lines


def to_markdown(table: pd.DataFrame, systems: list[str], budget_s: float, command: str) -> str:
    peers = [s for s in systems if s != "iml"]
    head = ["task", "metric", *systems, "valid", "seconds", "peak MB", *[f"iml/{p}" for p in peers]]
    lines = [f"Budget {budget_s:g} s per system and task. Command: `{command}`",
             "Scores are means over seeds; ratios > 1 mean iml is better (direction-aware). "
             "valid, seconds and peak MB list " + " / ".join(systems) + ".", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [r.task, r.metric, *[_fmt(r[f"{s}_score"]) + (f" ±{_fmt(r[f'{s}_std'])}" if not math.isnan(r[f"{s}_std"]) else "")
                                     for s in systems],
                 " / ".join(r[f"{s}_valid"] for s in systems),
                 " / ".join(f"{r[f'{s}_s']:.0f}" for s in systems),
                 " / ".join(f"{r[f'{s}_mb']:.0f}" for s in systems),
                 *[f"{r[f'iml/{p}']:.3f}" for p in peers]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines + [""] + [f"- {line}" for line in verdict(table, systems)]) + "\n"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.5g}"


# --------------------------------------------------------------------------- driver


@dataclass
class BenchOptions:
    tasks: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    time_budget_s: float = 60.0
    seeds: int = 1
    root: Path = BENCH_DIR
    install_only: bool = False
    reuse_runs: Path | None = None  # a runs-*.csv whose peer rows are reused instead of running those peers again


def reused_runs(path: Path | None, budget_s: float) -> dict[tuple[str, str], list["RunResult"]]:
    """Peer rows of an earlier runs CSV, by (task, system); iml is always run again. Rows with
    another budget are ignored (older files without the column are taken as they are)."""
    if path is None:
        return {}
    frame = pd.read_csv(path)
    if "budget_s" in frame.columns:
        frame = frame[frame.budget_s.round(3) == round(budget_s, 3)]
    known = {f.name for f in RunResult.__dataclass_fields__.values()}
    out: dict[tuple[str, str], list[RunResult]] = {}
    for row in frame.to_dict("records"):
        if row["system"] == "iml":
            continue
        clean = {k: (None if isinstance(v, float) and math.isnan(v) and k in ("score",) else v) for k, v in row.items() if k in known}
        clean["problems"] = "" if not isinstance(clean.get("problems"), str) else clean["problems"]
        out.setdefault((row["task"], row["system"]), []).append(RunResult(**clean))
    return out


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print, command: str = "iml bench") -> pd.DataFrame | None:
    from scripts.examples import EXAMPLES
    from scripts.shape_examples import SHAPE_EXAMPLES

    known = [*EXAMPLES, *SHAPE_EXAMPLES]
    unknown = [t for t in opts.tasks if t not in known] + [p for p in opts.peers if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown task or peer: {', '.join(unknown)}; tasks: {', '.join(known)}; peers: {', '.join(PEERS)}")
    tasks = opts.tasks or list(EXAMPLES)
    root = opts.root
    for name in opts.peers:
        ensure_venv(PEERS[name], root, log)
    if opts.install_only:
        return None
    systems = ["iml", *opts.peers]
    reuse = reused_runs(opts.reuse_runs, opts.time_budget_s)
    results: list[RunResult] = []
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in tasks:
        from graph.context import Settings
        from nodes.analyze import read_task
        from runtime.metrics import get_metric

        task_dir = prepare_task(name, root)
        task = read_task(task_dir, Settings())
        metric = get_metric(task.metric)
        for system in systems:
            peer = PEERS.get(system)
            if peer is not None and task.task_type in ("multilabel", "multitarget") and peer.name != "lightgbm":
                log(f"{name:14s} {system:10s} skipped: its runner fits one target; LightGBM per column is the baseline")
                continue
            if (name, system) in reuse:
                results += reuse[(name, system)]
                for r in reuse[(name, system)]:
                    log(f"{name:14s} {system:10s} seed {r.seed}: {metric.name} {_fmt(r.score)}  (reused from {opts.reuse_runs})")
                continue
            for seed in range(opts.seeds if (peer is not None and peer.noisy) else 1):
                if peer is None:
                    submission, code, wall, peak = run_iml(name, task_dir, opts.time_budget_s, seed, root)
                else:
                    submission, code, wall, peak = run_peer(peer, name, task_dir, opts.time_budget_s, seed, root)
                result = RunResult(task=name, system=system, seed=seed, metric=metric.name,
                                   greater_is_better=metric.greater_is_better, budget_s=opts.time_budget_s, wall_s=round(wall, 1),
                                   peak_mb=round(peak, 1), dir=str(submission.parent))
                judge(result, task_dir, submission, code)
                results.append(result)
                log(f"{name:14s} {system:10s} seed {seed}: {metric.name} {_fmt(result.score)}  "
                    f"{'valid' if result.valid else 'INVALID ' + result.problems[:120]}  {wall:.0f}s  {peak:.0f} MB")
                pd.DataFrame([asdict(r) for r in results]).to_csv(results_dir / f"runs-{stamp}.csv", index=False)
    table = summarize(results, systems)
    table.to_csv(results_dir / f"table-{stamp}.csv", index=False)
    markdown = to_markdown(table, systems, opts.time_budget_s, command)
    (results_dir / f"table-{stamp}.md").write_text(markdown)
    (results_dir / "latest.md").write_text(markdown)
    return table


def print_table(table: pd.DataFrame, systems: list[str], console) -> None:
    from rich.table import Table

    peers = [s for s in systems if s != "iml"]
    out = Table(box=None, title="iml bench (ratios > 1: iml better)")
    for col in ["task", "metric", *systems, "valid", "seconds", "peak MB", *[f"iml/{p}" for p in peers]]:
        out.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for _, r in table.iterrows():
        out.add_row(r.task, r.metric, *[_fmt(r[f"{s}_score"]) for s in systems],
                    " / ".join(r[f"{s}_valid"] for s in systems),
                    " / ".join(f"{r[f'{s}_s']:.0f}" for s in systems),
                    " / ".join(f"{r[f'{s}_mb']:.0f}" for s in systems),
                    *[_fmt(r[f"iml/{p}"]) for p in peers])
    console.print(out)
    for line in verdict(table, systems):
        console.print(line)


if __name__ == "__main__":
    # `python -m scripts.bench [peer ...]` installs the peers' venvs only.
    run_bench(BenchOptions(peers=sys.argv[1:] or list(PEERS), install_only=True))
