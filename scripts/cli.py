"""The `iml` command line.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from runtime.errors import TaskInputError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h', '1h30m' -> seconds."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 60s, 10m, 1h)")
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the time budget must be positive")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iml", description="Code-driven AutoML: task folder in, validated submission out.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("example", help="write an example task from data that ships offline")
    p.add_argument("name", nargs="?", help="example name (see --list)")
    p.add_argument("dir", nargs="?", type=Path, help="folder to write the task into")
    p.add_argument("--list", action="store_true", help="list the examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, help="taxi_fares: its training rows (any size); another example: how many of its rows "
                   "to keep after shuffling, before its 80/20 split (a smaller task)")

    p = sub.add_parser("run", help="solve a task folder")
    p.add_argument("task_dir", type=Path)
    p.add_argument("--time-budget", type=parse_duration, default=parse_duration("10m"), help="e.g. 60s, 10m (default 10m)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<task>-<time>)")
    p.add_argument("--target", help="target column, when the files do not make it clear")
    p.add_argument("--metric", help="metric name (rmse, auc, accuracy, log_loss, f1, ...)")
    p.add_argument("--id", dest="id_column", help="id column")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--tracks", help="comma-separated tracks to run (traditional, pretrained, neural)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refine-candidates", type=int, metavar="N",
                   help="most candidates refine tries per model family it searches (0: no refine; default: Settings')")
    p.add_argument("--no-refit", dest="refit", action="store_false",
                   help="test predictions from the fold models alone, without a fit of each attempt on all rows")
    p.add_argument("--max-fit-rows", type=int, metavar="N",
                   help="no fit sees more training rows than this (large tables: a seeded sample; default: what the time allows)")
    p.add_argument("--memory-mb", type=float, metavar="MB",
                   help="the memory the run may use (default: what the machine has available when it starts); a kernel "
                        "past its share is stopped and reported out of memory")
    add_ray_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress display")
    add_llm_arguments(p)

    p = sub.add_parser("batch", help="run many tasks, one run each, in local processes or on a Ray cluster")
    p.add_argument("task_dirs", nargs="*", type=Path, metavar="TASK_DIR")
    p.add_argument("--out", type=Path, help="the batch folder: runs/, logs/, summary.csv")
    p.add_argument("--resume", type=Path, metavar="BATCH_DIR", help="continue a batch; finished tasks are left alone")
    p.add_argument("--time-budget", type=parse_duration, default=parse_duration("10m"), help="per task (default 10m)")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="tasks at once (default 1; with --ray, one per CPU of the cluster)")
    p.add_argument("--folds", type=int, help="cross-validation folds of each run")
    p.add_argument("--tracks", help="comma-separated tracks each run may use")
    p.add_argument("--seed", type=int)
    add_ray_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no table, only the summary")

    p = sub.add_parser("resume", help="continue a run that was killed")
    p.add_argument("run_dir", type=Path)
    add_llm_arguments(p, resume=True)
    p.add_argument("--time-budget", type=parse_duration, default=None,
                   help="time this resumed session may use (default: what the run had left)")
    p.add_argument("--quiet", action="store_true", help="no progress display")

    p = sub.add_parser("llm-server", help="an OpenAI-compatible server on 127.0.0.1 answered by hand: each request a file, "
                                          "each answer a file")
    p.add_argument("dir", type=Path, help="the folder for requests/ (to read) and answers/ (to write)")
    p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default 8765; 0: any free one)")

    p = sub.add_parser("predict", help="predict new rows with a finished run's fitted models (no retraining)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("rows", type=Path, help="a table of new rows with the train file's feature columns (and the id)")
    p.add_argument("--out", type=Path, help="where to write the predictions (default RUN_DIR/predictions.csv)")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="image tasks: the folder the rows' images are under, laid out like the task's (default: the task's folder)")

    p = sub.add_parser("params", help="every recipe's parameters: defaults, meaning, the ranges refine searches")
    p.add_argument("recipe", nargs="?", help="one recipe (traditional, neural, pretrained, linear, catboost, extratrees, knn)")

    p = sub.add_parser("validate", help="check a submission against a task's format")
    p.add_argument("task_dir", type=Path)
    p.add_argument("submission", type=Path)

    p = sub.add_parser("grade", help="score a submission against an example task's kept answers")
    p.add_argument("task_dir", type=Path)
    p.add_argument("submission", type=Path)

    p = sub.add_parser("bench", help="iml against AutoGluon, FLAML and LightGBM on the example tasks")
    p.add_argument("--tasks", help="comma-separated example names (default: all; see `iml example --list`); an example of "
                                   "any size with its rows: taxi_fares:5000000")
    p.add_argument("--peers", default="autogluon,flaml,lightgbm",
                   help="comma-separated peers (default: autogluon,flaml,lightgbm); autogluon_best: AutoGluon at best_quality")
    p.add_argument("--time-budget", type=parse_duration, default=parse_duration("60s"), help="per system and task (default 60s)")
    p.add_argument("--repeats", type=int, default=1,
                   help="train/test splits per example, split seeds 0..K-1, every system on the same splits; tables give "
                        "mean ± se and a paired verdict (default 1: the examples' own split)")
    p.add_argument("--seeds", type=int, default=1, help="runs of each noisy peer (AutoGluon, FLAML) per split, seeds 0..N-1")
    p.add_argument("--out", type=Path, default=Path(".bench"), help="venvs, tasks, runs and results/ (default .bench)")
    p.add_argument("--install-only", action="store_true", help="install the peers' venvs and stop")
    p.add_argument("--reuse-runs", type=Path, help="a .bench/results/runs-*.csv: reuse its peer rows instead of running those peers again")
    p.add_argument("--resume", type=Path, help="the runs-*.csv of a killed bench: reuse every finished run (iml's too), run the rest")
    return parser


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", dest="ray_address", metavar="ADDRESS",
                   help="run the tracks' kernels on a Ray cluster: auto (the one `ray start` runs here), local "
                        "(start one in this process) or HOST:PORT (env IML_RAY_ADDRESS)")
    p.add_argument("--ray-cpus", dest="ray_cpus", type=float, metavar="N",
                   help="CPUs each track's actor asks for (default: the cluster's CPUs split over the tracks)")


def ray_settings(args, settings) -> None:
    """--ray / --ray-cpus onto settings, failing in one line when Ray is missing or unreachable."""
    if getattr(args, "ray_address", None):
        settings.ray_address = args.ray_address
    if getattr(args, "ray_cpus", None) is not None:
        if args.ray_cpus <= 0:
            raise TaskInputError("--ray-cpus must be positive")
        settings.ray_cpus_per_track = args.ray_cpus
    if settings.ray_address:
        from runtime.cluster import connect

        connect(settings.ray_address)  # before a run folder exists: a wrong address is one line, not a failed run


def add_llm_arguments(p: argparse.ArgumentParser, resume: bool = False) -> None:
    default = " (default: the run's own, from llm.json)" if resume else ""
    p.add_argument("--model", help=f"LLM model name, e.g. gpt-4o-mini (env IML_MODEL; none: offline){default}")
    p.add_argument("--base-url", help=f"OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (env OPENAI_BASE_URL){default}")
    p.add_argument("--llm-timeout", type=parse_duration, metavar="DURATION",
                   help="how long one request waits for its answer, e.g. 15m for `iml llm-server` "
                        f"(env IML_LLM_TIMEOUT in seconds; default 3m){default}")
    if not resume:
        p.add_argument("--llm-record", type=Path, metavar="DIR",
                       help="write every LLM request and its answer to DIR (a new folder), for --llm-replay")
        p.add_argument("--llm-replay", type=Path, metavar="DIR",
                       help="answer the LLM's requests from a recording (no server); a request it lacks falls back "
                            "to the rules and recipes")
        p.add_argument("--max-llm-cost", type=float, metavar="USD",
                       help="stop asking the LLM once the run has spent this much (env IML_MAX_LLM_COST); the run goes on offline")
        p.add_argument("--max-llm-tokens", type=int, metavar="N",
                       help="stop asking the LLM after this many tokens (env IML_MAX_LLM_TOKENS); the run goes on offline")


def main(argv: list[str] | None = None) -> int:
    global _COMMAND_ENTERED
    _COMMAND_ENTERED = time.time()
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # A process started in the background by a shell (`nohup iml batch ... &`) inherits SIGINT
        # ignored, and so would its runs: `iml batch` stops them with SIGINT (checkpoint kept),
        # which they must hear whatever started them.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return COMMANDS[args.command](args)
    except (TaskInputError, ValueError) as e:
        # ValueError covers the registries' one-line errors (unknown metric, unknown example).
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        err_console.print(f"[red]error:[/red] {message}")
        return 2
    except KeyboardInterrupt:
        if args.command == "llm-server":
            err_console.print("interrupted")
        elif args.command == "batch":
            err_console.print("interrupted; `iml batch --resume BATCH_DIR` continues it (finished tasks stay as they are)")
        else:
            err_console.print("interrupted; `iml resume RUN_DIR` continues from the last finished step")
        return 130


def cmd_example(args) -> int:
    from scripts.examples import list_examples, list_shape_examples, make_example

    if args.list or not args.name:
        table = Table("name", "type", "metric", "data", box=None)
        for ex in list_examples():
            table.add_row(ex.name, ex.task_type, ex.metric, ex.description)
        for ex in list_shape_examples():
            table.add_row(ex.name, ex.task_type, ex.metric, f"{ex.description} (another competition shape)")
        console.print(table)
        return 0
    if args.dir is None:
        raise TaskInputError("give a folder to write the example into: iml example NAME DIR")
    path = make_example(args.name, args.dir, seed=args.seed, rows=args.rows)
    console.print(f"wrote example task '{args.name}' to {path}")
    return 0


def process_started() -> float:
    """When this process started (a time.time())."""
    import psutil

    try:
        return psutil.Process().create_time()
    except psutil.Error:
        return time.time()


_COMMAND_ENTERED: float | None = None  # when main() was last entered
FRESH_PROCESS_S = 60.0  # a process whose main() came within this of its start was started for the command


def command_started() -> float:
    """When the user's command started: `iml run`'s budget counts its start-up (the interpreter,
    imports, the warm kernel, reading the task). That is the process's start when the process
    was started for the command; a long-lived process that calls main() later (a notebook, a
    test session, a script running several commands) started the command when it entered main()
    (its process start would count minutes of earlier work against the budget)."""
    entered = _COMMAND_ENTERED if _COMMAND_ENTERED is not None else time.time()
    created = process_started()
    return created if entered - created <= FRESH_PROCESS_S else entered


def cmd_run(args) -> int:
    from graph.settings import Settings, warm_kernel

    settings = Settings(
        time_budget_s=args.time_budget,
        n_folds=args.folds,
        seed=args.seed,
        target=args.target,
        metric=args.metric,
        id_column=args.id_column,
        tracks=tuple(t.strip() for t in args.tracks.split(",")) if args.tracks else None,
        refit=args.refit,
    )
    if args.refine_candidates is not None:
        if args.refine_candidates < 0:
            raise TaskInputError("--refine-candidates must not be negative")
        settings.refine_max_candidates = args.refine_candidates
    if args.max_llm_cost is not None:
        settings.max_llm_cost_usd = args.max_llm_cost
    if args.max_llm_tokens is not None:
        settings.max_llm_tokens = args.max_llm_tokens
    if (settings.max_llm_cost_usd or 0) < 0 or (settings.max_llm_tokens or 0) < 0:
        raise TaskInputError("--max-llm-cost and --max-llm-tokens must not be negative")
    if args.folds < 2:
        raise TaskInputError("--folds must be at least 2")
    if args.max_fit_rows is not None and args.max_fit_rows < 100:
        raise TaskInputError("--max-fit-rows must be at least 100")
    if args.memory_mb is not None and args.memory_mb <= 0:
        raise TaskInputError("--memory-mb must be positive")
    settings.max_fit_rows, settings.memory_mb = args.max_fit_rows, args.memory_mb
    ray_settings(args, settings)
    # The first track's kernel starts now: its ~3 s of imports overlap the framework's own.
    warm = warm_kernel(settings)
    try:
        return _run(args, settings, warm)
    finally:
        if warm is not None:
            warm.discard()  # a no-op once the run took it


def _run(args, settings, warm) -> int:
    from graph.context import run_dir_for
    from graph.runner import run_task
    from runtime.task_reader import read_task

    # bad input fails here, in one line, before a run folder exists; the seconds it takes (a large
    # table's target column) are the budget's, as the run's clock starts at the process's start
    task = read_task(args.task_dir, settings)
    for warning in task.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    llm_settings = run_llm_settings(args)
    run_dir = Path(args.out or run_dir_for(args.task_dir)).resolve()
    replay = open_replay(args.llm_replay, run_dir) if args.llm_replay is not None else None
    console.print(f"iml: {describe_llm(llm_settings, replay, args.llm_record)} | task {args.task_dir} | "
                  f"budget {args.time_budget:.0f}s | run {run_dir}")
    llm = start_llm(llm_settings, run_dir, settings, record=args.llm_record, replay=replay)
    started = time.time()
    with progress_display(args.quiet, settings.time_budget_s) as on_update:
        final = run_task(args.task_dir, run_dir, settings, llm=llm, on_update=on_update, warm=warm, task=task,
                         started_at=command_started())
    say_recording(llm)
    return report_end(final, time.time() - started)


def run_llm_settings(args):
    """The live model of `iml run`, or None (offline, or answered from a recording); the record
    and replay flags checked in one line each."""
    from graph.recording import INDEX

    if args.llm_record is not None and args.llm_replay is not None:
        raise TaskInputError("--llm-record and --llm-replay do not go together: record one run, replay it in another")
    if args.llm_replay is not None:
        if args.model or args.base_url:
            raise TaskInputError("--llm-replay answers from the recording: give no --model or --base-url with it")
        return None
    llm_settings = resolve_llm(args)
    if args.llm_record is not None:
        if llm_settings is None:
            raise TaskInputError("--llm-record needs a model to record: give --model (and --base-url for a local server)")
        if (args.llm_record / INDEX).exists():
            raise TaskInputError(f"{args.llm_record} holds a recording already; give a new folder "
                                 "(`iml resume` of the run that made it goes on recording there)")
    return llm_settings


def open_replay(folder: Path, run_dir: Path):
    """The recording to answer from (one line if it is not one), its log in the run folder."""
    from graph.recording import REPLAY_LOG, Replay

    if not folder.is_dir():
        raise TaskInputError(f"no recording at {folder}: give the folder an `iml run --llm-record` wrote")
    return Replay(folder, log=run_dir / REPLAY_LOG)


def say_recording(llm) -> None:
    """After the run: how much of a replay was used, or where the recording went."""
    if llm is None:
        return
    if llm.replay is not None:
        console.print(llm.replay.summary())
    if llm.recorder is not None:
        console.print(f"llm record: {len(llm.recorder.entries)} request(s) in {llm.recorder.folder}")


def cmd_resume(args) -> int:
    from graph.runner import RunClock, load_settings, resume_run, run_status

    if not (args.run_dir / "checkpoints.sqlite").exists():
        raise TaskInputError(f"not a run folder (no checkpoints.sqlite): {args.run_dir}")
    run_dir = args.run_dir.resolve()
    finished, values = run_status(run_dir)
    if finished:
        console.print(f"run already finished: {values.get('submission_path')} (nothing to resume)")
        return 0
    clock = RunClock.load(run_dir, load_settings(run_dir))
    budget = clock.budget_s if args.time_budget is None else clock.used_s + args.time_budget
    # a run that recorded goes on recording there; one that replayed goes on replaying, unless a model is named
    kept = read_llm_file(run_dir)
    replay = None
    if kept.get("replay") and not args.model and not args.base_url:
        replay, llm_settings = open_replay(Path(kept["replay"]), run_dir), None
    else:
        llm_settings = resolve_llm(args, run_dir)
    record = Path(kept["record"]) if kept.get("record") and llm_settings is not None else None
    console.print(f"iml: resuming {run_dir} | {clock.used_s:.0f}s used before | {max(0.0, budget - clock.used_s):.0f}s left"
                  + (f" | {describe_llm(llm_settings, replay, record)}" if llm_settings is not None or replay else ""))
    llm = start_llm(llm_settings, run_dir, load_settings(run_dir), record=record, replay=replay)
    started = time.time()
    with progress_display(args.quiet, budget, clock.used_s) as on_update:
        final = resume_run(run_dir, llm=llm, on_update=on_update, time_budget_s=args.time_budget)
    say_recording(llm)
    return report_end(final, time.time() - started)


@contextmanager
def progress_display(quiet: bool, budget_s: float, used_before_s: float = 0.0):
    """The run's on_update callback: a live display (plain lines off a terminal), or None when quiet."""
    if quiet:
        yield None
        return
    from scripts.progress import Progress

    with Progress(console, budget_s=budget_s, used_before_s=used_before_s) as progress:
        yield progress


