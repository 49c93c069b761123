"""Learning from dismissals: an operator who resolves an alarm as a false alarm or as expected
(planned work) says so (`cause`), and that dismissal proposes a change for its source (device,
metric, rule) by itself, once the source has `MIN_DISMISSED` dismissals within the window (30 days)
and no approved change (an open proposal is measured again, audited `tuning_remeasured`, when a new
dismissal changes it: the engineer decides on what the dismissals say now). The change is chosen
from the source's own alarms in the window:

- planned work (a device with `MIN_DISMISSED` alarms resolved so, whatever their metric: work on a
  device moves all its readings): a *calendar exception* for the whole device (metric and rule `*`),
  the local hours its planned-work alarms started in, on their weekdays, or every day once seen on
  three: no alarm of that device opens then;
- false alarms of one source (device, metric, rule) whose scores stay below a real breach: a *score
  cut-off* just above the highest false alarm (an alarm of that device and metric opens only at a
  higher score);
- false alarms at full score (a limit breach): the source's alarms become *advisories* (kept,
  listed, never on the board).

Each proposal carries its effect on that window: how many of the source's alarms the change would
have held back, how many of those were false, planned work, or real faults (the recall it would
cost). An engineer approves or rejects it; an approved detector change (cut-off, calendar) is
written to the registry file's tuning table that the analytics engines apply where a score would
open an alert (telemetry_shared/detector_tuning.py), in the same step as the decision (if the
registry cannot be written, the decision is not taken either; if the API's own commit fails after the
registry was written, the registry write is undone); undo deletes it there. Every step
is a row of `alarm_audit` (subject `tuning:<id>`); a decision on a proposal already decided is a
conflict and changes nothing.

The effect is measured on the alarm store's history (peak scores and start times), not by
re-running the detectors over InfluxDB; bench/bench_alarm_week.py measures it on a replayed week.
"""

import json
import logging
import sqlite3
from typing import Any

from pydantic import BaseModel

