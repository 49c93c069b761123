"""Downloads: one dataset's rows for a local day or month as a file, streamed, and kept in a bounded disk cache.

Formats (`FORMATS`: name -> Format(media_type, write)); another format joins with one entry whose `write`
turns (dataset, period, rows) into chunks of bytes:
- `csv`: RFC 4180, a header of the dataset's columns, empty for a missing value;
- `json`: `{"dataset", "period", "columns", "data": [{column: value}, ...]}`;
- `ngsild`: NGSI-LD entities of the FIWARE Smart Data Models, one a row (api/opendata/ngsild.py).
Parquet is not offered: no library the project keeps writes it, and pyarrow imported even lazily, on a
Parquet request only, takes the API past 150 MB (api/README.md, "Catalogue, CKAN and downloads").

Memory stays bounded whatever the period: rows come window by window (datasets.rows) and leave in chunks
of CHUNK_ROWS. A file is written to the cache while it streams (`<dir>/<dataset>/<period>.<policy>.<fmt>`;
the policy's mode, k and delay are in the name, so a changed policy never serves an old file) and renamed
into place only when complete, its mtime set to the moment its rows began to be read (`as_of`); the cache
holds at most `max_bytes` (oldest files deleted first).

When a file is still right:
- aggregated datasets as CSV or JSON, once the rollup job keeps the cache's change record
  (`.cells-changed.json`, written by api/opendata/prerender.py after each run that rewrote district cells:
  `since_ms`, when the record began, and `changed` {local month or day: when its cells were last
  rewritten}): a file is served for as long as it was read after its period's last change
  (`as_of >= changed.get(period, since_ms)`). Only the rollup job writes cells, so nothing else can make such
  a file stale; a file read while the job was rewriting the cells is older than the change it missed and is
  not served. The job renders settled and current months and days into the cache itself (prerender.py), so
  a first request is a cache hit;
- otherwise (raw readings, complaints, NGSI-LD, or no change record yet): FRESH_OLD_S (a day) when its period ended
  more than two days ago, else FRESH_RECENT_S (5 minutes), because late readings still change recent hours.

Public: `FORMATS`, `DownloadCache(directory, max_bytes)`, `cache.fresh(...)`, `cache.keep(...)`,
`cache.write(...)`, `cache.note_changed(...)`, `policy_tag(dataset)`, `stream(...)`.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from api.opendata import ngsild
from api.opendata.datasets import Dataset
from telemetry_shared.city import CityProfile
from telemetry_shared.settings import Settings

CHUNK_ROWS = 2000
FRESH_OLD_S = 86_400.0
FRESH_RECENT_S = 300.0
SETTLED_MS = 2 * 86_400_000  # a period that ended this long ago no longer changes (in practice)
CHANGES = ".cells-changed.json"  # the rollup job's record of when each period's district cells changed
# formats whose bytes depend only on the rows, the policy and the period (NGSI-LD also places each row in
# its district's boundary from the profile, which no change record follows: the age rule for it)
ROWS_ONLY = ("csv", "json")


@dataclass(frozen=True)
class Format:
    media_type: str
    write: Callable[[Dataset, str, Iterable[dict[str, Any]], CityProfile], Iterator[bytes]]


def _csv(dataset: Dataset, period: str, rows: Iterable[dict[str, Any]], profile: CityProfile) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(dataset.columns)
    batch: list[tuple] = []
    for row in rows:
        batch.append(tuple(row.values()))  # publish() built each row with exactly the columns, in order
        if len(batch) >= CHUNK_ROWS:
            writer.writerows(batch)
            batch.clear()
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    writer.writerows(batch)
    yield buffer.getvalue().encode()


def _json(dataset: Dataset, period: str, rows: Iterable[dict[str, Any]], profile: CityProfile) -> Iterator[bytes]:
    head = {"dataset": dataset.id, "period": period, "columns": list(dataset.columns)}
    yield orjson.dumps(head)[:-1] + b', "data": ['
    batch: list[bytes] = []
    first = True
    for row in rows:
        batch.append(orjson.dumps(row))
        if len(batch) >= CHUNK_ROWS:
            yield (b"" if first else b",") + b",".join(batch)
            first = False
            batch.clear()
    if batch:
        yield (b"" if first else b",") + b",".join(batch)
    yield b"]}"


FORMATS: dict[str, Format] = {
    "csv": Format("text/csv; charset=utf-8", _csv),
    "json": Format("application/json", _json),
    "ngsild": Format("application/ld+json", ngsild.write),
}


def policy_tag(dataset: Dataset) -> str:
    p = dataset.policy
    return hashlib.sha256(f"{p.mode}:{p.k}:{p.delay_ms}:{','.join(dataset.columns)}".encode()).hexdigest()[:12]


def aggregated(dataset: Dataset) -> bool:
    """Read from the district x hour cells the rollup job writes (so its change record applies)."""
    return dataset.source == "readings" and dataset.policy.mode == "aggregated"


class DownloadCache:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        self._changes: tuple[int, int, dict[str, int]] | None = None  # (record's mtime_ns, since_ms, changed)
        self._changes_mtime = -1

    @classmethod
    def of(cls, settings: Settings) -> "DownloadCache":
        """The city's download cache: the API serves from it and the rollup job pre-renders into it."""
        return cls(settings.data_dir / "opendata-cache", settings.api_public_data_cache_mb * 1_000_000)

    def path(self, dataset: Dataset, period: str, fmt: str) -> Path:
        return self.directory / dataset.id / f"{period}.{policy_tag(dataset)}.{fmt}"

    def changes(self) -> tuple[int, dict[str, int]] | None:
        """(since_ms, {period: changed_ms}) of the rollup job's change record, None when there is none
        (re-read only when the file changed: one stat a request)."""
        record = self.directory / CHANGES
        try:
            mtime = record.stat().st_mtime_ns
        except OSError:
            self._changes, self._changes_mtime = None, -1
            return None
        if mtime != self._changes_mtime:
            try:
                data = json.loads(record.read_text())
                self._changes = (mtime, int(data["since_ms"]), {str(k): int(v) for k, v in data["changed"].items()})
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._changes = None  # half written or damaged: the age rule, until the job writes it again
            self._changes_mtime = mtime
        return (self._changes[1], self._changes[2]) if self._changes else None

    def fresh(self, dataset: Dataset, period: str, fmt: str, period_end_ms: int, now_ms: int) -> Path | None:
        """The cached file when it is there and still right (see the module docstring), else None."""
        if self.max_bytes <= 0:
            return None
        path = self.path(dataset, period, fmt)
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:
            return None
        changes = self.changes() if aggregated(dataset) and fmt in ROWS_ONLY else None
        if changes is not None:
            since_ms, changed = changes
            return path if mtime_ns >= changed.get(period, since_ms) * 1_000_000 else None
        age = time.time() - mtime_ns / 1e9
        limit = FRESH_OLD_S if period_end_ms <= now_ms - SETTLED_MS else FRESH_RECENT_S
        return path if age < limit else None

    def note_changed(self, periods: Iterable[str], changed_ms: int) -> None:
        """Record that the district cells of these periods (local months and days) were rewritten at
        `changed_ms` (the rollup job, after writing them); the first record starts at `changed_ms` too."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record = self.directory / CHANGES
        since_ms, changed = changed_ms, {}
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            data = json.loads(record.read_text())
            since_ms, changed = int(data["since_ms"]), {str(k): int(v) for k, v in data["changed"].items()}
        for period in periods:
            changed[period] = changed_ms
        partial = record.with_name(f"{CHANGES}.{os.getpid()}.{time.monotonic_ns()}")
        partial.write_text(json.dumps({"since_ms": since_ms, "changed": changed}, sort_keys=True))
        os.replace(partial, record)

    def keep(self, chunks: Iterator[bytes], dataset: Dataset, period: str, fmt: str,
             evict: bool = True) -> Iterator[bytes]:
        """Pass the chunks through, writing them to the cache; the file takes its place only when complete
        (a client that leaves halfway leaves no half file), stamped with the moment its rows began to be
        read (the chunks are made lazily, so that is now)."""
        if self.max_bytes <= 0:
            yield from chunks
            return
        as_of_ns = time.time_ns()
        final = self.path(dataset, period, fmt)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}")
        done = False
        try:
            with partial.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk
            os.utime(partial, ns=(as_of_ns, as_of_ns))
            os.replace(partial, final)
            done = True
        finally:
            if not done:
                partial.unlink(missing_ok=True)
        if evict:
            self.evict()

    def write(self, chunks: Iterator[bytes], dataset: Dataset, period: str, fmt: str) -> int:
        """Write a whole file into the cache (the rollup job's pre-rendering); its size. No eviction: the
        caller evicts once when done."""
        size = 0
        for chunk in self.keep(chunks, dataset, period, fmt, evict=False):
            size += len(chunk)
        return size

    def evict(self, keep: frozenset[str] = frozenset()) -> None:
        """Delete the oldest files until the cache holds at most max_bytes (files in `keep`, paths, last)."""
        files = []
        for folder in self.directory.iterdir() if self.directory.exists() else ():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if entry.is_file() and not entry.name.startswith("."):
                    stat = entry.stat()
                    files.append((entry.path in keep, stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, _, size, _ in files)
        for _, _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size


def stream(dataset: Dataset, period: str, fmt: str, rows: Iterable[dict[str, Any]],
           profile: CityProfile) -> Iterator[bytes]:
    """The file's bytes, chunk by chunk (the profile: NGSI-LD places each row in its district)."""
    return FORMATS[fmt].write(dataset, period, rows, profile)