def cmd_batch(args) -> int:
    from scripts.batch import Batch, BatchSpec, new_batch
    from scripts.progress import BatchTable

    if args.resume is not None:
        if args.task_dirs:
            raise TaskInputError("--resume continues the batch's own tasks: give no task folders with it")
        folder = args.resume.resolve()
        spec = BatchSpec.load(folder)
        parallel = args.parallel or spec.parallel
    else:
        if args.out is None:
            raise TaskInputError("give the batch a folder: iml batch TASK_DIR... --out BATCH_DIR")
        if args.parallel is not None and args.parallel < 1:
            raise TaskInputError("--parallel must be at least 1")
        run_args = []
        for flag, value in (("--folds", args.folds), ("--tracks", args.tracks), ("--seed", args.seed)):
            if value is not None:
                run_args += [flag, str(value)]
        ray_address = args.ray_address or os.environ.get("IML_RAY_ADDRESS", "").strip() or None
        parallel = args.parallel or 1
        if ray_address and args.parallel is None:
            from runtime.cluster import cluster_cpus

            parallel = max(1, int(cluster_cpus(ray_address)))
        folder = args.out.resolve()
        spec = new_batch(args.task_dirs, folder, args.time_budget, parallel=parallel, ray_address=ray_address,
                         ray_cpus=args.ray_cpus, run_args=run_args)
    where = f"Ray cluster {spec.ray_address}" if spec.ray_address else "local processes"
    console.print(f"iml batch: {len(spec.tasks)} tasks | {spec.time_budget_s:.0f}s each | {parallel} at once on {where} "
                  f"| {folder}")
    table = BatchTable(console, quiet=args.quiet)
    batch = Batch(spec, folder, parallel=parallel, on_change=table.update)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with table:
            states = batch.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    table.final(states)
    console.print(f"summary: {folder / 'summary.csv'}")
    failed = [s for s in states.values() if s.status != "done"]
    return 1 if failed else 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_predict(args) -> int:
    from runtime.data import key_columns, read_table
    from runtime.predict import load_run

    run = load_run(args.run_dir)
    keys = [k for k in key_columns(run.task) if k != run.task["target"]]
    rows = read_table(args.rows, "new rows file", keys=keys)
    started = time.time()
    frame = run.predict(rows, image_root=args.images)
    out = args.out or args.run_dir / "predictions.csv"
    frame.to_csv(out, index=False)
    members = ", ".join(m.name for m in run.members) or "the constant baseline"
    console.print(f"predictions: {out}  ({len(frame)} rows from {members}, {time.time() - started:.1f}s)")
    return 0


