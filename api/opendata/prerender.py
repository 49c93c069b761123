"""Open-data files rendered in advance by the rollup job, into the API's download cache.

After `city rollup run` has (re)written the district x hour cells of some hours (ingest/cells.py),
`after_rollup` does, in this order:
1. records in the cache that the local months and days holding those hours changed now
   (`DownloadCache.note_changed`): from then on the API serves no file of those periods read before
   (api/opendata/downloads.py), whoever made it;
2. renders every aggregated dataset's months and days, newest first, in PRERENDER_FORMATS, where the file
   is missing or older than its period's last change: the current month each run its cells changed, a
   settled month once (and again only if a re-run of the rollup changes its cells: a late reading);
   days of the current month up to today; nothing before the dataset's first row;
3. deletes the files of a policy that is no longer the profile's (a metric closed, k or the delay changed:
   the policy is in each file's name, so the API would not serve them anyway) and keeps the cache's bound.

The rows are the API's own: `datasets.rows` (so `policy.publish`, the one place the policy is applied) for
the month, written by `downloads.stream`, the same functions a request uses; a day's file is the month's
rows of that day (hour cells [day start rounded down to the hour, day end), what a request for the day
reads), so every file is byte for byte what the API would make at that moment.

Bounded: the pre-rendered files take at most PRERENDER_SHARE of the cache (CITY_API_PUBLIC_DATA_CACHE_MB);
older months past that are left to be made on request. Raw datasets (readings age out, the delay slides) and
the complaints (the API's database) are not pre-rendered.
"""

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.opendata import datasets, downloads
from api.opendata.datasets import Dataset
from telemetry_shared.city import CityProfile
from telemetry_shared.influx import InfluxQL, quote_ident
from telemetry_shared.settings import Settings

log = logging.getLogger(__name__)

PRERENDER_FORMATS = ("csv",)  # JSON (2x the CSV's bytes) and NGSI-LD (23x) are made on request
PRERENDER_SHARE = 0.5  # of the download cache's bound
HOUR_MS = datasets.HOUR_MS


@dataclass
class _Source:
    """What datasets.rows reads an aggregated dataset with (the API passes its ApiServices)."""
    influx: InfluxQL
    settings: Settings


def periods_between(profile: CityProfile, start_ms: int, end_ms: int) -> list[str]:
    """The local months and days holding any of [start_ms, end_ms)."""
    zone = profile.zone
    day = dt.datetime.fromtimestamp(start_ms / 1000, zone).date()
    last = dt.datetime.fromtimestamp(max(start_ms, end_ms - 1) / 1000, zone).date()
    out: list[str] = []
    while day <= last:
        out.append(day.isoformat())
        if day.strftime("%Y-%m") not in out:
            out.append(day.strftime("%Y-%m"))
        day += dt.timedelta(days=1)
    return out


def first_rows(influx: InfluxQL, wanted: list[Dataset]) -> dict[str, int]:
    """dataset id -> the time of its first hourly rollup (one request)."""
    statements = [f"SELECT first({quote_ident(d.metric + '_mean')}) FROM "
                  f"{quote_ident(datasets.ROLLUP_RP)}.{quote_ident(d.kind + '_1h')}" for d in wanted]
    first: dict[str, int] = {}
    if statements:
        for dataset, result in zip(wanted, influx.raw(";".join(statements)), strict=True):
            for series in result.get("series", []):
                first[dataset.id] = series["values"][0][0]
    return first


