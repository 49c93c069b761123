"""The ring buffers in the state file as a base and its tails, so a checkpoint writes the new samples only.

A ring buffer's row (analytics.buffers.SeriesBlock) shifts by one at each
reading, so every row chunk of it (analytics.statechunks) changes between
two checkpoints of a live city and the whole buffer was rewritten at each:
23 KB a series at the defaults, 2.3 GB at 100,000 series. Since version 7 a
block's rows are saved as

- its base: the row chunks as a previous checkpoint wrote them, kept on disk
  under their digests and named again, not written again; with, per row, how
  many samples the block had ever appended when its chunk was written
  (`<prefix>_base`) and its newest time then (`<prefix>_base_last`);
- its tails: per row, the samples appended since (`<prefix>_tail_counts`,
  and the samples themselves, row after row, in `<prefix>_tail_times` and
  `<prefix>_tail_values`; one-dimensional members of the .npz).

A row as loaded is its base row shifted left by its tail's count, the tail
on its right: what SeriesBlock.append did to it meanwhile. This holds
because a block in use changes only by append() (which counts each row's
samples in `SeriesBlock.appended`) and because the base is taken from the
file the same block saved last (the manifest names the block's `lineage`, a
random id each new block gets; a block built otherwise, loaded with other
sizes or taken over from another shard, is a new lineage and saved whole).
A save checks it too: the row's time at the base's newest sample, shifted
by the tail, must be the base's newest time, else the chunk is saved whole.
A row chunk is written whole again (a new base, its tails then empty) when
its rows changed in number, its tails reach half the ring, or it is among
the 1/REBASE_SHARE of the chunks with the longest tails: so each chunk is
rewritten about every REBASE_SHARE checkpoints and a save writes about
1/REBASE_SHARE of the buffers plus the samples since the last few
checkpoints (at one reading a minute and 15-minute checkpoints: ~2.9 KB of
base and ~1 KB of tails a series instead of 23 KB).

Crash safety is statechunks': a base chunk is a chunk like any other, never
overwritten, deleted only once no file in place names it. A load checks the
tails like any member (counts within the ring, sizes adding up, times never
decreasing along the row as assembled).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics import statechunks
from analytics.statefile import StateError, expect

REBASE_SHARE = 8  # a save rewrites at most 1/REBASE_SHARE of a buffer's row chunks that have tails (longest first)


@dataclass
class Base:
    """What the previous file holds of one block: its row chunks' digests, each row's count at its chunk's
    writing, its shape."""
    times: list[str]
    values: list[str] | None
    counts: np.ndarray
    last: np.ndarray
    shape: tuple[int, int]


def previous_bases(path: Path) -> dict[str, Base]:
    """The blocks the state file at `path` holds as bases, by lineage; {} when there is none it can trust
    (no file, an older version, anything unreadable: the blocks are then saved whole)."""
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as opened:
            if statechunks.MANIFEST not in opened.files:
                return {}
            manifest = statechunks.read_manifest(opened[statechunks.MANIFEST])
            out = {}
            for name, entry in manifest.items():
                lineage = entry.get("lineage")
                if lineage is None or not name.endswith("_times") or entry.get("cols"):
                    continue
                prefix = name.removesuffix("_times")
                counts, last = opened[f"{prefix}_base"], opened[f"{prefix}_base_last"]
                values = manifest.get(f"{prefix}_values")
                shape = tuple(entry["shape"])
                if len(shape) != 2 or any(a.dtype != np.int64 or a.shape != shape[:1] for a in (counts, last)):
                    continue
                out[lineage] = Base(entry["chunks"], values["chunks"] if values else None, counts, last, shape)
            return out
    except Exception:  # noqa: BLE001 - a previous file not to be trusted is no base: the blocks are saved whole
        return {}


def split(prefix: str, times: np.ndarray, values: np.ndarray | None, appended: np.ndarray, previous: Base | None,
          folder: Path) -> tuple[dict[str, dict[int, str]], dict[str, np.ndarray]]:
    """One block's rows (its first n: `times`, `values` or None for times only, `appended` as SeriesBlock
    counts them) as base and tails against `previous`: (the row chunks to name as on disk, per member: for
    write_chunks' `kept`; the members to add: base counts and tails)."""
    n, width = times.shape
    appended = np.asarray(appended[:n])  # the arrays may be a checkpoint's views (analytics.statecopy): read once
    counts, tails, last = appended.copy(), np.zeros(n, dtype=np.int64), np.asarray(times[:, -1]).copy()
    kept_times, kept_values = {}, {}
    # Only a block whose arrays go in chunks (statechunks.chunked: the same test as write_chunks') has a base.
    if previous is not None and previous.shape[1] == width and statechunks.chunked(times) \
            and (values is None or statechunks.chunked(values)):
        rows_before = previous.shape[0]
        candidates = []
        for number, start in enumerate(range(0, n, statechunks.CHUNK_ROWS)):
            end = min(start + statechunks.CHUNK_ROWS, n)
            if end - start != min(statechunks.CHUNK_ROWS, rows_before - start):  # rows added since: saved whole
                continue
            since = appended[start:end] - previous.counts[start:end]
            if (since < 0).any() or since.max() >= width // 2:
                continue
            if (times[np.arange(start, end), width - 1 - since] != previous.last[start:end]).any():
                continue  # not the rows that base was taken of: saved whole
            if values is not None and previous.values is None:
                continue
            on_disk = [previous.times[number]] + ([previous.values[number]] if values is not None else [])
            if not all((folder / f"{digest}.npy").exists() for digest in on_disk):
                continue
            candidates.append((int(since.sum()), number, start, end, since))
        chunks = -(-n // statechunks.CHUNK_ROWS)
        longest = sorted((c for c in candidates if c[0] > 0), key=lambda c: -c[0])
        rebased = {c[1] for c in longest[:math.ceil(chunks / REBASE_SHARE)]}
        for _total, number, start, end, since in candidates:
            if number in rebased:
                continue
            kept_times[number] = previous.times[number]
            if values is not None:
                kept_values[number] = previous.values[number]
            counts[start:end] = previous.counts[start:end]
            last[start:end] = previous.last[start:end]
            tails[start:end] = since
    rows = np.repeat(np.arange(n), tails)
    columns = width - tails[rows] + np.arange(rows.size) - (np.cumsum(tails) - tails)[rows]
    members = {f"{prefix}_base": counts, f"{prefix}_base_last": last, f"{prefix}_tail_counts": tails,
               f"{prefix}_tail_times": times[rows, columns]}
    kept = {f"{prefix}_times": kept_times}
    if values is not None:
        members[f"{prefix}_tail_values"] = values[rows, columns]
        kept[f"{prefix}_values"] = kept_values
    return kept, members


def join(archive, names: set[str], prefix: str, times: np.ndarray,
         values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A block's rows as saved: its base (`times`, `values` as read) with its tails put back, if the file has
    them; returns (times, values, each row's appended count or None when the file keeps none)."""
    if f"{prefix}_tail_counts" not in names:
        return times, values, None
    for name in ("base", "base_last", "tail_counts", "tail_times", *(("tail_values",) if values is not None else ())):
        if f"{prefix}_{name}" not in names:
            raise StateError(f"{prefix}: {name} missing")
    expect(times.ndim == 2, f"{prefix}_times: shape")
    n, width = times.shape
    counts, tails = archive[f"{prefix}_base"], archive[f"{prefix}_tail_counts"]
    expect(counts.dtype == np.int64 and counts.shape == (n,) and (counts >= 0).all(), f"{prefix}_base")
    last = archive[f"{prefix}_base_last"]
    expect(last.dtype == np.int64 and last.shape == (n,), f"{prefix}_base_last")
    expect(tails.dtype == np.int64 and tails.shape == (n,) and (tails >= 0).all() and (tails <= width).all(),
           f"{prefix}_tail_counts")
    total = int(tails.sum())
    tail_times = archive[f"{prefix}_tail_times"]
    expect(tail_times.dtype == np.int64 and tail_times.shape == (total,), f"{prefix}_tail_times")
    if values is not None:
        tail_values = archive[f"{prefix}_tail_values"]
        expect(tail_values.dtype == np.float64 and tail_values.shape == (total,), f"{prefix}_tail_values")
        expect(values.shape == times.shape, f"{prefix}: array shapes")
    offsets = np.cumsum(tails) - tails
    for start in np.flatnonzero(np.add.reduceat(tails, np.arange(0, n, statechunks.CHUNK_ROWS)) if n else []):
        rows = slice(start * statechunks.CHUNK_ROWS, (start + 1) * statechunks.CHUNK_ROWS)
        shift = tails[rows, None]
        source = np.arange(width)[None, :] + shift  # a base column, or past the base: a tail's sample
        in_base = source < width
        at = (offsets[rows, None] + source - width)[~in_base]
        times[rows] = _joined(times[rows], source, in_base, tail_times, at)
        if values is not None:
            values[rows] = _joined(values[rows], source, in_base, tail_values, at)
    if n:
        # Each tail follows its base: the base's newest sample, shifted left by the tail, is where it was.
        expect((times[np.arange(n), width - 1 - np.minimum(tails, width - 1)] == last)[tails < width].all(),
               f"{prefix}: tails that do not follow their base")
    return times, values, counts + tails


def _joined(base: np.ndarray, source: np.ndarray, in_base: np.ndarray, tail: np.ndarray, at: np.ndarray) -> np.ndarray:
    out = np.take_along_axis(base, np.minimum(source, base.shape[1] - 1), axis=1)
    out[~in_base] = tail[at]
    return out