def cmd_params(args) -> int:
    from runtime.params import SPACES, params_markdown

    if args.recipe is None:
        print(params_markdown(), end="")
        return 0
    if args.recipe not in SPACES:
        raise TaskInputError(f"no recipe {args.recipe!r}; one of {', '.join(SPACES)}")
    print(SPACES[args.recipe].table())
    return 0


def cmd_validate(args) -> int:
    from graph.context import Settings
    from runtime.submission_file import validate_submission
    from runtime.task_reader import read_task

    task = read_task(args.task_dir, Settings())
    problems = validate_submission(task, args.submission)
    for problem in problems:
        err_console.print(f"invalid: {problem}")
    if problems:
        return 1
    console.print(f"valid: {args.submission} matches the format of {args.task_dir}")
    return 0


def cmd_grade(args) -> int:
    from scripts.examples import grade

    result = grade(args.task_dir, args.submission)
    direction = "higher" if result.greater_is_better else "lower"
    console.print(f"{result.metric}: {result.score:.6g} ({direction} is better)")
    return 0


def cmd_bench(args) -> int:
    from scripts.bench import BenchOptions, run_bench
    from scripts.bench_report import print_table

    for flag, value in (("--repeats", args.repeats), ("--seeds", args.seeds)):
        if value < 1:
            raise TaskInputError(f"{flag} must be at least 1")
    for flag, path in (("--reuse-runs", args.reuse_runs), ("--resume", args.resume)):
        if path is not None and not path.is_file():
            raise TaskInputError(f"{flag}: no file {path}; give a .bench/results/runs-*.csv of an earlier bench")
    opts = BenchOptions(
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else [],
        peers=[p.strip() for p in args.peers.split(",") if p.strip()],
        time_budget_s=args.time_budget,
        repeats=args.repeats,
        seeds=args.seeds,
        root=args.out,
        install_only=args.install_only,
        reuse_runs=args.reuse_runs,
        resume=args.resume,
    )
    report = run_bench(opts, log=console.print, command="iml " + " ".join(sys.argv[1:] if len(sys.argv) > 1 else ["bench"]))
    if report is not None:
        print_table(report.table, ["iml", *opts.peers], report.lines, console)
        console.print(f"results: {args.out / 'results' / 'latest.md'}")
    return 0


