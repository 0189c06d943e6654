"""The live progress display, fed a recorded stream: plain lines off a terminal, one rich
display on one, and the picture of stages, attempts and scores either way."""

from __future__ import annotations

import io

from rich.console import Console

from runtime.records import (
    Blueprint,
    TaskSpec,
    TrackPlan,
    TrackResult,
    ValidationScheme,
)
from scripts.progress import Progress

TASK = TaskSpec(task_dir="/t", task_type="binary", target="y", id_column="id", metric="log_loss", greater_is_better=False,
                submission_format="proba", submission_columns=["id", "y"], classes=["0", "1"])
PLAN = TrackPlan(track="traditional", reason="r", model_family="LightGBM", feature_steps=[], time_share=1.0)
STREAM = [
    ("custom", {"event": "session", "kind": "run", "budget_s": 120, "used_before_s": 0}),
    ("updates", {"analyze": {"task": TASK}}),
    ("updates", {"blueprint": {"blueprint": Blueprint(validation=ValidationScheme(kind="stratified"), tracks=[PLAN], budget_s=120)}}),
    ("custom", {"event": "generate", "track": "traditional", "source": "recipe"}),
    ("track_step", {"track": "traditional", "node": "generate"}),
    ("track_step", {"track": "traditional", "node": "check"}),
    ("custom", {"event": "attempt", "track": "traditional", "attempt": 1, "status": "error", "error": "ValueError: x\ntb",
                "duration_s": 1.5}),
    ("custom", {"event": "debug", "track": "traditional", "attempt": 2, "source": "fallback"}),
    ("custom", {"event": "attempt", "track": "traditional", "attempt": 2, "status": "ok", "score": 0.31, "duration_s": 2.0}),
    ("custom", {"event": "attempt", "track": "traditional", "attempt": 3, "status": "ok", "score": 0.42, "duration_s": 2.0}),
]


def test_plain_lines_off_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with Progress(console, budget_s=120) as progress:
        for mode, chunk in STREAM:
            progress(mode, chunk)
        progress("updates", {"track": {"tracks": {"traditional": TrackResult(track="traditional", status="ok", best_attempt=2,
                                                                             score=0.31)}}})
    text = out.getvalue()
    assert "\x1b[" not in text and "\r" not in text  # no control codes in a CI log
    lines = text.splitlines()
    assert any("analyze: binary, target 'y', metric log_loss" in line for line in lines)
    assert any("traditional: attempt 1 error in 1.5s: ValueError: x" in line for line in lines)
    assert any("traditional: attempt 2 scored 0.31" in line for line in lines)
    assert all(line.startswith("[0:00 / 2:00]") for line in lines)  # time used / budget on every line
    assert progress.stages["tracks"] == "done"


def test_the_live_display_shows_attempts_and_the_best_score():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress = Progress(console, budget_s=120)
    assert progress.live_mode
    for mode, chunk in STREAM:
        progress(mode, chunk)
    render = Console(file=io.StringIO(), width=160, force_terminal=False)
    render.print(progress.render())
    shown = render.file.getvalue()
    assert "#1 recipe error" in shown and "#2 fallback 0.31" in shown
    row = next(line for line in shown.splitlines() if line.strip().startswith("traditional "))
    assert row.split()[-1] == "0.31"  # lower is better for log loss: 0.31 beats 0.42
    assert "left 2:00" in shown or "left 1:59" in shown


def test_a_resumed_session_counts_the_time_used_before():
    out = io.StringIO()
    progress = Progress(Console(file=out, force_terminal=False, width=200), budget_s=600)
    progress("custom", {"event": "session", "kind": "resume", "budget_s": 600, "used_before_s": 125})
    assert 124 < progress.used_s() < 130 and progress.left_s() < 476
    assert "resuming: 2:05 used before" in out.getvalue()


def test_a_track_waiting_its_turn_says_so():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with Progress(console, budget_s=120) as progress:
        progress("custom", {"event": "generate", "track": "neural", "source": "recipe"})
        progress("custom", {"event": "turn", "track": "neural", "waits_for": ["traditional"]})
        assert progress.tracks["neural"].doing == "waiting for traditional"
        progress("custom", {"event": "turn", "track": "neural", "waited_s": 26.4})
        assert progress.tracks["neural"].doing == "checking"
    text = out.getvalue()
    assert "neural: waits for traditional" in text and "neural: its turn, after 26 s" in text
