"""A checkpoint's view of the learnt state as it was when the checkpoint began, read while scoring goes on.

A periodic checkpoint saves the engine's `LearntState` on a thread of its
own (analytics.service) while the engine keeps scoring. It needs the state
as it was at one moment. A whole copy (analytics.state.snapshot) paused the
stream for the copy (~1.5 s at 20,000 series) and then held as much memory
as the state again until the save was done; the copy in slices between
passes that followed it took the pause away but not the memory: at 100,000
series ~3 GB more for every checkpoint. Here there is no second copy:

- when it begins (`CopyOnWrite(learnt)`, on the engine's thread between two
  passes), what is small is copied at once: the tables (last seen, kinds,
  incidents, keys), the hysteresis states, the night-flow minima;
- the per-series arrays (each metric's ring buffer, coarse history and
  detectors' state, the arrivals' buffer: all indexed by the block's rows)
  are not copied: the copy's `learnt` holds `FrozenRows` views of them,
  which the save reads, a few hundred rows at a time, on its own thread;
- copy on write: before the engine changes a row of a block (a reading
  appended, a series scored), it calls `keep(metric, row)`, which copies
  that row of every array of the block, once, unless the save is over.
  A read takes the block's rows as they are and puts the kept rows over
  them. A block that grows (analytics.buffers.grown) may hand the engine a
  new array object over the same rows as the one the views read (a longer
  view of its reserved mapping): the keep() before every change covers it,
  as for any write in place; where it grows by concatenation, the views read
  the old objects, which the engine no longer changes.

So a save reads exactly the state of when the copy began
(tests/analytics/test_statecopy.py), whatever passes ran meanwhile, and
holds only the rows changed while it ran: at one reading a minute and a
save of a few seconds, a few percent of the state. A read and a keep() of
the same block take its lock, so the stream waits at most for one read of
`READ_ROWS` rows. Rows and series added after the beginning are not in it
(the next checkpoint has them). keep() and close() from the engine's thread;
reads from any one thread.
"""

import copy
import threading
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np

from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.detectors.stream import StreamState
from analytics.learnt import LearntState
from analytics.rules import Hysteresis

READ_ROWS = 256  # rows a read takes under the block's lock (~3 MB of ring buffer: a millisecond or so)
ARRIVALS = ""  # the arrivals block's name among the groups (no metric is named "")


class _Group:
    """The per-series arrays of one block as they were at the beginning: the objects, and rows kept before a
    change. Shared by the engine's thread (keep) and the save's (reads), under `lock`."""

    def __init__(self, rows: int):
        self.rows = rows
        self.sources: list[np.ndarray] = []
        self.limits: list[int] = []  # rows of each source in the copy (a history or a state may have fewer)
        self.kept_mask = np.zeros(rows, dtype=bool)
        self.kept: dict[int, list[np.ndarray | None]] = {}  # row -> that row of each source, as at the beginning
        self.kept_bytes = 0
        self.lock = threading.Lock()
        self.closed = False
        self.longest_hold_s = 0.0  # the longest read under the lock: the most keep() waited for one

    def add(self, source: np.ndarray, rows: int) -> "FrozenRows":
        """Register the first `rows` rows of `source`; returns the view the save reads them through."""
        self.sources.append(source)
        self.limits.append(min(rows, source.shape[0]))
        return FrozenRows(self, len(self.sources) - 1, 0, self.limits[-1])

    def keep(self, row: int) -> None:
        if row >= self.rows or self.kept_mask[row]:
            return
        with self.lock:
            if self.closed:
                return
            self.kept[row] = [source[row].copy() if row < limit else None
                              for source, limit in zip(self.sources, self.limits, strict=True)]
            self.kept_bytes += sum(part.nbytes for part in self.kept[row] if part is not None)
            self.kept_mask[row] = True

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.kept.clear()
            self.kept_bytes = 0
            self.sources.clear()

    def read(self, index: int, start: int, end: int, within: tuple = ()) -> np.ndarray:
        """Rows start..end-1 of source `index` as they were at the beginning, each row indexed by `within` (basic
        indices: `[:, -1]` is `within=(-1,)`); a new array."""
        with self.lock:
            if self.closed:
                raise RuntimeError("this checkpoint's copy is closed: its arrays are the engine's again")
            began = time.perf_counter()
            out = np.array(self.sources[index][(slice(start, end), *within)])
            for row in np.flatnonzero(self.kept_mask[start:end]) + start:
                out[row - start] = self.kept[int(row)][index][within]
            self.longest_hold_s = max(self.longest_hold_s, time.perf_counter() - began)
        return out

    def gather(self, index: int, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """source[rows, columns] (two 1-D integer arrays) as it was at the beginning."""
        with self.lock:
            if self.closed:
                raise RuntimeError("this checkpoint's copy is closed: its arrays are the engine's again")
            out = self.sources[index][rows, columns]
            changed = np.flatnonzero(self.kept_mask[rows]) if rows.size else rows
            for i in changed.tolist():
                out[i] = self.kept[int(rows[i])][index][columns[i]]
        return out


class FrozenRows:
    """Rows [start, end) of one array as they were when the copy began, read on demand (analytics.state reads
    it as an array: its shape, dtype, row slices, `[rows, columns]` gathers, `np.asarray`)."""

    def __init__(self, group: _Group, index: int, start: int, end: int):
        self.group, self.index, self.start, self.end = group, index, start, end
        source = group.sources[index]
        self.dtype = source.dtype
        self.shape = (end - start, *source.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> "FrozenRows | np.ndarray":
        if isinstance(key, slice):  # rows: still a view, nothing read yet
            first, last, step = key.indices(len(self))
            if step != 1:
                raise TypeError("FrozenRows: a row slice with a step")
            return FrozenRows(self.group, self.index, self.start + first, self.start + max(first, last))
        if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, np.ndarray) for k in key):
            rows, columns = (np.asarray(k, dtype=np.int64) for k in key)
            if rows.ndim != 1 or rows.shape != columns.shape or (rows.size and (rows.min() < 0 or
                                                                                 rows.max() >= len(self))):
                raise IndexError("FrozenRows: [rows, columns] takes two 1-D arrays of rows in range")
            return self.group.gather(self.index, rows + self.start, columns)
        if isinstance(key, tuple) and key and isinstance(key[0], slice):  # [rows, basic index of a row]
            rows, within = self[key[0]], tuple(key[1:])
            if any(not isinstance(k, (int, np.integer, slice)) for k in within):
                raise TypeError(f"FrozenRows: unsupported index {key!r}")
            parts = [rows._read(first, min(first + READ_ROWS, len(rows)), within)
                     for first in range(0, max(len(rows), 1), READ_ROWS)]
            return np.concatenate(parts)
        raise TypeError(f"FrozenRows: unsupported index {key!r}")

    def _read(self, first: int, last: int, within: tuple = ()) -> np.ndarray:
        return self.group.read(self.index, self.start + first, self.start + last, within)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if len(self) <= READ_ROWS:
            out = self._read(0, len(self))
        else:
            out = np.empty(self.shape, dtype=self.dtype)
            for first in range(0, len(self), READ_ROWS):
                last = min(first + READ_ROWS, len(self))
                out[first:last] = self._read(first, last)
        return out if dtype is None else out.astype(dtype, copy=False)

    def copy(self) -> np.ndarray:
        return np.asarray(self)


