"""The run's clock (run.json) records what a session used at every event and graph step, so a
session killed before its first heartbeat still shows the time it worked."""

from __future__ import annotations

import json
import time

from graph.context import EventLog
from graph.runner import HEARTBEAT_S, RunClock


def read_clock(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_an_event_records_the_time_used_without_a_heartbeat(tmp_path):
    clock = RunClock(tmp_path, task_dir="t", budget_s=60)
    events = EventLog(tmp_path / "events.jsonl")
    events.subscribe(clock.tick)
    clock.start("run")
    try:
        time.sleep(0.15)
        assert 0.15 < HEARTBEAT_S  # what follows is the event's write, not the heartbeat's
        events.emit("generate", track="traditional")
        raw = read_clock(tmp_path)
        assert raw["used_s"] >= 0.15 and raw["sessions"][0]["seconds"] >= 0.15
        emitted = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])["t"]
        # the clock was written at the event: it holds at least the time up to the event
        assert raw["sessions"][0]["started"] + raw["sessions"][0]["seconds"] >= emitted - 3e-3
    finally:
        clock.stop("finished")
    assert read_clock(tmp_path)["sessions"][0]["ended"] == "finished"


def test_a_resumed_clock_starts_from_what_the_killed_session_recorded(tmp_path):
    first = RunClock(tmp_path, task_dir="t", budget_s=60)
    first.start("run")
    time.sleep(0.05)
    first.tick()
    first._stop.set()  # killed: no stop(), no goodbye; only what tick() wrote survives
    recorded = read_clock(tmp_path)["used_s"]
    assert recorded >= 0.05

    from graph.context import Settings

    second = RunClock.load(tmp_path, Settings(time_budget_s=60))
    assert second.used_before_s == recorded
    second.start("resume")
    second.stop("finished")
    sessions = read_clock(tmp_path)["sessions"]
    assert [s["kind"] for s in sessions] == ["run", "resume"]
    assert sessions[0]["ended"] is None and sessions[1]["used_before_s"] == recorded > 0


def test_ticks_after_stop_change_nothing(tmp_path):
    clock = RunClock(tmp_path, task_dir="t", budget_s=60)
    clock.start("run")
    clock.stop("finished")
    before = (tmp_path / "run.json").read_text()
    time.sleep(0.02)
    clock.tick()  # the session_end event comes after stop(): the final record stands
    assert (tmp_path / "run.json").read_text() == before