from api.alarms.maintenance import log_alarm
from api.db import ApiDb
from telemetry_shared.detector_tuning import DetectorChange, DetectorTuningStore, local_time

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_tuning (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    rule TEXT NOT NULL,
    change TEXT NOT NULL,
    state TEXT NOT NULL,
    proposed_ms INTEGER NOT NULL,
    effect TEXT NOT NULL,
    decided_by TEXT,
    decided_ms INTEGER,
    undone_by TEXT,
    undone_ms INTEGER
);
CREATE INDEX IF NOT EXISTS alarm_tuning_source ON alarm_tuning (device, metric, rule, state);
"""
ADVISORY = "advisory"  # the source's alarms become advisories (the API's policy, not the detectors)
WINDOW_MS = 30 * 86_400_000  # the history a proposal is measured on
MIN_DISMISSED = 2  # dismissals of one source within the window before a change is proposed
CUTOFF_MARGIN = 0.01  # a score cut-off sits this far above the highest false alarm
FULL_SCORE = 0.99  # at or above: a limit breach, which a cut-off cannot tell from a real one
DISMISSALS = ("false_alarm", "planned_work")
DAILY_AFTER = 3  # planned work seen on this many weekdays is taken as daily
EVERY = "*"  # a calendar exception's metric and rule: every one of the device


class Effect(BaseModel):
    window_days: float
    alarms: int  # the source's alarms raised in the window
    held: int  # of those, how many the change would have held back
    false_alarms: int  # held and resolved as false alarms
    real_faults: int  # held and resolved as real faults: what the change would have hidden
    planned_work: int  # held and resolved as planned work
    undecided: int  # held, and open or resolved without a cause
    board_share_percent: float  # the source's share of all alarms raised in the window


class Tuning(BaseModel):
    id: int
    device: str
    metric: str
    rule: str
    change: str  # score_cutoff, calendar (applied by the analytics engines) or advisory (by the API)
    params: dict[str, Any]  # the change's parameters (telemetry_shared/detector_tuning.py)
    state: str  # proposed, approved, rejected, undone
    proposed_ms: int
    effect: Effect
    decided_by: str | None
    decided_ms: int | None
    undone_by: str | None
    undone_ms: int | None


class TuningConflict(ValueError):
    pass


class TuningNotFound(LookupError):
    pass


class TuningUnavailable(RuntimeError):
    """The registry file, where approved detector changes go, could not be written: nothing was decided."""


def _tuning(row: Any) -> Tuning:
    return Tuning(**(dict(row) | {"effect": json.loads(row["effect"]), "params": json.loads(row["params"])}))


def tuned(conn: Any, device: str, metric: str, rule: str) -> int | None:
    """The approved advisory tuning of this source (its id), or None (detector changes act in analytics)."""
    row = conn.execute("SELECT id FROM alarm_tuning WHERE state = 'approved' AND change = ? AND device = ?"
                       " AND metric = ? AND rule = ? LIMIT 1", (ADVISORY, device, metric, rule)).fetchone()
    return row[0] if row else None


def choose(alarms: list[Any], whole_device: bool, zone: str, utc_offset_h: int) -> tuple[str, dict[str, Any], list]:
    """The change for one source's alarms in the window (rows with resolution_cause, peak score, started_ms):
    (change, params, the alarms it would have held back). A whole device's source is its planned work."""
    if whole_device:
        starts = [local_time(a["started_ms"], zone, utc_offset_h) for a in alarms
                  if a["resolution_cause"] == "planned_work"]
        days = sorted({t.weekday() for t in starts})
        # seen on three weekdays or more: routine work every day; else those weekdays (weekly work)
        params = {"weekdays": list(range(7)) if len(days) >= DAILY_AFTER else days,
                  "from_h": min(t.hour for t in starts), "to_h": min(24, max(t.hour for t in starts) + 1)}
        change = DetectorChange(0, "", EVERY, "", "calendar", params)
        return "calendar", params, [a for a in alarms if change.holds(0, None, a["started_ms"], zone, utc_offset_h)]
    highest = max(_peak(a) for a in alarms if a["resolution_cause"] == "false_alarm")
    if highest < FULL_SCORE:
        cutoff = min(1.0, round(highest + CUTOFF_MARGIN, 3))
        return "score_cutoff", {"min_score": cutoff}, [a for a in alarms if _peak(a) < cutoff]
    return ADVISORY, {}, list(alarms)


def _counts(effect: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in effect.items() if k not in ("board_share_percent", "window_days")}


def _peak(alarm: Any) -> float:
    return alarm["peak_score"] if alarm["peak_score"] is not None else alarm["score"]


