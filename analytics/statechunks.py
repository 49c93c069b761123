"""The state file's large arrays as row chunks beside it, so a checkpoint writes only the chunks that changed.

A state file `engine-<user>.npz` (analytics.state) keeps its small members
itself; each (series x samples) array of at least `MIN_CHUNKED_BYTES` (and `MIN_ROW_BYTES` a row) is cut into chunks of
`CHUNK_ROWS` rows (series), each stored as `<digest>.npy` in the folder
`engine-<user>.chunks` beside it and listed in the file's `chunks` member
(the manifest: per array its dtype, shape and chunk digests in row order).
A chunk's name is the SHA-256 digest (128 bits of it) of its dtype, shape and bytes, so:

- a chunk that did not change since the last checkpoint is already there
  under its name and is not written again (hashing it costs a memory read);
- a chunk file is never overwritten: it is written to a temporary name,
  fsynced and renamed, and only then does the new `.npz` (written the same
  way) refer to it. A power cut at any point leaves the previous `.npz`
  and every chunk it names: the last good checkpoint loads;
- the chunks no longer named by the new `.npz` are deleted after it is in
  place (a crash before that leaves only unused files, deleted next time);
- a load checks each chunk's digest against its name: a truncated or
  altered chunk makes the file untrusted, like any other defect.

Since version 6, the arrays the caller names as time-aligned rings (the profile's fine and coarse tiers,
whose column is the bucket number modulo the ring's width: every series writes the same columns at the
same time) are also cut by columns, into tiles of `TILE_ROWS` rows x `TILE_COLS` columns, listed band
of rows by band, each band's tiles left to right (the manifest's `rows` and `cols`: the tile's size). A
15-minute checkpoint then rewrites the one or two tiles of each row chunk that the new buckets fell in,
not the whole ring (48 h of minutes: 12 tiles a row chunk).

What changes between checkpoints: the ring buffers shift a row at each
reading, the detectors' state moves at each pass, the history's open bucket
at each reading. A chunk of 256 series is unchanged only when none of its
series had a reading since: in a city where every device reports every
minute, nearly every chunk is rewritten at a 15-minute checkpoint; slow
meters (hourly, daily), silent devices and retired rows are not.
"""

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from analytics.statefile import DTYPES, StateError, expect

CHUNK_ROWS = 256
TILE_COLS = 256  # the columns of a tile of a time-aligned ring
TILE_ROWS = 4096  # and its rows (4096 x 256 float32: 4 MB): every row changes the same columns, so a tile may
# be tall, and fewer files are written (each costs an fsync: ~4 ms here, whatever its size)
MIN_CHUNKED_BYTES = 256 * 1024
MIN_ROW_BYTES = 1024  # arrays of narrower rows stay in the .npz
MANIFEST = "chunks"  # the member of the .npz that lists the chunked arrays
CHUNK_NAME = re.compile(r"^[0-9a-f]{32}\.npy$")
MEMBER_NAME = re.compile(r"^[A-Za-z0-9_]{1,80}$")
LINEAGE = re.compile(r"^[0-9a-f]{32}$")


def chunk_dir(path: Path) -> Path:
    """The folder of a state file's chunks: `engine-x.npz` -> `engine-x.chunks`."""
    return path.with_name(path.stem + ".chunks")


def _digest(part: np.ndarray) -> str:
    h = hashlib.sha256()  # twice BLAKE2b's speed here (the CPU's SHA instructions); 128 bits of it kept
    h.update(f"{part.dtype.str}{part.shape}".encode())
    h.update(np.ascontiguousarray(part).data)
    return h.hexdigest()[:32]


def chunked(array: np.ndarray) -> bool:
    """Whether write_chunks stores `array` in chunks beside the file, not in it. Not: keys' JSON, arrays of
    a few numbers a series (open buckets' sums, the detectors' levels), which change at nearly every reading
    and whose chunk of 256 rows (a few KB) would cost an fsync each."""
    return array.ndim >= 2 and array.nbytes >= MIN_CHUNKED_BYTES and array[:1].nbytes >= MIN_ROW_BYTES


