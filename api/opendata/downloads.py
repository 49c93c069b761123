"""Downloads: one dataset's rows for a local day or month as a file, streamed, and kept in a bounded disk cache.

Formats (`FORMATS`: name -> Format(media_type, write)); another format joins with one entry whose `write`
turns (dataset, period, rows) into chunks of bytes:
- `csv`: RFC 4180, a header of the dataset's columns, empty for a missing value;
- `json`: `{"dataset", "period", "columns", "data": [{column: value}, ...]}`;
- `ngsild`: NGSI-LD entities of the FIWARE Smart Data Models, one a row (api/opendata/ngsild.py).
Parquet is not offered: no library the project keeps writes it (pandas needs pyarrow or fastparquet).

Memory stays bounded whatever the period: rows come window by window (datasets.rows) and leave in chunks
of CHUNK_ROWS. A file is written to the cache while it streams (`<dir>/<dataset>/<period>.<policy>.<fmt>`;
the policy's mode, k and delay are in the name, so a changed policy never serves an old file) and renamed
into place only when complete; the cache holds at most `max_bytes` (oldest files deleted first). A cached
file is served for FRESH_OLD_S (a day) when its period ended more than two days ago, else for FRESH_RECENT_S
(5 minutes), because late readings and rollup re-runs still change recent hours.

Public: `FORMATS`, `DownloadCache(directory, max_bytes)`, `cache.open(...)`, `stream(...)`.
"""

import csv
import hashlib
import io
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

CHUNK_ROWS = 2000
FRESH_OLD_S = 86_400.0
FRESH_RECENT_S = 300.0
SETTLED_MS = 2 * 86_400_000  # a period that ended this long ago no longer changes (in practice)


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


class DownloadCache:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes

    def path(self, dataset: Dataset, period: str, fmt: str) -> Path:
        return self.directory / dataset.id / f"{period}.{policy_tag(dataset)}.{fmt}"

    def fresh(self, dataset: Dataset, period: str, fmt: str, period_end_ms: int, now_ms: int) -> Path | None:
        """The cached file when it is there and still fresh, else None."""
        if self.max_bytes <= 0:
            return None
        path = self.path(dataset, period, fmt)
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        limit = FRESH_OLD_S if period_end_ms <= now_ms - SETTLED_MS else FRESH_RECENT_S
        return path if age < limit else None

    def keep(self, chunks: Iterator[bytes], dataset: Dataset, period: str, fmt: str) -> Iterator[bytes]:
        """Pass the chunks through, writing them to the cache; the file takes its place only when complete
        (a client that leaves halfway leaves no half file)."""
        if self.max_bytes <= 0:
            yield from chunks
            return
        final = self.path(dataset, period, fmt)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}")
        done = False
        try:
            with partial.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk
            os.replace(partial, final)
            done = True
        finally:
            if not done:
                partial.unlink(missing_ok=True)
        self.evict()

    def evict(self) -> None:
        """Delete the oldest files until the cache holds at most max_bytes."""
        files = []
        for folder in self.directory.iterdir() if self.directory.exists() else ():
            for entry in os.scandir(folder):
                if entry.is_file() and not entry.name.startswith("."):
                    stat = entry.stat()
                    files.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size


def stream(dataset: Dataset, period: str, fmt: str, rows: Iterable[dict[str, Any]],
           profile: CityProfile) -> Iterator[bytes]:
    """The file's bytes, chunk by chunk (the profile: NGSI-LD places each row in its district)."""
    return FORMATS[fmt].write(dataset, period, rows, profile)