class TuningStore:
    """Proposals and decisions (api.sqlite3), and the approved detector changes (the registry file)."""

    def __init__(self, db: ApiDb, detector: DetectorTuningStore | None = None, zone: str = "",
                 utc_offset_h: int = 0):
        self.db = db
        self.detector = detector
        self.zone, self.utc_offset_h = zone, utc_offset_h
        db.script(SCHEMA)
        with db.transaction() as conn:  # a file from before detector changes: the column they need
            columns = {row[1] for row in conn.execute("PRAGMA table_info(alarm_tuning)")}
            if "params" not in columns:
                conn.execute("ALTER TABLE alarm_tuning ADD COLUMN params TEXT NOT NULL DEFAULT '{}'")

    def learn(self, alert: Any, now: int, window_ms: int = WINDOW_MS) -> Tuning | None:
        """After a dismissal (resolved as a false alarm or planned work): its source's proposal, if it is due.
        Planned work is the whole device's source (it moves all its readings); a false alarm its own."""
        if alert.resolution_cause not in DISMISSALS:
            return None
        source = (alert.device, EVERY, EVERY) if alert.resolution_cause == "planned_work" else (
            alert.device, alert.metric, alert.rule)
        made = self.propose(now, window_ms, source=source)
        return made[0] if made else None

    def propose(self, now: int, window_ms: int = WINDOW_MS, min_dismissed: int = MIN_DISMISSED,
                source: tuple[str, str, str] | None = None) -> list[Tuning]:
        """New proposals (or open ones measured again) for the devices with `min_dismissed` alarms resolved as
        planned work in the window, and the sources (device, metric, rule) with as many false alarms; or for
        `source` only."""
        since = now - window_ms
        with self.db.transaction() as conn:
            total = conn.execute("SELECT count(*) FROM alerts WHERE received_ms >= ?", (since,)).fetchone()[0]
            sources = []
            if source is None or source[1] == EVERY:
                where, args = ("AND device = ?", [source[0]]) if source else ("", [])
                sources += conn.execute(
                    f"SELECT device, '{EVERY}', '{EVERY}' FROM alerts WHERE received_ms >= ? {where} GROUP BY device"
                    f" HAVING sum(resolution_cause = 'planned_work') >= ? ORDER BY device",
                    (since, *args, min_dismissed)).fetchall()
            if source is None or source[1] != EVERY:
                where, args = ("AND device = ? AND metric = ? AND rule = ?", [*source]) if source else ("", [])
                sources += conn.execute(
                    f"SELECT device, metric, rule FROM alerts WHERE received_ms >= ? {where}"
                    f" GROUP BY device, metric, rule HAVING sum(resolution_cause = 'false_alarm') >= ?"
                    f" ORDER BY device, metric, rule", (since, *args, min_dismissed)).fetchall()
            made = [self._propose(conn, tuple(row), since, total, window_ms, now) for row in sources]
        return [self.get(tuning_id) for tuning_id in made if tuning_id is not None]

    def _propose(self, conn: Any, source: tuple, since: int, total: int, window_ms: int, now: int) -> int | None:
        """A new proposal for the source (its id), or its open one measured again when new dismissals changed it
        (None when the source has an approved change, or nothing changed)."""
        current = conn.execute("SELECT * FROM alarm_tuning WHERE device = ? AND metric = ? AND rule = ?"
                               " AND state IN ('proposed', 'approved')", source).fetchone()
        if current is not None and current["state"] == "approved":
            return None
        whole = source[1] == EVERY
        which = "" if whole else " AND metric = ? AND rule = ?"
        alarms = conn.execute("SELECT resolution_cause, score, peak_score, started_ms FROM alerts"
                              f" WHERE received_ms >= ? AND device = ?{which}",
                              (since, *(source[:1] if whole else source))).fetchall()
        change, params, held = choose(alarms, whole, self.zone, self.utc_offset_h)
        causes = [a["resolution_cause"] for a in held]
        effect = Effect(window_days=round(window_ms / 86_400_000, 2), alarms=len(alarms), held=len(held),
                        false_alarms=causes.count("false_alarm"), real_faults=causes.count("fault"),
                        planned_work=causes.count("planned_work"),
                        undecided=sum(1 for c in causes if c not in ("false_alarm", "fault", "planned_work")),
                        board_share_percent=round(100 * len(alarms) / total, 1) if total else 0.0)
        note = f"{source[0]} {source[1] or '-'} {source[2]}: {change} {json.dumps(params)}"
        if current is not None:  # still undecided: the engineer decides on what the dismissals say now
            if (current["change"], json.loads(current["params"]), _counts(json.loads(current["effect"]))) == (
                    change, params, _counts(effect.model_dump())):
                return None  # the share of all alarms moves with every alarm: not a reason to measure again
            conn.execute("UPDATE alarm_tuning SET change = ?, params = ?, effect = ?, proposed_ms = ? WHERE id = ?",
                         (change, json.dumps(params), effect.model_dump_json(), now, current["id"]))
            log_alarm(conn, now, "system", "tuning_remeasured", f"tuning:{current['id']}", note, change=change,
                      params=params, **effect.model_dump())
            return None
        cursor = conn.execute(
            "INSERT INTO alarm_tuning (device, metric, rule, change, params, state, proposed_ms, effect)"
            " VALUES (?, ?, ?, ?, ?, 'proposed', ?, ?)", (*source, change, json.dumps(params), now,
                                                         effect.model_dump_json()))
        log_alarm(conn, now, "system", "tuning_proposed", f"tuning:{cursor.lastrowid}", note, change=change,
                  params=params, **effect.model_dump())
        return cursor.lastrowid

    def decide(self, tuning_id: int, actor: str, action: str, note: str, now: int) -> Tuning:
        """approve or reject a proposal, or undo an approved change."""
        was, becomes = {"approve": ("proposed", "approved"), "reject": ("proposed", "rejected"),
                        "undo": ("approved", "undone")}[action]
        written = None  # the registry file was written: undone if the API's own commit then fails
        try:
            with self.db.transaction() as conn:
                row = conn.execute("SELECT * FROM alarm_tuning WHERE id = ?", (tuning_id,)).fetchone()
                if row is None:
                    raise TuningNotFound(f"no tuning proposal {tuning_id}")
                if row["state"] != was:
                    who = row["undone_by"] or row["decided_by"] or "nobody"
                    raise TuningConflict(f"tuning {tuning_id} is {row['state']} (by {who}); only a {was} one can be "
                                         f"{becomes}")
                if action == "undo":
                    conn.execute("UPDATE alarm_tuning SET state = ?, undone_by = ?, undone_ms = ? WHERE id = ?",
                                 (becomes, actor, now, tuning_id))
                else:
                    conn.execute("UPDATE alarm_tuning SET state = ?, decided_by = ?, decided_ms = ? WHERE id = ?",
                                 (becomes, actor, now, tuning_id))
                log_alarm(conn, now, actor, f"tuning_{becomes}", f"tuning:{tuning_id}", note,
                          device=row["device"], metric=row["metric"], rule=row["rule"], change=row["change"],
                          params=json.loads(row["params"]))
                if action != "reject" and row["change"] != ADVISORY:
                    self._to_detectors(_tuning(row), action, actor, now)  # raises: the transaction rolls back
                    written = row
        except sqlite3.Error as exc:
            if written is None:
                raise
            self._restore_detectors(written, action)
            raise TuningUnavailable(f"the API's database could not be written ({exc}); nothing was decided") from exc
        return self.get(tuning_id)

    def _to_detectors(self, tuning: Tuning, action: str, actor: str, now: int) -> None:
        """Write (approve) or delete (undo) the change the analytics engines apply."""
        if self.detector is None:
            raise TuningUnavailable("no registry file to write detector changes to")
        # a metric's change covers every rule of it (the detectors pick the rule per reading), a whole device's
        # (metric '*') every metric and rule; a device-wide rule (metric '') keeps its rule
        change = DetectorChange(tuning.id, tuning.device, tuning.metric, "" if tuning.metric else tuning.rule,
                                tuning.change, tuning.params)
        try:
            if action == "approve":
                self.detector.put(change, actor, now)
            else:
                self.detector.remove(tuning.id)
        except sqlite3.Error as exc:
            raise TuningUnavailable(f"the registry file could not be written ({exc}); nothing was decided") from exc

    def _restore_detectors(self, row: Any, action: str) -> None:
        """Put the registry file back as it was before a decision the API's database did not keep."""
        tuning = _tuning(row)
        try:
            if action == "approve":
                self.detector.remove(tuning.id)
            else:  # undo: the approved change goes back, as its approver wrote it
                self._to_detectors(tuning, "approve", row["decided_by"] or "", row["decided_ms"] or 0)
        except Exception:  # the original failure is the one to report; this one needs a person
            log.exception("tuning %s: the registry file no longer matches the API's database", tuning.id)

    def get(self, tuning_id: int) -> Tuning:
        rows = self.db.query("SELECT * FROM alarm_tuning WHERE id = ?", (tuning_id,))
        if not rows:
            raise TuningNotFound(f"no tuning proposal {tuning_id}")
        return _tuning(rows[0])

    def list(self, state: str | None = None) -> list[Tuning]:
        where, args = ("WHERE state = ?", [state]) if state else ("", [])
        return [_tuning(r) for r in self.db.query(f"SELECT * FROM alarm_tuning {where} ORDER BY id DESC", args)]
