"""`iml bench`: iml against its peers on the example tasks, at the same time budget.

    iml bench                                   # every example, 60 s, iml + AutoGluon + FLAML + LightGBM
    iml bench --tasks churn,diamonds --time-budget 2m --repeats 5
    iml bench --tasks taxi_fares:5000000 --peers lightgbm --time-budget 10m   # an example of any size: name:rows
    iml bench --tasks churn --time-budget 5m --peers lightgbm,autogluon_best   # AutoGluon at best_quality

Each peer is installed once by this script into its own venv under `.bench/venvs/<peer>`
(AutoGluon pins its own pandas, so the peers cannot share iml's venv) and runs through a
small runner in `scripts/peers/`, as its own process, on the same train/test files iml gets.
A runner writes its test predictions in the model contract's form; the bench turns them into
a submission with iml's own formatter (`runtime.submission_file.format_submission`), so every
system's file is judged by the same `validate_submission` and graded by the same
`scripts.examples.grade` against the answers the example kept aside.

Measured per run: the graded score, whether the file is valid, wall time, and the peak
memory of the whole process tree (the system's process and every child, e.g. iml's kernels:
the sum of their proportional set sizes, so a library two processes share counts once),
sampled with psutil every 0.2 s. Results go to `.bench/results/` as CSV (one row per run)
and markdown (one row per task).

`--repeats K` runs every system on K train/test splits of each example, the same K for every
system: split r is the example built with split seed r (`make_example(..., split_seed=r)`: the
same rows, another fifth held out), and split 0 is the split every earlier bench used. The
statistics over splits and the tables are `scripts.bench_report`'s. A killed bench goes on with
`--resume <its runs CSV>`: every finished run in it (iml's too) is taken, only the rest runs.
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
SYSTEMS = ("iml", "autogluon", "autogluon_best", "flaml", "lightgbm")


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    requirements: tuple[str, ...]
    first: tuple[str, ...] = ()  # installed before the rest: torch's CPU wheel, in a venv that pulls torch
    noisy: bool = False  # repeated with --seeds on each split: its result depends on timing or a random search
    runner: str = ""  # scripts/peers/run_<runner>.py, and the venv it runs in (default: the peer's name)
    options: tuple[tuple[str, str], ...] = ()  # what the runner reads from spec.json beside the task (presets)

    @property
    def program(self) -> str:
        return self.runner or self.name


PEERS: dict[str, Peer] = {
    # autogluon.tabular with these extras does not pull torch (its neural models are then
    # skipped); a peer that pulls torch lists "torch==2.13.0" in `first`, or pip fetches
    # gigabytes of CUDA wheels.
    "autogluon": Peer("autogluon", "AutoGluon 1.6 medium_quality",
                      ("autogluon.tabular[lightgbm,catboost,xgboost]==1.6.*", "psutil"), noisy=True),
    # the same install at its strongest preset (bagging, stacking): what long budgets are measured against
    "autogluon_best": Peer("autogluon_best", "AutoGluon 1.6 best_quality",
                           ("autogluon.tabular[lightgbm,catboost,xgboost]==1.6.*", "psutil"), noisy=True,
                           runner="autogluon", options=(("presets", "best_quality"),)),
    "flaml": Peer("flaml", "FLAML 2.7", ("flaml[automl]==2.7.*", "psutil"), noisy=True),
    "lightgbm": Peer("lightgbm", "LightGBM defaults", ("lightgbm==4.7.*", "pandas", "scikit-learn", "psutil")),
}


DEFAULT_PEERS = ("autogluon", "flaml", "lightgbm")  # autogluon_best on request: the same install, minutes more per task


@dataclass
class RunResult:
    task: str
    system: str
    seed: int
    metric: str
    greater_is_better: bool
    split: int = 0  # the example's split seed (older runs CSVs have no column: their one split is 0)
    budget_s: float = 0.0
    score: float | None = None
    valid: bool = False
    wall_s: float = 0.0
    peak_mb: float = 0.0
    problems: str = ""
    dir: str = ""


# --------------------------------------------------------------------------- peer venvs


def venv_python(peer: Peer, root: Path = BENCH_DIR) -> Path:
    return root / "venvs" / peer.program / "bin" / "python"


def ensure_venv(peer: Peer, root: Path = BENCH_DIR, log: Callable[[str], None] = print) -> Path:
    """Create the peer's venv and install it, once; a marker records what was installed."""
    folder = root / "venvs" / peer.program
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


