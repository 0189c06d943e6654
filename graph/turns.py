"""Turns per track: with fewer execution slots than tracks, a track runs all its cells before the
next one starts its kernel.

Taking turns per cell (runtime.machine.ExecutionSlots alone) keeps every started track's kernel
alive while another computes: on 2 cores a neural track's kernel held torch (~430 MB) idle beside
the traditional track's for the whole of its 21 s attempt. Here a track asks for its turn before
its first cell and waits, holding no kernel, while the slots are taken; of the tracks waiting,
the one first in the plan goes first. A track that is ready never waits for one that is not (an
LLM still writing its modules) beyond a short grace, and never past the seconds planned for the
tracks computing and queued ahead of it: a track that overruns, hangs or dies without finishing
costs the others nothing they were promised; they then take turns per cell, as without this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ASK_GRACE_S = 1.0  # a ready track lets one ahead of it in the plan that has not asked yet go first, this long


@dataclass
class TrackTurns:
    """Which tracks may start computing now. `slots` tracks compute at once (the run's execution
    slots); `start` may be past due, never blocked forever."""

    slots: int
    clock: Callable[[], float] = time.monotonic
    _order: dict[str, int] = field(default_factory=dict)  # registered track -> its place in the plan
    _planned_s: dict[str, float] = field(default_factory=dict)  # registered track -> its share's seconds
    _asked: dict[str, float] = field(default_factory=dict)  # track -> when it asked for its turn
    _started: dict[str, float] = field(default_factory=dict)  # track -> when its turn began
    _finished: set[str] = field(default_factory=set)
    _closed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def register(self, track: str, place: int, planned_s: float) -> None:
        """A track of this session's run will ask for a turn (its first node has run). Tracks that
        never register — finished in an earlier session of a resumed run, or not in this graph —
        are never waited for."""
        with self._cond:
            self._order.setdefault(track, place)
            self._planned_s.setdefault(track, max(0.0, planned_s))
            self._cond.notify_all()

    def _open(self, track: str) -> bool:
        return track not in self._finished

    def _running(self, track: str) -> list[str]:
        return [t for t in self._started if self._open(t) and t != track]

    def _queued_ahead(self, track: str) -> list[str]:
        """Tracks that asked before they could start, first in the plan before `track`."""
        place = self._order[track]
        return [t for t in self._asked if t not in self._started and self._open(t) and self._order[t] < place]

    def _not_asked_ahead(self, track: str) -> list[str]:
        place = self._order[track]
        return [t for t, p in self._order.items() if p < place and t not in self._asked and self._open(t)]

    def _may_start(self, track: str) -> bool:
        if len(self._running(track)) >= self.slots or self._queued_ahead(track):
            return False
        # the plan's order when both are ready at once (offline, every track asks within a few ms)
        return not (self._not_asked_ahead(track) and self.clock() - self._asked[track] < ASK_GRACE_S)

    def _due(self, track: str) -> float:
        """When `track` starts at the latest: once the tracks computing have had the seconds
        planned for them since they started, and those queued ahead of it theirs after that."""
        now = self.clock()
        running = [self._started[t] + self._planned_s.get(t, 0.0) for t in self._running(track)]
        ahead = sum(self._planned_s.get(t, 0.0) for t in self._queued_ahead(track))
        grace = self._asked[track] + ASK_GRACE_S if self._not_asked_ahead(track) else now
        return max([now if not running else max(running), grace]) + ahead / self.slots

    def waits_for(self, track: str) -> list[str]:
        """The tracks `track` waits for now, computing or queued ahead of it (empty when none)."""
        with self._cond:
            if track not in self._order or track in self._started or not self._open(track) or self._closed:
                return []
            return self._running(track) + self._queued_ahead(track)

    def start(self, track: str, place: int, planned_s: float) -> float:
        """Blocks until `track` may compute, at the latest until it is due (`_due`, worked out
        afresh as tracks start and end); returns the seconds waited. A track that has started (or
        finished: refine runs the best one again) returns at once."""
        self.register(track, place, planned_s)
        with self._cond:
            if track in self._started or not self._open(track):
                return 0.0
            began = self._asked.setdefault(track, self.clock())
            self._cond.notify_all()
            while not self._closed and not self._may_start(track):
                left = self._due(track) - self.clock()
                if left <= 0:
                    break
                self._cond.wait(timeout=min(left, 0.25))
            self._started[track] = self.clock()
            self._cond.notify_all()
            return self._started[track] - began

    def finish(self, track: str) -> None:
        """The track is done with its kernel (it finished, or one of its nodes raised)."""
        with self._cond:
            self._finished.add(track)
            self._cond.notify_all()

    def close(self) -> None:
        """The run is ending: nobody waits any more."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
