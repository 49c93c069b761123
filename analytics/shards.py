"""Analytics sharded by device: which worker owns a device, and the learnt state of the devices that move.

N analytics workers each own a stable share of the devices, chosen by
rendezvous hashing (highest random weight, Thaler and Ravishankar 1998): a
device belongs to the worker k in 0..N-1 with the largest
blake2b(device id, k). The same device lands on the same worker after every
restart, on every machine (no Python `hash()`, which is salted per process),
and going from N to N+1 workers moves only the devices the new worker now
wins, about 1/(N+1) of them (2 -> 3: a third); none move between the old ones.

Every worker subscribes to all telemetry and keeps its own devices (a
dropped message costs a topic parse and a dict lookup). Each keeps its own
state file; at start it takes its devices from every state file in the
folder (`adopt`): from its own, and those that moved to it from the others
(per device, from the file saved last), so changing N moves the learnt
state with the devices. The peer check compares a meter with the meters
of its district within the worker's share (see analytics/README.md).
"""

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.learnt import LearntState
from analytics.rules import Hysteresis


def weight(device: str, shard: int) -> int:
    """The device's rendezvous weight on worker `shard` (64 bits of blake2b: the same everywhere, always)."""
    return int.from_bytes(hashlib.blake2b(f"{device}\x00{shard}".encode(), digest_size=8).digest(), "big")


def owner(device: str, shards: int) -> int:
    """The worker (0..shards-1) that owns `device`."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    return max(range(shards), key=lambda k: weight(device, k))


class ShardFilter:
    """Is a device this worker's? Cached per device (a few hundred bytes each: 100,000 devices, ~20 MB)."""

    def __init__(self, shard: int, shards: int):
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
        self.shard, self.shards = shard, shards
        self._owned: dict[str, bool] = {}

    def owns(self, device: str) -> bool:
        owned = self._owned.get(device)
        if owned is None:
            owned = self._owned[device] = self.shards == 1 or owner(device, self.shards) == self.shard
        return owned


# ---------------------------------------------------------------- moving learnt state


def adopt(parts: list[tuple[int, LearntState]], keep: Callable[[str], bool], template: LearntState) -> LearntState:
    """One learnt state of the devices `keep` accepts, each taken from the part saved last that holds it.

    parts: (saved_ms, state) of every state file of the folder (this worker's
    and the others'); template: a fresh state of this engine (its sizes). The
    arrays of a device's rows move whole: buffers, coarse histories, incident
    states, night-flow minima, arrivals, silence state, incidents.
    """
    newest: dict[str, int] = {}
    for i, (saved_ms, learnt) in enumerate(parts):
        for device in learnt.last_seen_ms:
            if keep(device) and (device not in newest or saved_ms > parts[newest[device]][0]):
                newest[device] = i
    chosen = [(learnt, {d for d, i in newest.items() if i == k}) for k, (_, learnt) in enumerate(parts)]
    out = replace(template, blocks={}, history={}, states=defaultdict(Hysteresis), silence_rows={}, streams={},
                  silence=Hysteresis(), incidents={}, last_seen_ms={}, info={}, peer_scored={},
                  last_night=max([learnt.last_night for _, learnt in parts] + [template.last_night]))
    metrics = sorted({m for learnt, _ in chosen for m in learnt.blocks})
    for metric in metrics:
        pieces = [(learnt, _rows_of(learnt.blocks.get(metric), devices)) for learnt, devices in chosen]
        pieces = [(learnt, rows) for learnt, rows in pieces if rows.size]
        if not pieces:
            continue
        out.blocks[metric] = _stack_blocks([learnt.blocks[metric] for learnt, _ in pieces], [r for _, r in pieces])
        if all(metric in learnt.history for learnt, _ in pieces):
            out.history[metric] = _stack_histories([learnt.history[metric] for learnt, _ in pieces],
                                                   [r for _, r in pieces])
        for key in (metric, f"peer:{metric}"):
            if any(key in learnt.states for learnt, _ in pieces):
                out.states[key] = _stack_states([learnt.states.get(key, Hysteresis()) for learnt, _ in pieces],
                                                [r for _, r in pieces])
        if metric == "flow_lps":
            out.night_history = np.concatenate([_rows(learnt.night_history, rows, np.nan) for learnt, rows in pieces])
        scored = [learnt.peer_scored[metric] for learnt, _ in pieces if metric in learnt.peer_scored]
        if scored:
            out.peer_scored[metric] = min(scored)  # the buckets any of them had not compared yet are compared again
    arrival_pieces = [(learnt, _rows_of(learnt.arrivals, devices)) for learnt, devices in chosen]
    out.arrivals = _stack_blocks([learnt.arrivals for learnt, _ in arrival_pieces],
                                 [rows for _, rows in arrival_pieces], template.arrivals.capacity)
    silence_rows = []
    for learnt, devices in chosen:
        for device in sorted(devices):
            out.last_seen_ms[device] = learnt.last_seen_ms[device]
            if device in learnt.info:
                out.info[device] = learnt.info[device]
            if device in learnt.silence_rows:
                out.silence_rows[device] = len(silence_rows)
                silence_rows.append((learnt, learnt.silence_rows[device]))
        out.incidents.update({key: incident for key, incident in learnt.incidents.items() if key[0] in devices})
    out.silence.resize(len(silence_rows))
    for row, (learnt, saved_row) in enumerate(silence_rows):
        learnt.silence.resize(saved_row + 1)
        for name in Hysteresis.FIELDS:
            getattr(out.silence, name)[row] = getattr(learnt.silence, name)[saved_row]
    return out


def _rows_of(block: SeriesBlock | None, devices: set[str]) -> np.ndarray:
    if block is None:
        return np.zeros(0, dtype=np.int64)
    return np.array([row for row, key in enumerate(block.keys) if key[0] in devices], dtype=np.int64)


def _rows(array: np.ndarray, rows: np.ndarray, fill) -> np.ndarray:
    """array[rows], rows past its end filled (a state grown lazily has fewer rows than its block)."""
    out = np.full((rows.size, *array.shape[1:]), fill, dtype=array.dtype)
    inside = rows < array.shape[0]
    out[inside] = array[rows[inside]]
    return out


def _stack_blocks(blocks: list[SeriesBlock], rows: list[np.ndarray], capacity: int | None = None) -> SeriesBlock:
    out = SeriesBlock(capacity or blocks[0].capacity)
    for block, picked in zip(blocks, rows, strict=True):
        for row in picked:
            new = out.row(block.keys[row])
            keep = min(out.capacity, block.capacity)
            out.values[new, out.capacity - keep:] = block.values[row, block.capacity - keep:]
            out.times[new, out.capacity - keep:] = block.times[row, block.capacity - keep:]
    return out


def _stack_histories(histories: list[CoarseHistory], rows: list[np.ndarray]) -> CoarseHistory:
    out = histories[0].copy()
    for name in CoarseHistory.ARRAYS:
        fill = getattr(out, name)
        fill_value = np.nan if name in ("fine", "coarse") else (-1 if fill.dtype.kind == "i" else 0.0)
        setattr(out, name, np.concatenate([_rows(getattr(h, name)[:h.rows], r, fill_value)
                                           for h, r in zip(histories, rows, strict=True)]))
    out.rows = sum(r.size for r in rows)
    return out


def _stack_states(states: list[Hysteresis], rows: list[np.ndarray]) -> Hysteresis:
    out = Hysteresis()
    for name, start in Hysteresis.FIELDS.items():
        parts = [_rows(getattr(state, name), r, start) for state, r in zip(states, rows, strict=True)]
        setattr(out, name, np.concatenate(parts))
    return out