def task_name(name: str) -> tuple[str, int | None]:
    """A bench task as written: an example's name, or `taxi_fares:5000000`, an example of any size
    (scripts/large_examples.py) with its training rows."""
    base, _, rows = name.partition(":")
    if not rows:
        return base, None
    try:
        count = int(rows.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name!r}: the rows after ':' must be a number, e.g. taxi_fares:5000000") from None
    if count < 100:
        raise ValueError(f"{name!r}: an example needs at least 100 rows")
    return base, count


def prepare_task(name: str, split: int = 0, root: Path = BENCH_DIR) -> Path:
    """The example built on split seed ``split``, once: `<root>/tasks/split<r>/<name>` (a sized
    example's folder carries its rows: `taxi_fares-5000000`), so every system of the bench reads the
    same files and the folder keeps the example's name."""
    from scripts.examples import ANSWERS_DIR, make_example

    base, rows = task_name(name)
    task_dir = root / "tasks" / f"split{split}" / (base if rows is None else f"{base}-{rows}")
    if not (task_dir / ANSWERS_DIR / "meta.json").exists():
        make_example(base, task_dir, seed=0, split_seed=split, rows=rows)
    return task_dir


def run_folder(root: Path, name: str, split: int) -> Path:
    return (root / "runs" / name.replace(":", "-") / f"split{split}").resolve()


def run_iml(name: str, task_dir: Path, budget_s: float, seed: int, root: Path,
            split: int = 0) -> tuple[Path, int, float, float]:
    out = run_folder(root, name, split) / f"iml-seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "scripts.cli", "run", str(task_dir.resolve()), "--time-budget", f"{budget_s:g}s",
           "--out", str(out), "--seed", str(seed), "--quiet"]
    log = out.parent / f"iml-seed{seed}.log"
    code, wall, peak = run_measured(cmd, log, timeout_s=budget_s * 3 + 120)
    return out / "submission.csv", code, wall, peak


def run_peer(peer: Peer, name: str, task_dir: Path, budget_s: float, seed: int, root: Path,
             split: int = 0) -> tuple[Path, int, float, float]:
    from graph.context import Settings
    from runtime.task_reader import read_task
    from runtime.submission_file import format_submission
    from runtime.data import labelled, read_table, read_test, read_train

    from runtime.fold_loop import encode_target

    task = read_task(task_dir, Settings())
    work = run_folder(root, name, split) / f"{peer.name}-seed{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    train_path, test_path = as_written(task)
    if train_path is not None:
        # a plain CSV of just the columns a peer gets: handed over as it is (a 20M-row table is not
        # read and written again here), with the target encoded as iml encodes it
        labels = labelled(read_table(train_path, "train file", keys=task.key_columns, columns=task.target_columns),
                          task.target_columns)
        np.save(work / "y.npy", encode_target(labels, task.model_dump()))
    else:
        # The peers get the tables as iml reads them (any format, encoding or separator), as plain CSV,
        # and the target encoded as iml encodes it (class codes in iml's order; (n, t) for several).
        train = labelled(read_train(task.model_dump()), task.target_columns)
        test = read_test(task.model_dump())
        if task.images:  # tabular peers read images as their raw pixels
            train, test = (raw_pixels(frame, task) for frame in (train, test))
        columns = [c for c in (task.id_column, *task.feature_columns) if c]
        if task.images:
            columns = [c for c in columns if c != task.images.column] + [c for c in train.columns if c.startswith("px_")]
        train_path, test_path = work / "train.csv", work / "test.csv"
        train[columns + task.target_columns].to_csv(train_path, index=False)
        test[columns].to_csv(test_path, index=False)
        np.save(work / "y.npy", encode_target(train, task.model_dump()))
    spec = {**task.model_dump(), "train": str(train_path), "test": str(test_path), "time_budget": budget_s, "seed": seed,
            **dict(peer.options)}
    (work / "spec.json").write_text(json.dumps(spec, indent=2))
    cmd = [str(venv_python(peer, root).resolve()), str(PEERS_DIR / f"run_{peer.program}.py"), str(work)]
    # a peer reads a large table with plain pandas, beyond any budget: a second per MB more before it is killed
    reading_s = Path(train_path).stat().st_size / 2 ** 20
    code, wall, peak = run_measured(cmd, work / "log.txt", timeout_s=budget_s * 3 + 120 + reading_s, cwd=work)
    submission = work / "submission.csv"
    if code == 0 and (work / "pred.npy").exists():
        format_submission(task, np.load(work / "pred.npy")).to_csv(submission, index=False)
    return submission, code, wall, peak


