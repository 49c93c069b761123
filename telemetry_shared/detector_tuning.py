"""Per-device detector tuning: the changes engineers approved from operators' dismissals.

The API (api/alarms/tuning.py) proposes a change for one source (a device and a metric, or a
device-wide rule) from the alarms operators resolved as false alarms or planned work; when an
engineer approves it, the change is written here, into the registry file that the analytics
engines already read. The engine asks `TuningCache.holds` at the one point where a series'
score would open an alert (analytics.engine): a held finding opens nothing, and the series is
asked again at its next reading, so a score that goes on rising still opens the incident once
it passes a cut-off. An undone change is deleted here (the API keeps the whole history).

Changes (`params` as JSON):
- `score_cutoff` {"min_score": s}: an alert of this source opens only at a score of at least s
  (the detectors open at 0.8; a limit breach scores 1.0, so it always passes);
- `calendar` {"weekdays": [0..6, Monday 0], "from_h": h, "to_h": h}: expected, planned work in
  that local weekly slot: no alert opens then (usually for every metric of the device: metric `*`,
  since planned work on a device moves all its readings);
- `threshold` {"below": x} or {"above": x}: an alert opens only when the reading is below
  (above) x: a per-device limit for a rule that flags low (high) readings.
"""

import datetime as dt
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SCHEMA = """
CREATE TABLE IF NOT EXISTS detector_tuning (
    tuning_id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    rule TEXT NOT NULL DEFAULT '',
    change TEXT NOT NULL,
    params TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS detector_tuning_source ON detector_tuning (device, metric);
CREATE TABLE IF NOT EXISTS registry_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO registry_meta VALUES ('tuning_version', 0);
CREATE TRIGGER IF NOT EXISTS detector_tuning_insert AFTER INSERT ON detector_tuning BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE key = 'tuning_version'; END;
CREATE TRIGGER IF NOT EXISTS detector_tuning_delete AFTER DELETE ON detector_tuning BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE key = 'tuning_version'; END;
"""
CHANGES = ("score_cutoff", "calendar", "threshold")


class TuningParamsError(ValueError):
    """A change whose parameters do not make sense; the message says which."""


@dataclass(frozen=True)
class DetectorChange:
    tuning_id: int
    device: str
    metric: str  # '' for a device-wide rule (silent, clock_offset); '*' for every metric and rule of the device
    rule: str  # '' for every rule of the metric
    change: str
    params: dict[str, Any] = field(hash=False)

    def holds(self, score: float, observed: float | None, t_ms: int, zone: str = "", utc_offset_h: int = 0) -> bool:
        """True when this change keeps an alert with this score, reading and time from opening."""
        p = self.params
        if self.change == "score_cutoff":
            return score < p["min_score"]
        if self.change == "threshold":
            if observed is None:
                return False
            return observed >= p["below"] if "below" in p else observed <= p["above"]
        local = local_time(t_ms, zone, utc_offset_h)
        return local.weekday() in p["weekdays"] and p["from_h"] <= local.hour + local.minute / 60 < p["to_h"]


def local_time(t_ms: int, zone: str = "", utc_offset_h: int = 0) -> dt.datetime:
    """The city's local time at t_ms: its zone when named, else the fixed offset."""
    tz = ZoneInfo(zone) if zone else dt.timezone(dt.timedelta(hours=utc_offset_h))
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).astimezone(tz)


