"""The `iml` command line.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from runtime.data import TaskInputError

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


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
    p.add_argument("--quiet", action="store_true", help="no progress display")

    p = sub.add_parser("resume", help="continue a run that was killed")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("validate", help="check a submission against a task's format")
    p.add_argument("task_dir", type=Path)
    p.add_argument("submission", type=Path)

    p = sub.add_parser("grade", help="score a submission against an example task's kept answers")
    p.add_argument("task_dir", type=Path)
    p.add_argument("submission", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (TaskInputError, ValueError) as e:
        # ValueError covers the registries' one-line errors (unknown metric, unknown example).
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        err_console.print(f"[red]error:[/red] {message}")
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted; `iml resume RUN_DIR` continues from the last finished step")
        return 130


def cmd_example(args) -> int:
    from scripts.examples import list_examples, make_example

    if args.list or not args.name:
        table = Table("name", "type", "metric", "data", box=None)
        for ex in list_examples():
            table.add_row(ex.name, ex.task_type, ex.metric, ex.description)
        console.print(table)
        return 0
    if args.dir is None:
        raise TaskInputError("give a folder to write the example into: iml example NAME DIR")
    path = make_example(args.name, args.dir, seed=args.seed)
    console.print(f"wrote example task '{args.name}' to {path}")
    return 0


def cmd_run(args) -> int:
    from graph.context import Settings
    from graph.runner import new_run_dir, run_task
    from nodes.analyze import read_task

    settings = Settings(
        time_budget_s=args.time_budget,
        n_folds=args.folds,
        seed=args.seed,
        target=args.target,
        metric=args.metric,
        id_column=args.id_column,
        tracks=tuple(t.strip() for t in args.tracks.split(",")) if args.tracks else None,
    )
    if args.folds < 2:
        raise TaskInputError("--folds must be at least 2")
    read_task(args.task_dir, settings)  # bad input fails here, in one line, before a run folder exists
    run_dir = args.out or new_run_dir(args.task_dir)
    console.print(f"iml: offline (no LLM configured) | task {args.task_dir} | budget {args.time_budget:.0f}s | run {run_dir}")
    started = time.time()
    final = run_task(args.task_dir, run_dir, settings, on_update=None if args.quiet else print_update)
    return report_end(final, time.time() - started)


def cmd_resume(args) -> int:
    from graph.runner import resume_run, run_status

    if not (args.run_dir / "checkpoints.sqlite").exists():
        raise TaskInputError(f"not a run folder (no checkpoints.sqlite): {args.run_dir}")
    finished, values = run_status(args.run_dir.resolve())
    if finished:
        console.print(f"run already finished: {values.get('submission_path')}")
        return 0
    started = time.time()
    final = resume_run(args.run_dir, on_update=None if args.quiet else print_update)
    return report_end(final, time.time() - started)


def cmd_validate(args) -> int:
    from graph.context import Settings
    from nodes.analyze import read_task
    from nodes.submit import validate_submission

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


def print_update(mode: str, chunk) -> None:
    if mode != "updates":
        return
    for node, update in chunk.items():
        if not isinstance(update, dict):
            continue
        if node == "analyze":
            t = update["task"]
            console.print(f"[bold]analyze[/bold]  {t.task_type}, target '{t.target}', metric {t.metric}, submission as {t.submission_format}")
        elif node == "profile":
            p = update["profile"]
            console.print(f"[bold]profile[/bold]  {p.n_train} train / {p.n_test} test rows, {len(p.columns)} features, {len(p.warnings)} warnings")
        elif node == "blueprint":
            b = update["blueprint"]
            console.print(f"[bold]blueprint[/bold] tracks: {', '.join(t.track for t in b.tracks) or 'none'}; {b.validation.n_folds}-fold {b.validation.kind}")
        elif node == "track":
            for name, t in update.get("tracks", {}).items():
                score = f"{t.score:.5g}" if t.score is not None else "-"
                console.print(f"[bold]track[/bold]    {name}: {t.status}, best score {score} after {len(t.attempts)} attempt(s)")
        elif node == "ensemble":
            e = update["ensemble"]
            console.print(f"[bold]ensemble[/bold] {e.kind}: {e.reason}")


def report_end(final: dict, seconds: float) -> int:
    board = final.get("leaderboard") or []
    table = Table(title="leaderboard", box=None)
    for col in ("entry", "source", "status", "score", "fold_std", "seconds"):
        table.add_column(col, justify="right" if col in ("score", "fold_std", "seconds") else "left")
    for row in board:
        table.add_row(*[_cell(row.get(c)) for c in ("entry", "source", "status", "score", "fold_std", "seconds")])
    console.print(table)
    path = final.get("submission_path")
    if not path:
        err_console.print("[red]error:[/red] the run ended without a submission")
        return 1
    console.print(f"submission: {path}  ({seconds:.0f}s)")
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


COMMANDS = {"example": cmd_example, "run": cmd_run, "resume": cmd_resume, "validate": cmd_validate, "grade": cmd_grade}


if __name__ == "__main__":
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    sys.exit(main())