REFINE_ROWS_SHOWN = 3


def report_end(final: dict, seconds: float) -> int:
    board = final.get("leaderboard") or []
    task = final.get("task")
    rows, hidden = shown_rows(board, greater_is_better=task.greater_is_better if task else True)
    table = Table(title="leaderboard", box=None)
    columns = ("entry", "source", "status", "score", "fold_std", "seconds")
    for col in columns:
        table.add_column(col, justify="right" if col in ("score", "fold_std", "seconds") else "left", no_wrap=True)
    blend = ""
    for row in rows:
        entry = str(row.get("entry", "")).replace("/attempt_", " #")
        cells = [_cell(row.get(c)) for c in columns[1:]]
        if entry.startswith("ensemble"):
            # its source is the blend's weights: too long for a column, so it gets its own line
            blend, cells[0] = cells[0].replace("/attempt_", " #"), ""
        table.add_row(entry, *cells)
    console.print(table)
    if blend:
        console.print(f"ensemble: {blend}")
    if hidden:
        run_dir = Path(final["submission_path"]).parent if final.get("submission_path") else None
        where = run_dir / "leaderboard.csv" if run_dir else "leaderboard.csv"
        console.print(f"({hidden} more refine candidates in {where})")
    print_llm_usage(final.get("llm_usage") or [])
    path = final.get("submission_path")
    if not path:
        err_console.print("[red]error:[/red] the run ended without a submission")
        return 1
    console.print(f"submission: {path}  ({seconds:.0f}s)")
    return 0


