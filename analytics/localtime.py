"""Local time for arrays of Unix milliseconds: the city's real zone (zoneinfo), daylight saving included.

The daily profile's day types, the night window of the leak check and the days off are local days.
A zone with daylight saving changes its offset twice a year, so a fixed offset puts a summer night
an hour off; here each sample gets the offset its zone had at that moment. The zone's transitions
are found once per zone and year (offsets sampled every 6 hours, each change narrowed to the
second by bisection) and looked up with np.searchsorted, so the cost is one binary search a sample.

DetectorParams.time_zone names the zone; empty (a CSV, a test) falls back to the fixed
utc_offset_h.
"""

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_STEP_S = 6 * 3600  # no zone changes its offset twice within 6 hours


def _offset_s(zone: ZoneInfo, t_s: int) -> int:
    return int(dt.datetime.fromtimestamp(t_s, dt.UTC).astimezone(zone).utcoffset().total_seconds())


@lru_cache(maxsize=256)
def _year(zone_name: str, year: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(start_ms of each offset, offset_ms) within `year` (UTC), the first starting at the year's start."""
    zone = ZoneInfo(zone_name)
    start = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())
    end = int(dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC).timestamp())
    starts, offsets = [start], [_offset_s(zone, start)]
    t = start
    while t < end:
        nxt = min(t + _STEP_S, end)
        if _offset_s(zone, nxt) != offsets[-1]:
            lo, hi = t, nxt  # offset(lo) is the old one, offset(hi) the new one: narrow to the second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset_s(zone, mid) == offsets[-1] else (lo, mid)
            starts.append(hi)
            offsets.append(_offset_s(zone, hi))
        t = nxt
    return tuple(s * 1000 for s in starts), tuple(o * 1000 for o in offsets)


@lru_cache(maxsize=64)
def fixed_offset_ms(zone_name: str) -> int | None:
    """The zone's one offset (ms) if it has kept it from 2000 to 2050 (no daylight saving), None if it changes
    (daylight saving): a zone without changes costs what a fixed offset costs."""
    offsets = {o for year in range(2000, 2051) for o in _year(zone_name, year)[1]}
    return offsets.pop() if len(offsets) == 1 else None


def offsets_ms(t_ms: np.ndarray, zone_name: str) -> np.ndarray:
    """The UTC offset (ms) of `zone_name` at each of t_ms (Unix ms, any shape)."""
    t = np.asarray(t_ms, dtype=np.int64)
    fixed = fixed_offset_ms(zone_name)
    if fixed is not None:
        return np.full(t.shape, fixed, dtype=np.int64)
    if t.size == 0:
        return np.zeros(t.shape, dtype=np.int64)
    stamped = t[t > 0]  # 0: a buffer slot never written (its offset does not matter)
    if stamped.size == 0:
        stamped = t.ravel()[:1]
    first, last = (dt.datetime.fromtimestamp(int(v) / 1000, dt.UTC).year for v in (stamped.min(), stamped.max()))
    starts: list[int] = []
    offsets: list[int] = []
    for year in range(first, last + 1):
        year_starts, year_offsets = _year(zone_name, year)
        starts += year_starts
        offsets += year_offsets
    if len(set(offsets)) == 1:  # no change of offset in these years (most of the world): no search
        return np.full(t.shape, offsets[0], dtype=np.int64)
    index = np.searchsorted(np.asarray(starts, dtype=np.int64), t, side="right") - 1
    return np.asarray(offsets, dtype=np.int64)[np.clip(index, 0, len(offsets) - 1)]


def to_local(t_ms: np.ndarray, zone_name: str, utc_offset_h: int = 0) -> np.ndarray:
    """Unix ms -> local wall-clock ms (so `// DAY_MS` is the local day); fixed utc_offset_h without a zone."""
    t = np.asarray(t_ms, dtype=np.int64)
    if not zone_name:
        return t + utc_offset_h * HOUR_MS
    fixed = fixed_offset_ms(zone_name)
    return t + (fixed if fixed is not None else offsets_ms(t, zone_name))


def to_utc(local_ms: int, zone_name: str, utc_offset_h: int = 0) -> int:
    """A local wall-clock time (ms) -> Unix ms; in a gap or an overlap of the clock, the later offset's moment."""
    if not zone_name:
        return int(local_ms) - utc_offset_h * HOUR_MS
    guess = int(local_ms) - int(offsets_ms(np.array([local_ms]), zone_name)[0])
    return int(local_ms) - int(offsets_ms(np.array([guess]), zone_name)[0])