def _months(profile: CityProfile, first_ms: int, now_ms: int) -> list[str]:
    zone = profile.zone
    first = dt.datetime.fromtimestamp(first_ms / 1000, zone)
    last = dt.datetime.fromtimestamp(now_ms / 1000, zone)
    out, year, month = [], last.year, last.month
    while (year, month) >= (first.year, first.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out  # newest first


def _days(profile: CityProfile, month: str, first_ms: int, now_ms: int) -> list[tuple[str, str, str]]:
    """(day, first hour cell's ISO time, end's ISO time) of the month's days that have begun and end after
    the first row: a request for one reads the hour cells of [day start rounded down to the hour, day end)."""
    start, end = datasets.period_bounds(profile, month)
    zone = profile.zone
    out = []
    day = dt.datetime.fromtimestamp(start / 1000, zone).date()
    while (lo := datasets.period_bounds(profile, day.isoformat())[0]) < min(end, now_ms):
        hi = datasets.period_bounds(profile, day.isoformat())[1]
        if hi > first_ms:
            out.append((day.isoformat(), datasets.iso_hour(lo // HOUR_MS * HOUR_MS), datasets.iso_hour(hi)))
        day += dt.timedelta(days=1)
    return out


def _by_day(rows: Iterable[dict[str, Any]], days: list[tuple[str, str, str]]) -> Iterator[tuple[str, list]]:
    """(day, its rows) for every day in `days`, from the month's rows in time order (a row at a day's first
    hour cell can belong to two days when the zone is not a whole hour off UTC, as a request would read)."""
    held: dict[str, list] = {day: [] for day, _, _ in days}
    n = 0  # days before n are complete
    for row in rows:
        time_ = row["time"]
        while n < len(days) and time_ >= days[n][2]:
            yield days[n][0], held.pop(days[n][0])
            n += 1
        for day, lo, hi in days[n:n + 2]:
            if lo <= time_ < hi:
                held[day].append(row)
    for day, _, _ in days[n:]:
        yield day, held.pop(day)


def _render_month(cache: downloads.DownloadCache, source: _Source, dataset: Dataset, month: str,
                  days: list[tuple[str, str, str]], fmt: str) -> list[Path]:
    """The month's file and its days' files in one format, from one read of the month's rows."""
    profile = source.settings.city
    start, end = datasets.period_bounds(profile, month)
    written: list[Path] = []

    def month_rows() -> Iterator[dict[str, Any]]:
        # days are written as the month's rows go by; the month's file takes them all
        rows = datasets.rows(source, dataset, start, end)  # type: ignore[arg-type]
        pending: list[dict[str, Any]] = []

        def tee() -> Iterator[dict[str, Any]]:
            for row in rows:
                pending.append(row)
                yield row

        for day, day_rows in _by_day(tee(), days):
            cache.write(downloads.stream(dataset, day, fmt, day_rows, profile), dataset, day, fmt)
            written.append(cache.path(dataset, day, fmt))
            yield from pending[: len(pending)]
            pending.clear()
        yield from pending

    cache.write(downloads.stream(dataset, month, fmt, month_rows(), profile), dataset, month, fmt)
    written.append(cache.path(dataset, month, fmt))
    return written


def _prune(cache: downloads.DownloadCache, profile: CityProfile) -> int:
    """Delete every file whose policy is not the profile's now (and every file of a closed dataset)."""
    tags = {d.id: downloads.policy_tag(d) for d in datasets.open_datasets(profile)}
    deleted = 0
    for folder in cache.directory.iterdir() if cache.directory.exists() else ():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        tag = tags.get(folder.name)
        for path in folder.iterdir():
            if path.name.startswith("."):
                continue
            parts = path.name.split(".")
            if tag is None or len(parts) != 3 or parts[1] != tag:
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted


def after_rollup(settings: Settings, influx: InfluxQL, changed_from_ms: int, changed_to_ms: int,
                 now_ms: int | None = None) -> dict[str, Any]:
    """Steps 1-3 of the module docstring, after a rollup run rewrote the cells of [changed_from_ms,
    changed_to_ms). {"changed", "rendered", "kept", "deleted", "bytes", "seconds"}."""
    began = time.perf_counter()
    profile = settings.city
    cache = downloads.DownloadCache.of(settings)
    report = {"changed": 0, "rendered": 0, "kept": 0, "deleted": 0, "bytes": 0, "seconds": 0.0}
    if cache.max_bytes <= 0:
        return report
    changed = periods_between(profile, changed_from_ms, changed_to_ms) if changed_from_ms < changed_to_ms else []
    cache.note_changed(changed, int(time.time() * 1000))  # after the cells were written, before any render
    report["changed"] = len(changed)
    report["deleted"] = _prune(cache, profile)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    wanted = [d for d in datasets.open_datasets(profile) if downloads.aggregated(d)]
    from ingest.rollup import retention_policies

    if not wanted or datasets.ROLLUP_RP not in retention_policies(influx):
        return report
    first = first_rows(influx, wanted)
    source = _Source(influx, settings)
    budget = int(cache.max_bytes * PRERENDER_SHARE)
    used, kept = 0, set()
    newest_first = sorted({m for d in wanted if d.id in first for m in _months(profile, first[d.id], now)},
                          reverse=True)
    for month in newest_first:
        for dataset in wanted:
            if dataset.id not in first or datasets.period_bounds(profile, month)[1] <= first[dataset.id]:
                continue
            days = _days(profile, month, first[dataset.id], now)
            _, month_end = datasets.period_bounds(profile, month)
            for fmt in PRERENDER_FORMATS:
                periods = [(month, month_end)] + [(day, datasets.period_bounds(profile, day)[1]) for day, _, _ in days]
                present = [cache.fresh(dataset, p, fmt, end, now) for p, end in periods]
                if all(present):
                    paths = [p for p in present if p is not None]
                    report["kept"] += len(paths)
                else:
                    paths = _render_month(cache, source, dataset, month, days, fmt)
                    report["rendered"] += len(paths)
                sizes = sum(p.stat().st_size for p in paths if p.exists())
                used += sizes
                kept.update(str(p) for p in paths)
                report["bytes"] += sizes
            if used >= budget:
                break
        if used >= budget:
            log.info("open-data pre-render: %d MB reached at %s; older months are made on request",
                     used // 1_000_000, month)
            break
    cache.evict(frozenset(kept))
    report["seconds"] = round(time.perf_counter() - began, 3)
    return report
