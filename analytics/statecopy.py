"""A checkpoint's copy of the learnt state taken in slices between passes, so scoring never waits for it.

A periodic checkpoint saves a copy of the engine's `LearntState` on a thread
of its own (analytics.service). Copying the whole state at once paused the
stream for the copy: ~45 KB a series, ~1.5 s at 20,000 series and ~8 s at
100,000 (analytics.state.snapshot, which stays as the whole copy). Here the
copy is the state *as it was when the copy began*, made in slices:

- when it begins (`SlicedCopy(learnt)`), what is small is copied at once:
  the tables (last seen, kinds, incidents, keys), the hysteresis states, the
  night-flow minima; a few bytes a series;
- the per-series arrays (each metric's ring buffer, coarse history and
  detectors' state, the arrivals' buffer: all indexed by the block's rows)
  are copied later, `slice_rows` rows of every array of a block at a time,
  by `step()` between two passes;
- copy on write: before the engine changes a row of a block that is not
  copied yet (a reading appended, a series scored), it calls `keep(metric,
  row)`, which copies that row of every array of the block first. Arrays
  the engine replaces (a block growing by concatenation) are not changed in
  place afterwards: the copy reads the objects it saw when it began.

So the copy equals a whole copy taken when it began
(tests/analytics/test_statecopy.py), whatever passes ran between its
slices, and the stream pauses for the beginning and one slice at most.
Rows and series added after it began are not in it (the next checkpoint has
them). Not thread-safe: begun, stepped and kept on the engine's thread.
"""

import copy
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np

from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.detectors.stream import StreamState
from analytics.learnt import LearntState
from analytics.rules import Hysteresis

SLICE_ROWS = 64  # rows of every array of a block a slice copies (~3 MB at the defaults: a few ms)
ARRIVALS = ""  # the arrivals block's name among the groups (no metric is named "")


class _Group:
    """The per-series arrays of one block (rows as the block's): their objects as they were, their copies."""

    def __init__(self, rows: int):
        self.rows = rows
        self.done = np.zeros(rows, dtype=bool)
        self.sources: list[np.ndarray] = []
        self.copies: list[np.ndarray] = []
        self.next = 0  # rows below are done (the slices go in order; keep() may have done some further on)

    def add(self, source: np.ndarray, rows: int) -> np.ndarray:
        """Register the first `rows` rows of `source`; returns their copy-to-be (filled as rows are done)."""
        target = np.empty((min(rows, source.shape[0]), *source.shape[1:]), dtype=source.dtype)
        self.sources.append(source)
        self.copies.append(target)
        return target

    def copy_rows(self, start: int, end: int) -> int:
        """Copy the rows start..end-1 not done yet; returns how many."""
        todo = ~self.done[start:end]
        if not todo.any():
            return 0
        if todo.all():
            for source, target in zip(self.sources, self.copies, strict=True):
                target[start:min(end, target.shape[0])] = source[start:min(end, target.shape[0])]
        else:
            rows = start + np.flatnonzero(todo)
            for source, target in zip(self.sources, self.copies, strict=True):
                inside = rows[rows < target.shape[0]]
                target[inside] = source[inside]
        self.done[start:end] = True
        return int(todo.sum())

    def keep(self, row: int) -> None:
        if row < self.rows and not self.done[row]:
            for source, target in zip(self.sources, self.copies, strict=True):
                if row < target.shape[0]:
                    target[row] = source[row]
            self.done[row] = True