def check_params(change: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a change, checked; raises TuningParamsError naming the bad one."""
    if change == "score_cutoff":
        score = params.get("min_score")
        if not isinstance(score, int | float) or not 0 < score <= 1:
            raise TuningParamsError("score_cutoff: min_score must be a number in (0, 1]")
        return {"min_score": float(score)}
    if change == "threshold":
        keys = set(params) & {"below", "above"}
        if len(keys) != 1 or not isinstance(params[next(iter(keys))], int | float):
            raise TuningParamsError("threshold: exactly one of 'below' or 'above', a number")
        key = keys.pop()
        return {key: float(params[key])}
    if change == "calendar":
        days, start, end = params.get("weekdays"), params.get("from_h"), params.get("to_h")
        if not isinstance(days, list) or not days or any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
            raise TuningParamsError("calendar: weekdays must be a non-empty list of 0 (Monday) to 6")
        if not all(isinstance(h, int | float) for h in (start, end)) or not 0 <= start < end <= 24:
            raise TuningParamsError("calendar: from_h and to_h must be hours with 0 <= from_h < to_h <= 24")
        return {"weekdays": sorted(set(days)), "from_h": float(start), "to_h": float(end)}
    raise TuningParamsError(f"unknown change {change!r}; one of {', '.join(CHANGES)}")


class DetectorTuningStore:
    """The approved changes in the registry file (SQLite, WAL), written by the API, read by the engines."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def put(self, change: DetectorChange, actor: str, now_ms: int) -> None:
        """Write an approved change (replacing one of the same id: approving is idempotent here)."""
        params = check_params(change.change, change.params)
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO detector_tuning VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (change.tuning_id, change.device, change.metric, change.rule, change.change,
                             json.dumps(params), actor, now_ms))

    def remove(self, tuning_id: int) -> bool:
        """Delete an undone change; True if there was one."""
        with self.lock:
            return self.db.execute("DELETE FROM detector_tuning WHERE tuning_id = ?", (tuning_id,)).rowcount > 0

    def version(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT value FROM registry_meta WHERE key = 'tuning_version'").fetchone()[0])

    def changes(self) -> list[DetectorChange]:
        with self.lock:
            rows = self.db.execute("SELECT * FROM detector_tuning ORDER BY tuning_id").fetchall()
        return [DetectorChange(r["tuning_id"], r["device"], r["metric"], r["rule"], r["change"],
                               json.loads(r["params"])) for r in rows]


class TuningCache:
    """The approved changes by source, for the engine's hot path: reloaded when the version moves (checked at
    most every check_s), so an approval or an undo reaches a running engine within seconds."""

    def __init__(self, store: DetectorTuningStore | None, check_s: float = 2.0):
        self.store = store
        self.check_s = check_s
        self.checked = float("-inf")
        self.version = -1
        self.by_source: dict[tuple[str, str], list[DetectorChange]] = {}

    @classmethod
    def of(cls, changes: list[DetectorChange]) -> "TuningCache":
        """A fixed set of changes (a replay of history, a test)."""
        cache = cls(None)
        cache._index(changes)
        return cache

    def _index(self, changes: list[DetectorChange]) -> None:
        self.by_source = {}
        for change in changes:
            self.by_source.setdefault((change.device, change.metric), []).append(change)

    def refresh(self) -> None:
        now = time.monotonic()
        if self.store is None or now - self.checked < self.check_s:
            return
        self.checked = now
        version = self.store.version()
        if version != self.version:
            self._index(self.store.changes())
            self.version = version

    def holding(self, device: str, metric: str, rule: str, score: float, observed: float | None, t_ms: int,
                zone: str = "", utc_offset_h: int = 0) -> DetectorChange | None:
        """The change that keeps this finding from opening an alert, or None."""
        self.refresh()
        for change in (*self.by_source.get((device, metric), ()), *self.by_source.get((device, "*"), ())):
            if change.rule in ("", rule) and change.holds(score, observed, t_ms, zone, utc_offset_h):
                return change
        return None

    def holds(self, device: str, metric: str, rule: str, score: float, observed: float | None, t_ms: int,
              zone: str = "", utc_offset_h: int = 0) -> int | None:
        """The id of the change that keeps this finding from opening an alert, or None."""
        change = self.holding(device, metric, rule, score, observed, t_ms, zone, utc_offset_h)
        return None if change is None else change.tuning_id
