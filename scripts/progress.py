"""Live progress of a run, fed by the graph's stream (graph.runner's on_update callback).

What it shows: the stages, each track's attempts with their status and score as they arrive,
and the time used and left. On a terminal it is one rich display redrawn in place; anywhere
else (CI logs, a pipe) it prints plain lines, one per thing that happened, with no control
codes. events.jsonl in the run folder holds the same events either way.

    with Progress(console, budget_s=600) as progress:
        run_task(..., on_update=progress)
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

STAGES = ("analyze", "profile", "blueprint", "tracks", "refine", "ensemble", "submit")
TRACK_NODES = {"generate", "check", "execute", "debug", "next_member", "finish"}
MARK = {"pending": "·", "running": "»", "done": "✓", "failed": "✗"}


@dataclass
class AttemptRow:
    number: int
    source: str = ""
    status: str = "running"
    score: float | None = None
    seconds: float | None = None
    error: str = ""


@dataclass
class TrackRow:
    name: str
    doing: str = "waiting"
    attempts: dict[int, AttemptRow] = field(default_factory=dict)
    current: int = 0
    done: bool = False
    status: str = ""
    score: float | None = None

    def attempt(self, number: int) -> AttemptRow:
        if number not in self.attempts:
            self.attempts[number] = AttemptRow(number)
        self.current = max(self.current, number)
        return self.attempts[number]


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _score(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.5g}"


def _refine_verdict(e: dict) -> str:
    """What refine's judge decided about a candidate, in the words the submission's line uses for
    the same verdict (runtime/verdict.py): only a kept candidate that scores best is "the best so
    far"; one that scores better than its base within fold noise says so, and is not kept."""
    best = _score(e.get("best"))
    if e.get("kept"):
        return "kept, the best so far" if e.get("best_attempt") == e.get("attempt") else \
            f"kept as its chain's base; the best stays {best}"
    if e.get("within_noise"):
        if e.get("against") == e.get("best"):
            return f"within fold noise of the best, {best}: not kept"
        return f"within fold noise of its base {_score(e.get('against'))}: not kept; the best stays {best}"
    return f"the best stays {best}"


