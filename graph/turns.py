"""Turns per track: with fewer execution slots than tracks, a track runs all its cells before the
next one starts its kernel.

Taking turns per cell (runtime.kernel.ExecutionSlots alone) keeps every started track's kernel
alive while another computes: on 2 cores a neural track's kernel held torch (~430 MB) idle beside
the traditional track's for the whole of its 21 s attempt. Here a track waits before its first
cell, holding no kernel, until the tracks ahead of it in the plan have finished — but never past
the time those tracks were planned to take, so a track that overruns, hangs in an LLM call or
dies without finishing costs the others nothing they were promised: they then take turns per
cell, as without this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TrackTurns:
    """Which tracks may start computing now. `slots` tracks compute at once (the run's execution
    slots); a track ahead in the plan goes first; `start` may be past due, never blocked forever."""

    slots: int
    clock: Callable[[], float] = time.monotonic
    _order: dict[str, int] = field(default_factory=dict)  # registered track -> its place in the plan
    _planned_s: dict[str, float] = field(default_factory=dict)  # registered track -> its share's seconds
    _since: float | None = None  # when the first track registered: the planned times count from it
    _started: set[str] = field(default_factory=set)
    _finished: set[str] = field(default_factory=set)
    _closed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def register(self, track: str, place: int, planned_s: float) -> None:
        """A track of this session's run will ask for a turn (its first node has run). Tracks that
        never register — finished in an earlier session of a resumed run, or not in this graph —
        are never waited for."""
        with self._cond:
            if self._since is None:
                self._since = self.clock()
            self._order.setdefault(track, place)
            self._planned_s.setdefault(track, max(0.0, planned_s))
            self._cond.notify_all()

    def due_s(self, track: str) -> float:
        """When `track` starts at the latest, on the turns' clock: once the registered tracks
        ahead of it have had the seconds planned for them, shared among the slots."""
        place = self._order[track]
        ahead = sum(s for t, s in self._planned_s.items() if self._order[t] < place)
        return (self._since or self.clock()) + ahead / self.slots

    def _may_start(self, track: str) -> bool:
        place = self._order[track]
        ahead = [t for t, p in self._order.items() if p < place and t not in self._finished]
        if any(t not in self._started for t in ahead):
            return False  # a track ahead of this one has not had its turn yet
        running = [t for t in self._started if t not in self._finished and t != track]
        return len(running) < self.slots

    def waits_for(self, track: str, place: int) -> list[str]:
        """The tracks `track` would wait for if it asked now (empty: it would start at once)."""
        with self._cond:
            if track in self._started or track in self._finished or self._closed:
                return []
            unfinished = [t for t in self._order if t not in self._finished and t != track]
            if track in self._order and self._may_start(track):
                return []
            return [t for t in unfinished if self._order[t] < place or t in self._started]

    def start(self, track: str, place: int, planned_s: float) -> float:
        """Blocks until `track` may compute, at the latest until it is due (`due_s`); returns the
        seconds waited. A track that has started (or finished: refine runs the best one again)
        returns at once."""
        began = self.clock()
        self.register(track, place, planned_s)
        with self._cond:
            if track in self._started or track in self._finished:
                return 0.0
            deadline = self.due_s(track)
            while not self._closed and not self._may_start(track):
                left = deadline - self.clock()
                if left <= 0:
                    break
                self._cond.wait(timeout=min(left, 1.0))
            self._started.add(track)
            return self.clock() - began

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