LLM_FILE = "llm.json"  # the run's model and base_url (never the key), so `iml resume` can use them again


def read_llm_file(run_dir: Path) -> dict:
    import json

    path = run_dir / LLM_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def resolve_llm(args, run_dir: Path | None = None):
    """--model/--base-url/--llm-timeout, then IML_MODEL/OPENAI_BASE_URL/OPENAI_API_KEY/IML_LLM_TIMEOUT,
    then (resume) the run's llm.json."""
    from graph.llm import resolve_settings

    model, base_url, timeout_s = args.model, args.base_url, args.llm_timeout
    kept = read_llm_file(run_dir) if run_dir is not None else {}
    if kept.get("model") and not kept.get("replay") and not model and not os.environ.get("IML_MODEL"):
        model, base_url = kept.get("model"), base_url or kept.get("base_url")
        if timeout_s is None and not os.environ.get("IML_LLM_TIMEOUT"):
            timeout_s = kept.get("timeout_s")
    return resolve_settings(model=model, base_url=base_url, timeout_s=timeout_s)


def describe_llm(llm_settings, replay=None, record: Path | None = None) -> str:
    from graph.llm import describe

    if replay is not None:
        return f"replaying {replay.folder} ({len(replay.entries)} recorded answers of {replay.model})"
    return describe(llm_settings) + (f", recorded to {record}" if record is not None else "")


