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
- copy on write: what the engine changes of a row while the save reads is
  kept first, as it was, and no more. A reading appended (`appending()`,
  in ingest, the block's lock held over the append) keeps the samples its
  shift pushes out of the ring buffer (the row as it was is those, then the
  live row's first samples), the profile tiers' cells it changes (a bucket
  or two of 3,744) and its counts; a pass (`keep(metric, row)`, before it
  scores the row) keeps the row of the detectors' state and error rings,
  once. A read takes the block's rows as they are and puts what was kept
  over them. Keeping every array of a changed row whole, as it did, held
  ~28 KB a changed series (bench_memory's stream, 6,000 devices: 96 MB at
  the most, the median of 6; 24,000: 372 MB, most of the 2.9 KB a series
  of its peak); this holds ~1 KB with its objects (2.1 MB, 5.0 MB;
  analytics/README.md, "What a checkpoint keeps of a changed row").
  A block that grows (analytics.buffers.grown) may hand the engine a new
  array object over the same rows as the one the views read (a longer view
  of its reserved mapping): appending() sees the same memory and keeps what
  the append shifts; where it grows by a copy, the views read the old
  objects, which the engine no longer changes, and nothing more is kept.

So a save reads exactly the state of when the copy began
(tests/analytics/test_statecopy.py), whatever passes ran meanwhile, and
holds only what changed while it ran. A read and a keep() or an append of
the same block take its lock, so the stream waits at most for one read of
`READ_ROWS` rows, and a read for one append. Rows and series added after the beginning are not in it
(the next checkpoint has them). keep(), appending() and close() from the engine's thread;
reads from any one thread.
"""

import contextlib
import copy
import math
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

RING, CELLS, COUNTS, WHOLE = "ring", "cells", "counts", "whole"  # how a source's changed row is kept (_Group)
ERRS = "errors"  # the detectors' error rings (_Group: a pass shifts them as an append shifts a RING)
READ_ROWS = 256  # rows a read takes under the block's lock (~3 MB of ring buffer: a millisecond or so)
ARRIVALS = ""  # the arrivals block's name among the groups (no metric is named "")
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
TIERS = ("fine", "coarse")  # the coarse history's bucket rings (CELLS); its other arrays are a few bytes a row


class _Group:
    """The per-series arrays of one block as they were at the beginning: the objects, and what was kept of a row
    before it changed. Shared by the engine's thread (keep, appending) and the save's (reads), under `lock`.

    What is kept of a changed row depends on how the engine changes that array (`kind`, per source):
    - RING, the ring buffer's values and times: an append shifts the row left by its n new samples, so the row
      as it was is the samples that left it since the beginning (kept, oldest first) followed by the live row's
      first ones (analytics.buffers.SeriesBlock: rows change only by append());
    - CELLS, the profile tiers: an append closes a bucket or two of the 2,880 + 864, so only the cells that
      differ after it (bit for bit) are kept, with their value before it;
    - COUNTS, the appended counts, open buckets and ring positions (a few bytes a row): the row, whole, before
      its first change (an append's or a pass's);
    - WHOLE, the detectors' state (~0.6 KB a row), which a pass rewrites: the row, before the pass (keep());
    - ERRS, the profile fit's error rings (float32, one a buffer sample: 2.9 KB a row at 720), which a pass shifts
      left by its new samples and writes them at the end (detectors.stream._by_hour): held as a RING's, the
      samples that left since the beginning, then the live row's first ones. A pass runs without the lock, so
      keep() first holds the row whole as it was (inflated), and settle(), after the pass, keeps of it only the
      samples that left: the shift the engine gives, checked bit for bit against the live row (the row as it was
      is then exactly the kept samples and the live row's), else the row stays whole.
    RING and CELLS rows change only inside appending(), which holds the lock over the change itself, so a read
    never sees a row half shifted nor a cell changed but not yet kept; COUNTS, WHOLE and ERRS rows are kept
    (whole) before the change, and a read puts them over the live row, as it may be changing."""

    def __init__(self, rows: int):
        self.rows = rows
        self.sources: list[np.ndarray] = []
        self.limits: list[int] = []  # rows of each source in the copy (a history or a state may have fewer)
        self.kinds: list[str] = []
        self.lives: list[Any] = []  # RING: the engine's array now (a growth may move it: the source then stays)
        self.masks: list[np.ndarray] = []  # per source, the rows with something kept
        self.held: list[dict[int, Any]] = []  # per source, row -> what is kept of it (the kind's, above)
        self.by_kind: dict[str, list[int]] = {}  # kind -> its sources' indices
        self.inflated: dict[int, dict[int, int]] = {}  # ERRS source -> row held whole by keep() -> samples held before
        # COUNTS and WHOLE rows: each kind's sources' row packed in one bytearray a row (offsets: where each
        # source's part begins), not an array object and a dict entry a source a row (~150 bytes each: at 7 counts
        # of 8 bytes, more than the data; 2.4 -> 1.1 KB a kept row, tracemalloc)
        self.packs: dict[str, dict[int, bytearray]] = {COUNTS: {}, WHOLE: {}}
        self.pack_size = {COUNTS: 0, WHOLE: 0}
        self.offsets: list[int] = []
        self.sizes: list[int] = []  # per source, its part of a pack (a row's bytes, rounded up to 8)
        self.touched = np.zeros(rows, dtype=bool)  # rows with anything kept (the copy's count of rows)
        self.counts_kept = np.zeros(rows, dtype=bool)  # rows whose COUNTS sources are kept
        self.whole_kept = np.zeros(rows, dtype=bool)  # rows whose WHOLE (and COUNTS) sources are kept
        self.kept_bytes = 0
        self.lock = threading.Lock()
        self.closed = False
        self.longest_hold_s = 0.0  # the longest read under the lock: the most keep() waited for one

    def add(self, source: np.ndarray, rows: int, kind: str = WHOLE, live: Any = None) -> "FrozenRows":
        """Register the first `rows` rows of `source`, kept as `kind` (RING: `live()` gives the engine's array
        now); returns the view the save reads them through."""
        if kind in (RING, CELLS, ERRS) and not (source.ndim == 2 and source.flags.c_contiguous
                                                and source.itemsize >= 4):
            # not laid out as the engine's arrays are (never here): kept whole, before any change
            kind = WHOLE if kind == ERRS else COUNTS
        self.sources.append(source)
        self.limits.append(min(rows, source.shape[0]))
        self.kinds.append(kind)
        self.lives.append(live)
        self.masks.append(np.zeros(self.rows, dtype=bool))
        self.held.append({})
        self.by_kind.setdefault(kind, []).append(len(self.sources) - 1)
        if kind == ERRS:
            self.inflated[len(self.sources) - 1] = {}
        self.offsets.append(self.pack_size.get(kind, 0))
        self.sizes.append(-(-math.prod(source.shape[1:]) * source.dtype.itemsize // 8) * 8)  # rounded up to 8:
        if kind in self.pack_size:  # each part aligned for its dtype
            self.pack_size[kind] += self.sizes[-1]
        return FrozenRows(self, len(self.sources) - 1, 0, self.limits[-1])

    def _of(self, kinds: tuple[str, ...], row: int) -> list[int]:
        return [index for kind in kinds for index in self.by_kind.get(kind, ()) if row < self.limits[index]]

    def _hold(self, index: int, row: int, what: Any, nbytes: int) -> None:
        self.held[index][row] = what
        self.masks[index][row] = True
        self.kept_bytes += nbytes

    def _touch(self, row: int) -> int:
        """The rows newly kept (0 or 1): the copy counts them."""
        if self.touched[row]:
            return 0
        self.touched[row] = True
        return 1

    def _pack(self, row: int, kind: str) -> None:
        """Under the lock: the row of this kind's sources (COUNTS, WHOLE), whole, in one bytearray, once."""
        if row in self.packs[kind]:
            return
        parts, found = [], False
        for index in self.by_kind.get(kind, ()):
            source, size = self.sources[index], self.sizes[index]
            if row < self.limits[index]:
                part = source[row].tobytes()
                parts.append(part + bytes(size - len(part)))
                self.masks[index][row] = found = True
            else:
                parts.append(bytes(size))
        if found:
            pack = self.packs[kind][row] = bytearray(b"".join(parts))
            self.kept_bytes += len(pack)

    def _is_live(self, index: int) -> bool:
        """Whether the engine's array now (RING, ERRS) is still the source's memory: a growth by a copy, or an
        error ring laid out anew, leaves the source as it is from then on (nothing more to keep of it)."""
        source, live = self.sources[index], self.lives[index]()
        return live is source or live is not None and \
            live.__array_interface__["data"] == source.__array_interface__["data"] and live.strides == source.strides

    def keep(self, row: int) -> int:
        """Before a pass changes `row`: its detectors' state and counts, if not kept yet, and its error rings
        whole (inflated: settle() keeps less of them after the pass). Returns the rows newly kept (0 or 1)."""
        if row >= self.rows or self.whole_kept[row] and ERRS not in self.by_kind:  # the stream's path: no lock
            return 0
        with self.lock:
            if self.closed:
                return 0
            new = 0
            if not self.whole_kept[row]:
                self.whole_kept[row] = self.counts_kept[row] = True
                self._pack(row, WHOLE)
                self._pack(row, COUNTS)
                new = self._touch(row)
            for index in self._of((ERRS,), row):
                self._inflate(index, row)
            return new

    def _inflate(self, index: int, row: int) -> None:
        """Under the lock, before a pass: the error ring's row as it was, whole (a pass shifts it unlocked)."""
        if row in self.inflated[index] or not self._is_live(index):
            return
        source, held = self.sources[index], self.held[index].get(row)
        left = 0 if held is None else held.shape[0]
        self.inflated[index][row] = left
        if left == source.shape[1]:  # every sample has left: the row as it was is held whole already
            return
        whole = self._original(index, row)
        self._hold(index, row, whole, whole.nbytes - (0 if held is None else held.nbytes))

    def settle(self, rows: list[int], shifts: list[int]) -> None:
        """After a pass over `rows` that shifted their error rings by `shifts` samples (each at most): of each row
        kept whole by keep(), only the samples that left it since the beginning, if the live row is the rest of the
        row as it was, bit for bit (else, as for a row rebuilt over its buffer, the row stays whole)."""
        with self.lock:
            if self.closed:
                return
            for index in self.by_kind.get(ERRS, ()):
                inflated, held, source = self.inflated[index], self.held[index], self.sources[index]
                if not inflated:
                    continue
                width, bits = source.shape[1], _UNSIGNED[source.itemsize]
                for row, shift in zip(rows, shifts, strict=True):
                    before = inflated.pop(row, None)
                    whole = held.get(row)
                    if before is None or whole is None or whole.shape[0] != width:
                        continue
                    live = source[row].view(bits)
                    for left in (min(before + shift, width), before):  # shifted by the pass, or not changed
                        if left < width and np.array_equal(whole[left:].view(bits), live[:width - left]):
                            if left:
                                held[row] = whole[:left].copy()
                            else:  # the row is as it was: nothing held
                                del held[row]
                                self.masks[index][row] = False
                            self.kept_bytes -= whole.nbytes - whole.itemsize * left
                            break

    def before_append(self, row: int, samples: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """appending()'s first half, under the lock: the row's counts kept (once), the samples an append of at
        most `samples` may shift out of the ring buffer, the tiers' cells as they are now."""
        if not self.counts_kept[row]:
            self.counts_kept[row] = True
            self._pack(row, COUNTS)
        leads, before = {}, {}
        for index in self._of((CELLS,), row):
            before[index] = self.sources[index][row].copy()
        for index in self._of((RING,), row):
            if self._is_live(index):
                source, gone = self.sources[index], self.held[index].get(row)
                left = 0 if gone is None else gone.shape[0]  # the samples that left since the beginning
                leads[index] = source[row, :min(samples, source.shape[1] - left)].copy()
            # else the engine's array was moved by a growth (a copy): this one no longer changes
        return leads, before

    def after_append(self, row: int, leads: dict[int, np.ndarray], before: dict[int, np.ndarray],
                     shifted: int) -> int:
        """appending()'s second half, under the lock: the `shifted` samples that left the ring buffer and the
        tiers' cells that changed, kept. Returns the rows newly kept (0 or 1)."""
        for index, lead in leads.items():
            if shifted > 0 and lead.size:
                gone, held = lead[:shifted], self.held[index].get(row)
                self._hold(index, row, gone if held is None else np.concatenate([held, gone]), gone.nbytes)
        for index, old in before.items():
            bits = _UNSIGNED[old.itemsize]  # compared bit for bit: NaN is NaN, -0.0 is not 0.0
            cells = (old.view(bits) != self.sources[index][row].view(bits)).nonzero()[0]
            if not cells.size:
                continue
            held = self.held[index].get(row)
            if held is not None:  # a cell kept already keeps its first value (a few cells: a set)
                known = set(held[:held.size // 2].tolist())
                cells = np.array([cell for cell in cells.tolist() if cell not in known], dtype=np.intp)
            # one array: the cells' positions, then their values' bits (a row's positions fit the values' size)
            part = np.concatenate([cells.astype(bits), old[cells].view(bits)])
            if held is not None:
                part = np.concatenate([held[:held.size // 2], part[:cells.size], held[held.size // 2:],
                                       part[cells.size:]])
            self._hold(index, row, part, part.nbytes - (0 if held is None else held.nbytes))
        return self._touch(row)

    def _original(self, index: int, row: int) -> np.ndarray:
        """Row `row` of source `index` as it was at the beginning (a new array); under the lock."""
        source, kind = self.sources[index], self.kinds[index]
        if not self.masks[index][row]:
            return np.array(source[row])
        if kind in self.packs:
            return self.kept(index, row).reshape(source.shape[1:]).copy()
        held = self.held[index][row]
        if kind in (RING, ERRS):  # the samples that left, then the live row's first ones (all: its older samples)
            return np.concatenate([held, source[row, :source.shape[1] - held.shape[0]]])
        out = np.array(source[row])  # CELLS: the kept cells over the live row
        half = held.size // 2
        out[held[:half].astype(np.intp)] = held[half:].view(source.dtype)
        return out

    def kept(self, index: int, row: int) -> np.ndarray:
        """What is kept of `row` of source `index`, as held (tests change it: a view where it is packed)."""
        if self.kinds[index] in self.packs:
            source = self.sources[index]
            return np.frombuffer(self.packs[self.kinds[index]][row], source.dtype, math.prod(source.shape[1:]),
                                 self.offsets[index])
        return self.held[index][row]

    def held_bytes(self) -> int:
        """What is kept, counted from the kept arrays themselves (tests: kept_bytes is this)."""
        return sum(what.nbytes for held in self.held for what in held.values()) + \
            sum(len(what) for held in self.packs.values() for what in held.values())

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for held in (*self.held, *self.packs.values(), *self.inflated.values()):
                held.clear()
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
            for row in np.flatnonzero(self.masks[index][start:end]) + start:
                out[row - start] = self._original(index, int(row))[within]
            self.longest_hold_s = max(self.longest_hold_s, time.perf_counter() - began)
        return out

    def gather(self, index: int, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """source[rows, columns] (two 1-D integer arrays) as it was at the beginning."""
        with self.lock:
            if self.closed:
                raise RuntimeError("this checkpoint's copy is closed: its arrays are the engine's again")
            out = self.sources[index][rows, columns]
            changed = np.flatnonzero(self.masks[index][rows]) if rows.size else rows
            for i in changed.tolist():
                out[i] = self._original(index, int(rows[i]))[columns[i]]
        return out


class _Appending:
    """CopyOnWrite.appending(): the block's lock held from before the append to after it (a class, not a
    generator: it is on the stream's path, once a metric of each message while a save reads)."""

    __slots__ = ("copying", "group", "row", "samples", "block", "state")

    def __init__(self, copying: "CopyOnWrite", group: _Group, row: int, samples: int, block: SeriesBlock):
        self.copying, self.group, self.row, self.samples, self.block = copying, group, row, samples, block
        self.state: tuple | None = None

    def __enter__(self) -> None:
        group = self.group
        group.lock.acquire()
        if group.closed:
            return
        before = group.kept_bytes
        self.state = (*group.before_append(self.row, self.samples), int(self.block.appended[self.row]), before)

    def __exit__(self, *_exc: object) -> None:
        group = self.group
        try:
            if self.state is not None:  # what changed is kept even if the append failed half-way
                leads, cells, count, before = self.state
                new = group.after_append(self.row, leads, cells, int(self.block.appended[self.row]) - count)
                self.copying.counted(group, new, before)
        finally:
            group.lock.release()


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


_NOTHING = contextlib.nullcontext()


class CopyOnWrite:
    """The learnt state as it is now (`learnt`), its per-series arrays read later through FrozenRows."""

    def __init__(self, learnt: LearntState):
        started, wall = time.thread_time(), time.perf_counter()
        self.groups: dict[str, _Group] = {}
        self.live: dict[str, SeriesBlock] = {}  # the engine's blocks, by group (their counts: appending())
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
        # the engine's block object stays (its arrays may be replaced by growth): its arrays now, for appending()
        frozen.values = group.add(block.values, n, RING, lambda: block.values)
        frozen.times = group.add(block.times, n, RING, lambda: block.times)
        frozen.appended = group.add(block.appended, n, COUNTS)
        self.live[name] = block
        frozen.keys, frozen.row_of = list(block.keys), dict(block.row_of)
        return frozen

    def _history(self, metric: str, history: CoarseHistory, learnt: LearntState) -> CoarseHistory:
        if metric not in learnt.blocks:  # a history without its block: small, copied whole now
            return history.copy()
        group = self._group(metric, learnt)
        frozen = copy.copy(history)
        frozen.rows = min(history.rows, group.rows)
        for name in CoarseHistory.ARRAYS:  # the tiers: an append changes a bucket or two of a row
            setattr(frozen, name, group.add(getattr(history, name), frozen.rows, CELLS if name in TIERS else COUNTS))
        return frozen

    def _stream(self, metric: str, stream: StreamState, learnt: LearntState) -> StreamState:
        if metric not in learnt.blocks:
            return stream.copy()
        group = self._group(metric, learnt)
        n = len(learnt.blocks[metric].keys)  # rows past the block's are never saved
        return StreamState(stream.periods, stream.hold, {name: group.add(a, n) for name, a in stream.arrays.items()},
                           [None if e is None else group.add(e, n, ERRS, lambda p=p: stream.errors[p])
                            for p, e in enumerate(stream.errors)])

    # ------------------------------------------------------------ while it is read

    def keep(self, name: str, row: int) -> None:
        """Before a pass changes `row` of block `name` (a metric): its detectors' state (once) and error rings (the
        rest of the row changes only by appending()) are copied first; settle() after the pass."""
        group = self.groups.get(name)
        if group is not None:
            before = group.kept_bytes
            self.counted(group, group.keep(row), before)

    def settle(self, name: str, rows: list[int], shifts: list[int]) -> None:
        """After a pass over `rows` of block `name`, kept by keep(), that shifted their error rings by `shifts`
        samples: of their error rings only the samples that left are kept (_Group.settle)."""
        group = self.groups.get(name)
        if group is not None:
            before = group.kept_bytes
            group.settle(rows, shifts)
            self.counted(group, 0, before)

    def appending(self, name: str, row: int, samples: int) -> contextlib.AbstractContextManager:
        """Around the engine's append of at most `samples` samples to `row` of block `name` (a metric: its ring
        buffer and coarse history; ARRIVALS: the device's arrival), the block's lock held: what the append
        changes is kept (the samples it shifts out, the buckets it changes, the counts), nothing more."""
        group = self.groups.get(name)
        if group is None or row >= group.rows:  # rows added since the beginning are not in the copy
            return _NOTHING
        return _Appending(self, group, row, samples, self.live[name])

    def counted(self, group: _Group, new_rows: int, before: int) -> None:
        """The rows newly kept and the group's bytes since `before`, into the copy's totals."""
        self.kept_rows += new_rows
        if group.kept_bytes != before:
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