class SlicedCopy:
    """A copy of `learnt` as it is now, its per-series arrays filled later by step() and keep()."""

    def __init__(self, learnt: LearntState, slice_rows: int = SLICE_ROWS):
        started, wall = time.thread_time(), time.perf_counter()
        self.slice_rows = slice_rows
        self.groups: dict[str, _Group] = {}
        blocks = {metric: self._block(metric, block, learnt) for metric, block in learnt.blocks.items()}
        arrivals = self._block(ARRIVALS, learnt.arrivals, learnt)
        self.learnt = replace(
            learnt, blocks=blocks, arrivals=arrivals,
            history={metric: self._history(metric, history, learnt) for metric, history in learnt.history.items()},
            streams={metric: self._stream(metric, stream, learnt) for metric, stream in learnt.streams.items()},
            states=defaultdict(Hysteresis, {key: _hysteresis(state) for key, state in learnt.states.items()}),
            silence=_hysteresis(learnt.silence), silence_rows=dict(learnt.silence_rows),
            incidents={key: replace(incident, metrics=set(incident.metrics))
                       for key, incident in learnt.incidents.items()},
            last_seen_ms=dict(learnt.last_seen_ms), info=dict(learnt.info), night_history=learnt.night_history.copy(),
            peer_scored=dict(learnt.peer_scored))
        self.order = list(self.groups.values())
        self.slices = 0
        self.longest_s = self.began_s = time.thread_time() - started  # the pause of the beginning (CPU time)
        self.longest_wall_s = time.perf_counter() - wall  # the same on the clock (with the machine's other work)

    # ------------------------------------------------------------ what is registered

    def _group(self, name: str, learnt: LearntState) -> _Group:
        group = self.groups.get(name)
        if group is None:
            block = learnt.arrivals if name == ARRIVALS else learnt.blocks[name]
            group = self.groups[name] = _Group(len(block.keys))
        return group

    def _block(self, name: str, block: SeriesBlock, learnt: LearntState) -> SeriesBlock:
        group = self._group(name, learnt)
        frozen = copy.copy(block)
        n = len(block.keys)
        frozen.values, frozen.times = group.add(block.values, n), group.add(block.times, n)
        frozen.appended = group.add(block.appended, n)
        frozen.keys, frozen.row_of = list(block.keys), dict(block.row_of)
        return frozen

    def _history(self, metric: str, history: CoarseHistory, learnt: LearntState) -> CoarseHistory:
        if metric not in learnt.blocks:  # a history without its block: small, copied whole now
            return history.copy()
        group = self._group(metric, learnt)
        frozen = copy.copy(history)
        frozen.rows = min(history.rows, group.rows)
        for name in CoarseHistory.ARRAYS:
            setattr(frozen, name, group.add(getattr(history, name), frozen.rows))
        return frozen

    def _stream(self, metric: str, stream: StreamState, learnt: LearntState) -> StreamState:
        if metric not in learnt.blocks:
            return stream.copy()
        group = self._group(metric, learnt)
        n = len(learnt.blocks[metric].keys)  # rows past the block's are never saved
        return StreamState(stream.periods, stream.hold, {name: group.add(a, n) for name, a in stream.arrays.items()},
                           [None if e is None else group.add(e, n) for e in stream.errors])

    # ------------------------------------------------------------ filling it

    def keep(self, name: str, row: int) -> None:
        """Before the engine changes `row` of block `name` (a metric, or ARRIVALS): copy that row first."""
        group = self.groups.get(name)
        if group is not None:
            group.keep(row)

    @property
    def done(self) -> bool:
        return not self.order

    def step(self) -> bool:
        """One slice: the next `slice_rows` rows not copied yet of one block (every array of it); True when the
        copy is complete. Its CPU time is the stream's pause (`longest_s`: the longest so far)."""
        started, wall = time.thread_time(), time.perf_counter()
        while self.order:
            group = self.order[0]
            while group.next < group.rows and group.done[group.next]:
                group.next += 1
            if group.next >= group.rows:
                self.order.pop(0)
                continue
            end = min(group.next + self.slice_rows, group.rows)
            group.copy_rows(group.next, end)
            group.next = end
            break
        self.slices += 1
        self.longest_s = max(self.longest_s, time.thread_time() - started)
        self.longest_wall_s = max(self.longest_wall_s, time.perf_counter() - wall)
        return self.done

    def finish(self) -> LearntState:
        """Every slice left at once (the save at stop, tests); the copy."""
        while not self.step():
            pass
        return self.learnt


def _hysteresis(state: Hysteresis) -> Hysteresis:
    return Hysteresis(**{name: getattr(state, name).copy() for name in Hysteresis.FIELDS})