def write_chunks(arrays: dict[str, np.ndarray], path: Path, tiled: frozenset[str] | set[str] = frozenset(),
                 kept: dict[str, dict[int, str]] | None = None) -> tuple[dict[str, np.ndarray], dict, int]:
    """Store the large arrays of `arrays` as chunks beside `path`, writing only those not there yet; returns
    (the members left for the .npz itself, the manifest, the bytes written). The 2-D arrays named in `tiled`
    wider than TILE_COLS are cut by columns too. `kept`: per array, row chunks (by their number) to name by
    the given digest, as they are on disk, instead of the array's rows (a ring buffer's base, whose rows
    the caller saves as that base and its tails: analytics.statetails). Each new chunk is fsynced, then the
    folder, before the caller writes the .npz that names them."""
    kept = kept or {}
    folder = chunk_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    small, manifest, written = {}, {}, 0
    for name, array in arrays.items():
        if not chunked(array):
            small[name] = array
            continue
        cols = TILE_COLS if name in tiled and array.ndim == 2 and array.shape[1] > TILE_COLS else None
        step = TILE_ROWS if cols else CHUNK_ROWS
        chunks = []
        for start in range(0, max(array.shape[0], 1), step):
            if cols is None and start // CHUNK_ROWS in kept.get(name, {}):
                chunks.append(kept[name][start // CHUNK_ROWS])
                continue
            rows = array[start:start + step]
            for left in range(0, array.shape[1], cols) if cols else (None,):
                part = np.ascontiguousarray(rows if cols is None else rows[:, left:left + cols])
                digest = _digest(part)
                chunks.append(digest)
                target = folder / f"{digest}.npy"
                if not target.exists():
                    written += _write_chunk(part, target)
        manifest[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "chunks": chunks}
        if cols:
            manifest[name].update(rows=step, cols=cols)
    if written:
        _fsync_dir(folder)
    return small, manifest, written


def _write_chunk(part: np.ndarray, target: Path) -> int:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            np.save(out, part, allow_pickle=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def manifest_member(manifest: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)


def prune(path: Path, manifest: dict) -> int:
    """Delete the chunks (and temporary files) beside `path` that its manifest does not name, once the .npz
    naming the new ones is in place; returns the bytes the named chunks hold (the state's size beside it)."""
    folder = chunk_dir(path)
    named = {f"{digest}.npy" for entry in manifest.values() for digest in entry["chunks"]}
    kept = 0
    if not folder.is_dir():
        return 0
    for file in folder.iterdir():
        if file.name in named:
            kept += file.stat().st_size
        else:
            file.unlink(missing_ok=True)
    return kept


class ChunkedArchive:
    """An opened state file whose chunked arrays read as its own members (archive[name])."""

    def __init__(self, archive: Any, path: Path, raw: np.ndarray):
        self.archive, self.folder = archive, chunk_dir(path)
        self.manifest = read_manifest(raw)

    def names(self) -> set[str]:
        return set(self.manifest)

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self.manifest.get(name)
        if entry is None:
            return self.archive[name]
        dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
        cols, step = entry.get("cols") or max(shape[1], 1), entry.get("rows") or CHUNK_ROWS
        out = np.empty(shape, dtype=dtype)
        digests = iter(entry["chunks"])
        for start in range(0, max(shape[0], 1), step):
            rows = min(step, shape[0] - start) if shape[0] else 0
            for left in range(0, max(shape[1], 1), cols):
                width = min(cols, shape[1] - left)
                out[start:start + rows, left:left + width] = self._chunk(name, next(digests), dtype,
                                                                          (rows, width, *shape[2:]))
        return out

    def _chunk(self, name: str, digest: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
        file = self.folder / f"{digest}.npy"
        try:
            part = np.load(file, allow_pickle=False, mmap_mode=None)
        except (OSError, ValueError, EOFError) as exc:
            raise StateError(f"{name}: chunk {digest} not readable ({type(exc).__name__})") from None
        expect(part.dtype == dtype and part.shape == shape and _digest(part) == digest,
               f"{name}: chunk {digest} altered or truncated")
        return part


def read_manifest(raw: np.ndarray) -> dict:
    """The `chunks` member, every entry checked (names, dtypes, shapes, chunk counts)."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise StateError("chunks is not JSON text")
    try:
        manifest = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StateError("chunks is not JSON text") from None
    expect(isinstance(manifest, dict), "chunks: not a table")
    for name, entry in manifest.items():
        expect(MEMBER_NAME.match(name) is not None and isinstance(entry, dict), f"chunks: member {name[:60]!r}")
        shape, chunks = entry.get("shape"), entry.get("chunks")
        expect(entry.get("dtype") in [d.str for d in DTYPES], f"chunks: {name} dtype")
        expect(isinstance(shape, list) and 2 <= len(shape) <= 3
               and all(isinstance(s, int) and 0 <= s <= 100_000_000 for s in shape), f"chunks: {name} shape")
        expect(entry.get("lineage") is None or (isinstance(entry["lineage"], str)
                                                 and LINEAGE.match(entry["lineage"]) is not None),
               f"chunks: {name} lineage")
        cols = entry.get("cols")
        expect(cols is None or (type(cols) is int and 1 <= cols < shape[1] and len(shape) == 2), f"chunks: {name} cols")
        step = entry.get("rows", CHUNK_ROWS)  # version 6 wrote tiles of CHUNK_ROWS rows and said nothing
        expect(type(step) is int and 1 <= step <= 100_000_000 and (cols or step == CHUNK_ROWS), f"chunks: {name} rows")
        tiles = -(-shape[1] // cols) if cols else 1
        expect(isinstance(chunks, list) and len(chunks) == max(1, -(-shape[0] // step)) * tiles
               and all(isinstance(c, str) and CHUNK_NAME.match(f"{c}.npy") for c in chunks), f"chunks: {name} chunks")
    return manifest