def start_llm(llm_settings, run_dir: Path, settings=None, *, record: Path | None = None, replay=None):
    """The run's LLM client (None offline), its settings kept in llm.json for `iml resume`."""
    if llm_settings is None and replay is None:
        return None
    import json

    from graph.llm import LLMClient, build_chat_model
    from graph.recording import Recorder

    run_dir.mkdir(parents=True, exist_ok=True)
    if replay is not None:
        client = LLMClient(None, replay=replay)
        kept = {"model": replay.model, "base_url": replay.base_url, "replay": str(replay.folder)}
    else:
        client = LLMClient(build_chat_model(llm_settings), model_name=llm_settings.model, base_url=llm_settings.base_url)
        kept = {**llm_settings.public()}
        if record is not None:
            client.recorder = Recorder(record, model=client.model_name, base_url=client.base_url)
            kept["record"] = str(client.recorder.folder)
    if settings is not None:
        kept["budget"] = {"max_cost_usd": settings.max_llm_cost_usd, "max_tokens": settings.max_llm_tokens}
    (run_dir / LLM_FILE).write_text(json.dumps(kept, indent=2))
    return client


def print_llm_usage(calls) -> None:
    """Each LLM request (role, track, tokens, outcome), then one summary line. Offline: nothing."""
    if not calls:
        return
    from graph.llm import usage_summary

    table = Table(title="llm calls", box=None)
    for col in ("#", "role", "track", "method", "prompt", "completion", "seconds", "outcome"):
        table.add_column(col, justify="right" if col in ("#", "prompt", "completion", "seconds") else "left")
    for i, c in enumerate(calls, 1):
        outcome = c.outcome if c.outcome == "ok" or not c.error else f"{c.outcome}: {c.error[:60]}"
        table.add_row(str(i), c.role, c.track or "-", c.method or "-", f"{c.prompt_tokens:,}", f"{c.completion_tokens:,}",
                      f"{c.seconds:.1f}", outcome)
    console.print(table)
    console.print(usage_summary(calls))