def as_written(task) -> tuple[Path | None, Path | None]:
    """The task's train and test files when a peer can read them as they are: plain comma-separated
    CSVs (UTF-8), no images, whose columns are the id, the features and the targets (train) and the
    id and the features (test), nothing else. (None, None) otherwise."""
    from runtime.data import SNIFF_BYTES, compression_of, read_header, sniff

    if task.images or not task.train_file or not task.test_file:
        return None, None
    paths = [Path(task.task_dir) / task.train_file, Path(task.task_dir) / task.test_file]
    for path in paths:
        if path.suffix.lower() != ".csv" or compression_of(path):
            return None, None
        with path.open("rb") as f:
            if sniff(f.read(SNIFF_BYTES)) != ("utf-8", ","):
                return None, None
    base = [c for c in (task.id_column, *task.feature_columns) if c]
    if set(read_header(paths[0], "train file")) != set(base + task.target_columns) or \
            set(read_header(paths[1], "test file")) != set(base):
        return None, None
    return paths[0], paths[1]


RAW_PIXELS_MAX_SIDE = 64  # larger images go to the peers at this side: 64 x 64 x 3 columns at most


def raw_pixels(frame, task):
    """An image task's rows for a tabular peer: the image column as its pixels at the images'
    own size (the median side, at most 64), grey when the files are grey."""
    import pandas as pd

    from runtime.data_profile import profile_images
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
    from runtime.task_reader import read_task
    from runtime.submission_file import validate_submission
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


# --------------------------------------------------------------------------- driver


@dataclass
class BenchOptions:
    tasks: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=lambda: list(DEFAULT_PEERS))
    time_budget_s: float = 60.0
    repeats: int = 1  # train/test splits per example, split seeds 0..repeats-1
    seeds: int = 1  # runs of each noisy peer per split, seeds 0..seeds-1
    root: Path = BENCH_DIR
    install_only: bool = False
    reuse_runs: Path | None = None  # a runs-*.csv whose peer rows are reused instead of running those peers again
    resume: Path | None = None  # a runs-*.csv of a killed bench: every finished row of it reused, iml's too


@dataclass
class BenchReport:
    runs: pd.DataFrame  # one row per run, as in runs-<time>.csv
    table: pd.DataFrame  # one row per task, as in table-<time>.csv
    lines: list[str]  # the summary under the tables
    markdown: str


RunKey = tuple[str, str, int, int]  # task, system, split, seed


def reused_runs(path: Path | None, budget_s: float, systems: str = "peers") -> dict[RunKey, RunResult]:
    """Rows of an earlier runs CSV by (task, system, split, seed): the peers' only (`--reuse-runs`,
    iml runs again) or every system's (`systems="all"`, `--resume`). Rows with another budget are
    ignored (older files without the column are taken as they are; without a split column their
    runs were on split 0)."""
    if path is None:
        return {}
    frame = pd.read_csv(path)
    if "budget_s" in frame.columns:
        frame = frame[frame.budget_s.round(3) == round(budget_s, 3)]
    known = {f.name for f in RunResult.__dataclass_fields__.values()}
    out: dict[RunKey, RunResult] = {}
    for row in frame.to_dict("records"):
        if row["system"] == "iml" and systems != "all":
            continue
        clean = {k: (None if isinstance(v, float) and math.isnan(v) and k in ("score",) else v) for k, v in row.items() if k in known}
        clean["problems"] = "" if not isinstance(clean.get("problems"), str) else clean["problems"]
        result = RunResult(**clean)
        result.split, result.seed = int(result.split), int(result.seed)
        out[(result.task, result.system, result.split, result.seed)] = result
    return out


