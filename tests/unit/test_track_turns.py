"""Turns per track (graph.turns): a track waits for the tracks ahead of it, never past their
planned seconds, and a track that ends or fails lets the next one go at once.

The turns read a clock the test moves (`SetClock`): which track waits, and how long, follows the
seconds the test says have passed, not how fast a busy machine runs the threads.
"""

from __future__ import annotations

import threading
import time

import pytest

from graph.turns import TrackTurns

JOIN_S = 30  # how long a test waits for a thread that must end now (it ends in milliseconds)


class SetClock:
    """TrackTurns' clock: the time stands where the test sets it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def read_after(self, reads: int) -> None:
        """Wait until the clock has been read since it had been `reads` times."""
        deadline = time.monotonic() + JOIN_S
        while self.reads <= reads and time.monotonic() < deadline:
            time.sleep(0.005)


def start_in_thread(turns: TrackTurns, track: str, place: int, planned_s: float) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go():
        out["waited"] = turns.start(track, place, planned_s)
        out["at"] = time.monotonic()
        out["clock"] = turns.clock()  # when, on the turns' clock, its turn began

    thread = threading.Thread(target=go, daemon=True)
    reads = turns.clock.reads if isinstance(turns.clock, SetClock) else None
    thread.start()
    if reads is not None:
        turns.clock.read_after(reads)  # it has asked for its turn (its first look at the clock), at the time set now
    return thread, out


def test_the_track_ahead_goes_first_and_the_next_starts_when_it_finishes():
    clock = SetClock()
    turns = TrackTurns(slots=1, clock=clock)
    turns.register("traditional", 0, 30.0)
    turns.register("neural", 1, 10.0)
    thread, out = start_in_thread(turns, "neural", 1, 10.0)
    time.sleep(0.3)
    assert thread.is_alive(), "the second track must wait while the first has not had its turn"
    clock.now = 0.3
    assert turns.start("traditional", 0, 30.0) == 0.0
    time.sleep(0.3)
    assert thread.is_alive(), "the second track must wait while the first computes"
    clock.now = 0.6
    turns.finish("traditional")
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive()
    assert out["clock"] == 0.6  # at the finish, not when the first's planned 30 s end
    assert out["waited"] == pytest.approx(0.6)


def test_a_track_never_waits_past_the_seconds_planned_for_those_ahead():
    clock = SetClock()
    turns = TrackTurns(slots=1, clock=clock)
    turns.register("traditional", 0, 0.6)  # planned 0.6 s, and it never finishes (hung, or overran)
    turns.start("traditional", 0, 0.6)
    thread, out = start_in_thread(turns, "neural", 1, 10.0)
    clock.now = 0.5
    time.sleep(0.3)
    assert thread.is_alive(), "the track ahead still has 0.1 s of its planned seconds"
    clock.now = 0.6
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive()
    assert out["clock"] == 0.6  # as the track ahead's planned seconds ended


def test_a_failed_track_and_a_closed_run_release_the_waiting():
    # the clock stands still: only the finish, or the close, can let the waiting track go
    turns = TrackTurns(slots=1, clock=SetClock())
    turns.register("traditional", 0, 60.0)
    turns.start("traditional", 0, 60.0)
    thread, out = start_in_thread(turns, "neural", 1, 10.0)
    time.sleep(0.2)
    turns.finish("traditional")  # what ends_turn_on_error does when a node raises
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive() and out["waited"] == 0.0

    turns = TrackTurns(slots=1, clock=SetClock())
    turns.register("traditional", 0, 60.0)
    turns.start("traditional", 0, 60.0)
    thread, out = start_in_thread(turns, "neural", 1, 10.0)
    time.sleep(0.2)
    turns.close()
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive() and out["waited"] == 0.0


def test_tracks_not_registered_are_not_waited_for_and_a_started_track_returns_at_once():
    turns = TrackTurns(slots=1, clock=SetClock())
    # "traditional" finished in an earlier session of a resumed run: it never registers here
    assert turns.start("neural", 1, 10.0) == 0.0
    assert turns.start("neural", 1, 10.0) == 0.0  # its next cells
    turns.finish("neural")
    assert turns.start("neural", 1, 10.0) == 0.0  # refine runs a finished track again


def test_two_slots_let_two_tracks_compute_and_the_third_waits():
    turns = TrackTurns(slots=2, clock=SetClock())
    for place, track in enumerate(("traditional", "pretrained", "neural")):
        turns.register(track, place, 30.0)
    assert turns.start("traditional", 0, 30.0) == 0.0
    assert turns.start("pretrained", 1, 30.0) == 0.0
    thread, _ = start_in_thread(turns, "neural", 2, 30.0)
    time.sleep(0.3)
    assert thread.is_alive()
    turns.finish("pretrained")
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive()


def test_a_track_node_that_raises_ends_its_turn():
    """ends_turn_on_error: the track behind a track whose node raised does not wait for it."""
    from langgraph.runtime import Runtime

    from graph.context import RunContext
    from graph.settings import Settings
    from nodes.track import ends_turn_on_error, take_turn
    from runtime.records import Blueprint, TrackPlan, ValidationScheme

    plans = [TrackPlan(track=t, reason="", model_family="", feature_steps=[], params={}, time_share=0.5)
             for t in ("traditional", "neural")]
    blueprint = Blueprint(validation=ValidationScheme(kind="kfold"), tracks=plans, budget_s=600)
    ctx = RunContext(settings=Settings(parallel_kernels=1))
    first, second = ({"plan": p, "blueprint": blueprint} for p in plans)

    def broken(state, runtime):
        take_turn(state, runtime.context)
        raise RuntimeError("a bug in a node")

    ctx.turns.register("neural", 1, 300.0)
    with pytest.raises(RuntimeError):
        ends_turn_on_error(broken)(first, Runtime(context=ctx))
    thread = threading.Thread(target=take_turn, args=(second, ctx), daemon=True)
    thread.start()
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive()  # traditional's planned 300 s are not waited for (JOIN_S is a tenth of them)


def test_what_a_track_waits_for():
    turns = TrackTurns(slots=1)
    turns.register("traditional", 0, 30.0)
    turns.register("neural", 1, 10.0)
    assert turns.waits_for("traditional") == []
    assert turns.waits_for("neural") == []  # the one ahead has not asked: at most the grace, nothing to show
    turns.start("traditional", 0, 30.0)
    assert turns.waits_for("neural") == ["traditional"]
    turns.finish("traditional")
    assert turns.waits_for("neural") == []


def test_a_ready_track_does_not_wait_for_one_still_being_written():
    """An LLM still writing the first track's modules: the second, ready, starts after the grace;
    the first, when it asks, waits for the second to finish (or its planned seconds)."""
    from graph.turns import ASK_GRACE_S

    clock = SetClock()
    turns = TrackTurns(slots=1, clock=clock)
    turns.register("traditional", 0, 30.0)
    turns.register("neural", 1, 20.0)
    ready, out = start_in_thread(turns, "neural", 1, 20.0)
    time.sleep(0.3)
    assert ready.is_alive(), "within the grace, the ready track lets the one ahead of it go first"
    clock.now = ASK_GRACE_S
    ready.join(timeout=JOIN_S)
    assert not ready.is_alive() and out["waited"] == ASK_GRACE_S
    thread, out = start_in_thread(turns, "traditional", 0, 30.0)
    time.sleep(0.3)
    assert thread.is_alive(), "the track written late must wait for the one computing"
    assert turns.waits_for("traditional") == ["neural"]
    turns.finish("neural")
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive()


def test_of_the_tracks_waiting_the_first_in_the_plan_goes_first():
    turns = TrackTurns(slots=1)
    for place, track in enumerate(("traditional", "pretrained", "neural")):
        turns.register(track, place, 30.0)
    turns.start("traditional", 0, 30.0)
    late, late_out = start_in_thread(turns, "neural", 2, 30.0)
    time.sleep(0.2)
    early, early_out = start_in_thread(turns, "pretrained", 1, 30.0)  # asks after neural, but is ahead of it
    time.sleep(0.2)
    turns.finish("traditional")
    early.join(timeout=JOIN_S)
    assert not early.is_alive()
    time.sleep(0.3)
    assert late.is_alive(), "neural must wait for pretrained, which the plan puts first"
    turns.finish("pretrained")
    late.join(timeout=JOIN_S)
    assert late_out["at"] > early_out["at"]
