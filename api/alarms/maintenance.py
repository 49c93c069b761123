"""Out of service (ISA-18.2: removed from service for maintenance): a technician puts a device
under maintenance until a time, with a note. Its alarms are suppressed (kept, audited, not on
the board, not notified) until the maintenance is stopped or its time is up; alarms still open
then come back to the board ("returned_to_service").

Every start, stop and expiry is a row of `alarm_audit` (append-only, like the alert audit trail);
every alarm suppressed or returned is a row of its own alert's audit trail. Each change is one
transaction: a refused request leaves nothing behind.
"""

import json
from typing import Any

from pydantic import BaseModel

from api.db import ApiDb

SCHEMA = """
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    note TEXT NOT NULL,
    started_by TEXT NOT NULL,
    ended_ms INTEGER,
    ended_by TEXT,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS maintenance_open ON maintenance (device, ended_ms);
CREATE TABLE IF NOT EXISTS alarm_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS alarm_audit_no_update BEFORE UPDATE ON alarm_audit
BEGIN SELECT RAISE(ABORT, 'the alarm audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS alarm_audit_no_delete BEFORE DELETE ON alarm_audit
BEGIN SELECT RAISE(ABORT, 'the alarm audit trail is append-only'); END;
"""
SYSTEM = "system"


class Maintenance(BaseModel):
    id: int
    device: str
    started_ms: int
    until_ms: int
    note: str
    started_by: str
    ended_ms: int | None
    ended_by: str | None
    end_reason: str | None


class MaintenanceConflict(ValueError):
    """Already under maintenance, or not under maintenance."""


def active_maintenance(conn: Any, device: str, now: int) -> Any:
    """The device's maintenance in force at `now` (a row), or None."""
    return conn.execute("SELECT * FROM maintenance WHERE device = ? AND ended_ms IS NULL AND until_ms > ?"
                        " ORDER BY id DESC LIMIT 1", (device, now)).fetchone()


def log_alarm(conn: Any, t_ms: int, actor: str, action: str, subject: str, note: str = "", **detail: Any) -> None:
    conn.execute("INSERT INTO alarm_audit (t_ms, actor, action, subject, note, detail) VALUES (?, ?, ?, ?, ?, ?)",
                 (t_ms, actor, action, subject, note, json.dumps(detail)))


def _log_alert(conn: Any, alert_id: str, t_ms: int, actor: str, action: str, note: str, **detail: Any) -> None:
    conn.execute("INSERT INTO alert_audit (alert_id, t_ms, actor, action, note, detail) VALUES (?, ?, ?, ?, ?, ?)",
                 (alert_id, t_ms, actor, action, note, json.dumps(detail)))


class MaintenanceStore:
    def __init__(self, db: ApiDb):
        self.db = db
        db.script(SCHEMA)

    def start(self, device: str, until_ms: int, note: str, actor: str, now: int) -> tuple[Maintenance, list[str]]:
        """Put a device under maintenance; returns it and the ids of the alarms now suppressed.
        The caller has checked the device exists and is not retired."""
        with self.db.transaction() as conn:
            current = active_maintenance(conn, device, now)
            if current is not None:
                raise MaintenanceConflict(f"{device} is already under maintenance until {current['until_ms']} "
                                          f"(by {current['started_by']}); stop it first")
            cursor = conn.execute("INSERT INTO maintenance (device, started_ms, until_ms, note, started_by)"
                                  " VALUES (?, ?, ?, ?, ?)", (device, now, until_ms, note, actor))
            log_alarm(conn, now, actor, "maintenance_started", device, note, until_ms=until_ms,
                      maintenance=cursor.lastrowid)
            ids = [row[0] for row in conn.execute(
                "SELECT id FROM alerts WHERE device = ? AND resolved_ms IS NULL AND suppressed = 0", (device,))]
            for alert_id in ids:
                conn.execute("UPDATE alerts SET suppressed = 1, changed_ms = ? WHERE id = ?", (now, alert_id))
                _log_alert(conn, alert_id, now, actor, "suppressed", f"{device} under maintenance: {note}"[:500],
                           maintenance=cursor.lastrowid, until_ms=until_ms)
        return self.get(cursor.lastrowid), ids

    def stop(self, device: str, actor: str, now: int) -> tuple[Maintenance, list[str]]:
        """End a device's maintenance now; returns it and the ids of its alarms back on the board."""
        with self.db.transaction() as conn:
            current = active_maintenance(conn, device, now)
            if current is None:
                raise MaintenanceConflict(f"{device} is not under maintenance")
            ids = self._end(conn, current, actor, "stopped", now)
        return self.get(current["id"]), ids

    def expire_due(self, now: int) -> list[tuple[Maintenance, list[str]]]:
        """End every maintenance whose time is up (by the system, at its `until_ms`)."""
        with self.db.transaction() as conn:
            due = conn.execute("SELECT * FROM maintenance WHERE ended_ms IS NULL AND until_ms <= ?", (now,)).fetchall()
            ended = [(row["id"], self._end(conn, row, SYSTEM, "expired", now)) for row in due]
        return [(self.get(mid), ids) for mid, ids in ended]

    def _end(self, conn: Any, row: Any, actor: str, reason: str, now: int) -> list[str]:
        conn.execute("UPDATE maintenance SET ended_ms = ?, ended_by = ?, end_reason = ? WHERE id = ?",
                     (now, actor, reason, row["id"]))
        log_alarm(conn, now, actor, f"maintenance_{reason}", row["device"], "", maintenance=row["id"])
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM alerts WHERE device = ? AND resolved_ms IS NULL AND suppressed = 1", (row["device"],))]
        for alert_id in ids:
            conn.execute("UPDATE alerts SET suppressed = 0, changed_ms = ? WHERE id = ?", (now, alert_id))
            _log_alert(conn, alert_id, now, actor, "returned_to_service", f"maintenance {reason}",
                       maintenance=row["id"])
        return ids

    def get(self, maintenance_id: int) -> Maintenance:
        return Maintenance(**dict(self.db.query("SELECT * FROM maintenance WHERE id = ?", (maintenance_id,))[0]))

    def active(self, now: int) -> dict[str, Maintenance]:
        """Every maintenance in force, by device."""
        rows = self.db.query("SELECT * FROM maintenance WHERE ended_ms IS NULL AND until_ms > ? ORDER BY id", (now,))
        return {row["device"]: Maintenance(**dict(row)) for row in rows}

    def history(self, device: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[Maintenance], int]:
        where, args = ("WHERE device = ?", [device]) if device else ("", [])
        total = self.db.query(f"SELECT count(*) FROM maintenance {where}", args)[0][0]
        rows = self.db.query(f"SELECT * FROM maintenance {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                             [*args, limit, offset])
        return [Maintenance(**dict(row)) for row in rows], total

    def audit(self, subject: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE subject = ?", [subject]) if subject else ("", [])
        rows = self.db.query(f"SELECT * FROM alarm_audit {where} ORDER BY seq", args)
        return [dict(row) | {"detail": json.loads(row["detail"])} for row in rows]