class Progress:
    """An on_update callback that keeps the run's picture and shows it."""

    def __init__(self, console: Console, *, budget_s: float, used_before_s: float = 0.0, live: bool | None = None):
        self.console = console
        self.budget_s = budget_s
        self.used_before_s = used_before_s
        self.started = time.time()
        self.live_mode = console.is_terminal if live is None else live
        self.stages: dict[str, str] = {s: "pending" for s in STAGES}
        self.notes: dict[str, str] = {}
        self.tracks: dict[str, TrackRow] = {}
        self.last_line = ""
        self.greater_is_better = True
        self.llm_limit_said = False  # the LLM's cap is said once, not at every role that meets it
        self._lock = threading.Lock()
        self._live: Live | None = None

    # -- clock ----------------------------------------------------------------------------

    def used_s(self) -> float:
        return self.used_before_s + time.time() - self.started

    def left_s(self) -> float:
        return self.budget_s - self.used_s()

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False,
                              get_renderable=self.render)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()
            self._live = None

    # -- input ----------------------------------------------------------------------------

    def __call__(self, mode: str, chunk: Any) -> None:
        with self._lock:
            if mode == "custom" and isinstance(chunk, dict):
                self._on_event(chunk)
            elif mode == "updates" and isinstance(chunk, dict):
                for node, update in chunk.items():
                    if isinstance(update, dict):
                        self._on_update(node, update)
            elif mode == "track_step" and isinstance(chunk, dict) and chunk.get("track"):
                self._on_step(chunk["track"], chunk.get("node", ""))

    def _track(self, name: str) -> TrackRow:
        if name not in self.tracks:
            self.tracks[name] = TrackRow(name)
        self.stages["tracks"] = "running" if self.stages["tracks"] == "pending" else self.stages["tracks"]
        return self.tracks[name]

    def _on_event(self, e: dict) -> None:
        kind = e.get("event")
        if kind == "session":
            self.budget_s = float(e.get("budget_s", self.budget_s))
            self.used_before_s = float(e.get("used_before_s", 0.0))
            self.started = time.time()
            if e.get("kind") == "resume":
                self._say(f"resuming: {_clock(self.used_before_s)} used before, {_clock(max(0, self.left_s()))} left")
            else:
                self._say(f"started: budget {_clock(self.budget_s)}")
        elif kind in ("cache", "measure", "rows") and e.get("what"):  # a large table: read once, measured, sampled
            self._say(e["what"])
        elif kind == "task" and e.get("warnings"):
            for warning in e["warnings"]:
                self._say(f"warning: {warning}")
        elif kind in ("generate", "member") and e.get("track"):
            t = self._track(e["track"])
            a = t.attempt(int(e.get("attempt", 1)))
            a.source = e.get("source", a.source)
            t.doing = f"checking attempt {a.number}"
            self._say(f"{t.name}: attempt {a.number} written ({a.source}{': ' + e['member'] if e.get('member') else ''})")
        elif kind == "debug" and e.get("track"):
            t = self._track(e["track"])
            a = t.attempt(int(e.get("attempt", t.current + 1)))
            a.source = e.get("source", a.source)
            t.doing = f"checking attempt {a.number}"
            self._say(f"{t.name}: attempt {a.number} written ({a.source}) after a failure")
        elif kind == "llm_limit":
            if not self.llm_limit_said:
                self.llm_limit_said = True
                self._say(f"LLM: {e.get('why')}; the run goes on offline (rules and recipes)")
        elif kind == "llm_replay_missing":
            self._say(f"LLM replay: {e.get('why')}")  # the replay says it once per role
        elif kind == "submission" and e.get("kind") == "anytime":
            self.notes["submit"] = f"{e.get('path')} holds {e.get('source')} ({_score(e.get('score'))}) so far"
            self._say(f"submission.csv written: {e.get('source')} scored {_score(e.get('score'))}, the best so far")
        elif kind == "turn" and e.get("track"):
            t = self._track(e["track"])
            if e.get("waits_for"):
                t.doing = f"waiting for {', '.join(e['waits_for'])}"
                self._say(f"{t.name}: waits for {', '.join(e['waits_for'])} (tracks take turns on the execution slots)")
            else:
                t.doing = "checking"
                self._say(f"{t.name}: its turn, after {e.get('waited_s', 0):.0f} s")
        elif kind == "cross_validate" and e.get("track"):
            t = self._track(e["track"])
            t.doing = f"cross-validating attempt {e.get('attempt', t.current or 1)}"
        elif kind == "attempt" and e.get("track"):
            t = self._track(e["track"])
            a = t.attempt(int(e.get("attempt", t.current or 1)))
            a.source = a.source or ("refine" if t.done else "")  # after the track finished, attempts are refine's
            a.status = e.get("status", "?")
            a.score = e.get("score")
            a.seconds = e.get("duration_s")
            a.error = (e.get("error") or "").splitlines()[0][:100] if e.get("error") else ""
            t.doing = "deciding"
            secs = f" in {a.seconds:.1f}s" if isinstance(a.seconds, (int, float)) else ""
            reused = " (finished before the restart)" if e.get("reused") else ""
            if a.source == "refine" and not reused:
                return  # refine's own event says it, with the change it tried
            if a.status == "ok":
                self._say(f"{t.name}: attempt {a.number} scored {_score(a.score)}{secs}{reused}")
            else:
                self._say(f"{t.name}: attempt {a.number} {a.status}{secs}: {a.error}{reused}")
        elif kind == "track" and e.get("track"):
            t = self._track(e["track"])
            t.done, t.status, t.score = True, e.get("status", ""), e.get("score")
            t.doing = "done" if t.status == "ok" else t.status
            self._say(f"{t.name}: {t.status}, best {_score(t.score)} after {e.get('attempts', len(t.attempts))} attempt(s)")
        elif kind and kind.startswith("refine"):
            self.stages["tracks"] = "done" if self.stages["tracks"] == "running" else self.stages["tracks"]
            self.stages["refine"] = "running"
            if "attempt" in e:
                outcome = _score(e.get("score")) if e.get("status") == "ok" else e.get("status", "?")
                detail = f"{e.get('track')} attempt {e['attempt']} ({e.get('change', '')}): {outcome}, {_refine_verdict(e)}"
            elif kind == "refine_done":
                detail = (f"{e.get('track')}: {e.get('kept', 0)} of {e.get('tried', 0)} changes kept, "
                          f"{_score(e.get('base_score'))} -> {_score(e.get('best_score'))}")
                if e.get("stopped") and e.get("stopped") != "time":
                    detail += f"; stopped with {e.get('left_s', 0):.0f} s left: {e['stopped']}"
                if e.get("track") in self.tracks and e.get("best_score") is not None:
                    self.tracks[e["track"]].score = e["best_score"]  # the table's best: refine's verdict
                self.stages["refine"] = "done"
            else:
                detail = ", ".join(f"{k} {_score(v) if isinstance(v, float) else v}" for k, v in e.items() if k not in ("t", "event"))
            self.notes["refine"] = detail
            self._say(f"refine: {detail}")

    def _on_step(self, track: str, node: str) -> None:
        t = self._track(track)
        if node in ("generate", "debug", "next_member"):
            t.doing = f"checking attempt {max(1, t.current)}"
        elif node == "check":
            a = t.attempts.get(t.current)
            t.doing = "repairing" if a is not None and a.status == "check_failed" else f"cross-validating attempt {max(1, t.current)}"
        elif node == "execute":
            t.doing = "deciding"

    def _on_update(self, node: str, update: dict) -> None:
        stage = "tracks" if node == "track" else node
        if stage not in self.stages:
            self.stages[stage] = "pending"
        order = list(self.stages)
        for earlier in order[: order.index(stage)]:
            if self.stages[earlier] in ("pending", "running") and earlier not in ("refine", "tracks"):
                self.stages[earlier] = "done"
            elif earlier in ("refine", "tracks") and self.stages[earlier] == "running":
                self.stages[earlier] = "done"
        if node == "analyze" and "task" in update:
            t = update["task"]
            self.greater_is_better = t.greater_is_better
            self.notes[stage] = f"{t.task_type}, target '{t.target}', metric {t.metric}, submission as {t.submission_format}"
        elif node == "profile" and "profile" in update:
            p = update["profile"]
            sampled = f" (profiled on a {p.sampled_rows:,}-row sample)" if p.sampled_rows else ""
            self.notes[stage] = (f"{p.n_train:,} train / {p.n_test:,} test rows{sampled}, {len(p.columns)} features, "
                                 f"{len(p.warnings)} warning(s)")
        elif node == "blueprint" and "blueprint" in update:
            b = update["blueprint"]
            names = ", ".join(t.track for t in b.tracks) or "none"
            rows = f" on {b.data.rows:,} of {b.data.n_rows:,} rows" if b.data is not None and b.data.rows < b.data.n_rows else ""
            self.notes[stage] = f"tracks {names}; {b.validation.n_folds}-fold {b.validation.kind}{rows}"
            for plan in b.tracks:
                self._track(plan.track)
            self.stages["tracks"] = "running" if b.tracks else "done"
        elif node == "track":
            for name, result in update.get("tracks", {}).items():
                t = self._track(name)
                t.done, t.status, t.score = True, result.status, result.score
                t.doing = "done" if result.status == "ok" else result.status
            if self.tracks and all(t.done for t in self.tracks.values()):
                self.stages["tracks"] = "done"
                self.notes["tracks"] = ", ".join(f"{t.name} {_score(t.score)}" for t in self.tracks.values())
            return
        elif node == "ensemble" and "ensemble" in update:
            e = update["ensemble"]
            self.notes[stage] = f"{e.kind} {_score(e.score)}: {e.reason}"
        elif node == "submit" and update.get("submission_path"):
            self.notes[stage] = str(update["submission_path"])
        self.stages[stage] = "done"
        if node not in ("track", "refine") and stage in self.notes:  # refine spoke through its events
            self._say(f"{stage}: {self.notes[stage]}")

    # -- output ---------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        """Non-TTY: one plain line per thing that happened; TTY: the display's last line."""
        line = f"[{_clock(self.used_s())} / {_clock(self.budget_s)}] {text}"
        self.last_line = line
        if not self.live_mode:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def render(self) -> Group:
        used, left = self.used_s(), self.left_s()
        head = Text(f"time used {_clock(used)}, left {_clock(left) if left > 0 else 'none (finishing)'} "
                    f"of {_clock(self.budget_s)}", style="bold")
        stages = Table.grid(padding=(0, 1))
        stages.add_column(width=1)
        stages.add_column(style="bold", width=9)
        stages.add_column(overflow="ellipsis", no_wrap=True)
        for stage, status in self.stages.items():
            if stage == "refine" and status == "pending":
                continue
            stages.add_row(MARK.get(status, "?"), stage, self.notes.get(stage, ""))
        parts: list[Any] = [head, stages]
        if self.tracks:
            table = Table(box=None, padding=(0, 1), show_edge=False)
            for col, justify in (("track", "left"), ("now", "left"), ("attempts", "left"), ("best", "right")):
                table.add_column(col, justify=justify, no_wrap=True, overflow="ellipsis")
            for t in self.tracks.values():
                cells = []
                for a in sorted(t.attempts.values(), key=lambda a: a.number):
                    mark = _score(a.score) if a.status == "ok" else a.status
                    cells.append(f"#{a.number} {a.source or '?'} {mark}")
                if len(cells) > 6:  # refine makes dozens: the first two and the latest three
                    cells = cells[:2] + [f"… {len(cells) - 5} more …"] + cells[-3:]
                scores = [a.score for a in t.attempts.values() if a.score is not None]
                pick = max if self.greater_is_better else min
                best = _score(t.score if t.score is not None else pick(scores, default=None))
                table.add_row(t.name, t.doing, "  ".join(cells) or "-", best)
            parts.append(table)
        if self.last_line:
            parts.append(Text(self.last_line, style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*parts)


class BatchTable:
    """The live table of `iml batch`: each task's status, time and score.

    On a terminal it is redrawn in place (and once a second, so running tasks' clocks move);
    elsewhere one plain line per change of a task's status; nothing when quiet.
    """

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self._states: dict[str, Any] = {}
        self._started: dict[str, float] = {}
        self._shown: dict[str, str] = {}
        self._lock = threading.Lock()
        self._display: Live | None = None

    def __enter__(self) -> BatchTable:
        if self.live:
            self._display = Live(get_renderable=self.render, console=self.console, refresh_per_second=1, transient=True)
            self._display.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._display is not None:
            self._display.__exit__(*exc)
            self._display = None

    def update(self, states: dict[str, Any]) -> None:
        with self._lock:
            for name, state in states.items():
                before = self._states.get(name)
                if state.status == "running" and (before is None or before.status != "running"):
                    self._started[name] = time.time()
                self._states[name] = state
            if self.live or self.quiet:
                return
            for name, state in states.items():
                line = f"{state.status}" + (f" {state.score:.6g}" if state.score is not None and state.status == "done" else "")
                if self._shown.get(name) != line:
                    self._shown[name] = line
                    extra = ""
                    if state.status in ("done", "failed", "stopped"):
                        extra = f" ({state.seconds or 0:.0f}s{', ' + state.note if state.note else ''})"
                    self.console.print(f"batch: {name} {line}{extra}", highlight=False)

    def render(self) -> Table:
        table = Table(box=None, title="batch")
        for col in ("task", "status", "seconds", "metric", "cv_score", "submission"):
            table.add_column(col, justify="right" if col in ("seconds", "cv_score") else "left",
                             no_wrap=col != "submission", overflow="fold")
        with self._lock:
            for name, s in self._states.items():
                seconds = s.seconds
                if s.status == "running" and name in self._started:
                    seconds = time.time() - self._started[name]
                table.add_row(name, f"{MARK.get({'queued': 'pending', 'running': 'running', 'done': 'done'}.get(s.status, 'failed'))} "
                              f"{s.status}", "" if seconds is None else f"{seconds:.0f}", s.metric or "",
                              "" if s.score is None else f"{s.score:.6g}", s.submission or s.note or "")
        return table

    def final(self, states: dict[str, Any]) -> None:
        self.update(states)
        self.console.print(self.render())