def shown_rows(board: list[dict], greater_is_better: bool) -> tuple[list[dict], int]:
    """The rows worth reading at the end of a run: every attempt a track made itself, the best
    few refine candidates, and the ensemble; the number of refine rows left out."""
    refine = [r for r in board if r.get("source") == "refine"]
    scored = [r for r in refine if r.get("score") is not None]
    best = sorted(scored, key=lambda r: r["score"], reverse=greater_is_better)[:REFINE_ROWS_SHOWN]
    keep = {id(r) for r in best}
    rows = [r for r in board if r.get("source") != "refine" or id(r) in keep]
    return rows, len(refine) - len(best)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def cmd_llm_server(args) -> int:
    from scripts.llm_server import DEFAULT_PORT, HandServer, banner

    port = DEFAULT_PORT if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise TaskInputError(f"--port must be between 0 and 65535, not {port}")
    server = HandServer(args.dir, port=port, say=lambda line: console.print(line, markup=False))
    for line in banner(server):
        console.print(line, markup=False)
    server.serve()  # until Ctrl-C
    console.print(f"stopped: {server.summary()}", markup=False)
    return 0


COMMANDS = {"example": cmd_example, "run": cmd_run, "resume": cmd_resume, "predict": cmd_predict, "params": cmd_params,
            "validate": cmd_validate, "grade": cmd_grade, "bench": cmd_bench, "batch": cmd_batch,
            "llm-server": cmd_llm_server}


if __name__ == "__main__":
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    sys.exit(main())