def constant_score(task_dir: Path) -> float:
    """The example's sample submission (a constant predictor) graded like a system's file: the
    normalised score's zero. NaN where it cannot be graded."""
    from runtime.data import find_sample_submission
    from scripts.examples import grade

    sample = find_sample_submission(task_dir)
    try:
        return float(grade(task_dir, sample).score) if sample else math.nan
    except ValueError:  # a sample the grader refuses (GradeError) leaves that split out of the normalised score
        return math.nan


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print, command: str = "iml bench") -> BenchReport | None:
    from graph.context import Settings
    from runtime.task_reader import read_task
    from runtime.metrics import get_metric
    from scripts.bench_report import normalised, summarize, summary_lines, to_markdown
    from scripts.examples import EXAMPLES
    from scripts.shape_examples import SHAPE_EXAMPLES

    from scripts.large_examples import LARGE_EXAMPLES

    known = [*EXAMPLES, *SHAPE_EXAMPLES, *LARGE_EXAMPLES]
    unknown = [t for t in opts.tasks if task_name(t)[0] not in known or (task_name(t)[1] is not None
                                                                          and task_name(t)[0] not in LARGE_EXAMPLES)]
    unknown += [p for p in opts.peers if p not in PEERS]
    if unknown:
        shown = [*EXAMPLES, *SHAPE_EXAMPLES, *(f"{n}[:ROWS]" for n in LARGE_EXAMPLES)]
        raise ValueError(f"unknown task or peer: {', '.join(unknown)}; tasks: {', '.join(shown)}; peers: {', '.join(PEERS)}")
    if opts.repeats < 1 or opts.seeds < 1:
        raise ValueError("--repeats and --seeds must be at least 1")
    for path in (opts.reuse_runs, opts.resume):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"no runs CSV at {path}; give a .bench/results/runs-*.csv of an earlier bench")
    tasks = opts.tasks or list(EXAMPLES)
    root = opts.root
    for name in opts.peers:
        ensure_venv(PEERS[name], root, log)
    if opts.install_only:
        return None
    systems = ["iml", *opts.peers]
    reuse = {**reused_runs(opts.reuse_runs, opts.time_budget_s), **reused_runs(opts.resume, opts.time_budget_s, "all")}
    results: list[RunResult] = []
    constants: dict[tuple[str, int], float] = {}
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs_csv = results_dir / f"runs-{stamp}.csv"
    for name in tasks:
        for split in range(opts.repeats):
            task_dir = prepare_task(name, split, root)
            task = read_task(task_dir, Settings())
            metric = get_metric(task.metric)
            constants[(name, split)] = constant_score(task_dir)
            for system in systems:
                peer = PEERS.get(system)
                if peer is not None and task.task_type in ("multilabel", "multitarget") and peer.name != "lightgbm":
                    if split == 0:
                        log(f"{name:14s} {system:10s} skipped: its runner fits one target; LightGBM per column is the baseline")
                    continue
                for seed in range(opts.seeds if (peer is not None and peer.noisy) else 1):
                    where = f"{name:14s} {system:10s} split {split} seed {seed}"
                    if (name, system, split, seed) in reuse:
                        result = reuse[(name, system, split, seed)]
                        results.append(result)
                        log(f"{where}: {metric.name} {_fmt(result.score)}  (reused from {opts.resume or opts.reuse_runs})")
                        continue
                    if peer is None:
                        submission, code, wall, peak = run_iml(name, task_dir, opts.time_budget_s, seed, root, split)
                    else:
                        submission, code, wall, peak = run_peer(peer, name, task_dir, opts.time_budget_s, seed, root, split)
                    result = RunResult(task=name, system=system, seed=seed, metric=metric.name,
                                       greater_is_better=metric.greater_is_better, split=split, budget_s=opts.time_budget_s,
                                       wall_s=round(wall, 1), peak_mb=round(peak, 1), dir=str(submission.parent))
                    judge(result, task_dir, submission, code)
                    results.append(result)
                    log(f"{where}: {metric.name} {_fmt(result.score)}  "
                        f"{'valid' if result.valid else 'INVALID ' + result.problems[:120]}  {wall:.0f}s  {peak:.0f} MB")
                    # written after every run, reused rows included: a killed bench resumes from this file
                    runs_frame(results).to_csv(runs_csv, index=False)
    runs = runs_frame(results)
    runs.to_csv(runs_csv, index=False)
    table = summarize(runs, systems)
    table.to_csv(results_dir / f"table-{stamp}.csv", index=False)
    lines = summary_lines(table, systems, normalised(runs, constants))
    markdown = to_markdown(table, systems, opts.time_budget_s, command, lines)
    (results_dir / f"table-{stamp}.md").write_text(markdown)
    (results_dir / "latest.md").write_text(markdown)
    return BenchReport(runs, table, lines, markdown)


def runs_frame(results: list[RunResult]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in results])


def _fmt(score: float | None) -> str:
    return "-" if score is None or (isinstance(score, float) and math.isnan(score)) else f"{score:.5g}"


if __name__ == "__main__":
    # `python -m scripts.bench [peer ...]` installs the peers' venvs only.
    run_bench(BenchOptions(peers=sys.argv[1:] or list(DEFAULT_PEERS), install_only=True))