class CopyOnWrite:
    """The learnt state as it is now (`learnt`), its per-series arrays read later through FrozenRows."""

    def __init__(self, learnt: LearntState):
        started, wall = time.thread_time(), time.perf_counter()
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
        self.began_s = time.thread_time() - started  # the stream's pause for the beginning (CPU time)
        self.began_wall_s = time.perf_counter() - wall  # the same on the clock (with the machine's other work)
        self.kept_rows = 0
        self.peak_kept_bytes = 0
        self._kept_bytes = 0  # a running total over the groups: keep() is on the stream's path

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

    # ------------------------------------------------------------ while it is read

    def keep(self, name: str, row: int) -> None:
        """Before the engine changes `row` of block `name` (a metric, or ARRIVALS): copy that row first."""
        group = self.groups.get(name)
        if group is not None:
            before = group.kept_bytes
            group.keep(row)
            if group.kept_bytes != before:
                self.kept_rows += 1
                self._kept_bytes += group.kept_bytes - before
                self.peak_kept_bytes = max(self.peak_kept_bytes, self._kept_bytes)

    @property
    def kept_bytes(self) -> int:
        """What the rows kept so far hold (the checkpoint's memory beside the state)."""
        return self._kept_bytes

    @property
    def longest_hold_s(self) -> float:
        """The longest read under a block's lock: the most the stream waited for the save in one keep()."""
        return max((group.longest_hold_s for group in self.groups.values()), default=0.0)

    def close(self) -> None:
        """The save is over: the kept rows are dropped and keep() does nothing; the views cannot be read."""
        for group in self.groups.values():
            group.close()
        self._kept_bytes = 0

    def whole(self) -> LearntState:
        """The copy with every view read into an array (tests, benches: what a whole copy would have held)."""
        learnt = self.learnt
        return replace(
            learnt, blocks={metric: _read_block(block) for metric, block in learnt.blocks.items()},
            arrivals=_read_block(learnt.arrivals),
            history={metric: _read_history(history) for metric, history in learnt.history.items()},
            streams={metric: StreamState(s.periods, s.hold, {k: np.asarray(a) for k, a in s.arrays.items()},
                                         [None if e is None else np.asarray(e) for e in s.errors])
                     for metric, s in learnt.streams.items()})


def _read_block(block: SeriesBlock) -> SeriesBlock:
    out = copy.copy(block)
    out.values, out.times, out.appended = (np.asarray(a) for a in (block.values, block.times, block.appended))
    return out


def _read_history(history: CoarseHistory) -> CoarseHistory:
    out = copy.copy(history)
    for name in CoarseHistory.ARRAYS:
        setattr(out, name, np.asarray(getattr(history, name)))
    return out


def _hysteresis(state: Hysteresis) -> Hysteresis:
    return Hysteresis(**{name: getattr(state, name).copy() for name in Hysteresis.FIELDS})
