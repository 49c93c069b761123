"""Alerts and their audit trail in SQLite.

An incident (one id from analytics) is `active` or `cleared`, and, either way,
unacknowledged or acknowledged. Analytics sets the state and its severity,
which may rise or fall while the incident lasts; escalation raises the shown
severity by one step per escalation on top of that. People acknowledge,
assign and resolve, always with their name; every change is a row in
`alert_audit`, which triggers keep append-only.
"""

import json
from typing import Any

from pydantic import BaseModel, Field

from api.db import ApiDb, now_ms
from edge import contract

SEVERITIES = contract.SEVERITIES  # low to high
ANALYTICS = "analytics"
SYSTEM = "system"

# citizens' complaints linked to incidents (api/citizens/linking.py); here because every alert read counts them
LINKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS complaint_links (
    complaint_id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    linked_by TEXT NOT NULL,
    linked_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS complaint_links_alert ON complaint_links (alert_id);
"""

SCHEMA = LINKS_SCHEMA + """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    district TEXT NOT NULL,
    metric TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    source_severity TEXT NOT NULL,
    escalation INTEGER NOT NULL DEFAULT 0,
    severity TEXT NOT NULL,
    peak_severity TEXT NOT NULL,
    score REAL NOT NULL,
    observed REAL,
    expected REAL,
    explanation TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    started_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL,
    acknowledged_by TEXT,
    acknowledged_ms INTEGER,
    assignee TEXT,
    resolved_by TEXT,
    resolved_ms INTEGER,
    escalated_ms INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (resolved_ms, state, severity);
CREATE INDEX IF NOT EXISTS alerts_changed ON alerts (changed_ms);
CREATE TABLE IF NOT EXISTS alert_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    t_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alert_audit_alert ON alert_audit (alert_id, seq);
CREATE TRIGGER IF NOT EXISTS alert_audit_no_update BEFORE UPDATE ON alert_audit
BEGIN SELECT RAISE(ABORT, 'the alert audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS alert_audit_no_delete BEFORE DELETE ON alert_audit
BEGIN SELECT RAISE(ABORT, 'the alert audit trail is append-only'); END;
"""
# Columns added for alarm management; added to an older file by ALTER TABLE at start.
ALARM_COLUMNS = {"priority": "TEXT NOT NULL DEFAULT 'low'", "shelved_until_ms": "INTEGER", "shelved_by": "TEXT",
                 "shelved_reason": "TEXT", "suppressed": "INTEGER NOT NULL DEFAULT 0",
                 "chattering": "INTEGER NOT NULL DEFAULT 0", "group_id": "TEXT", "resolution_cause": "TEXT",
                 "peak_score": "REAL"}
# What the operator's board shows as an alarm of its own (see Alert.on_board), as SQL.
ON_BOARD_SQL = ("resolved_ms IS NULL AND shelved_until_ms IS NULL AND suppressed = 0 AND chattering = 0"
                " AND group_id IS NULL AND priority != 'advisory'")


class Alert(BaseModel):
    id: str
    device: str
    kind: str
    district: str
    metric: str
    rule: str
    state: str
    severity: str
    source_severity: str
    escalation: int
    peak_severity: str
    score: float
    observed: float | None
    expected: float | None
    explanation: str
    message: dict[str, Any] | None = Field(None, description="the explanation as a catalogue key and raw params "
                                           "(edge/contract.py): render it in the reader's language")
    started_ms: int
    updated_ms: int
    received_ms: int
    changed_ms: int
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_ms: int | None
    assignee: str | None
    resolved: bool
    resolved_by: str | None
    resolved_ms: int | None
    escalated_ms: int | None
    # alarm management (api/alarms): priority by consequence; shelved by an operator until a time;
    # suppressed while its device is under maintenance; held back as chattering; a child of group_id
    priority: str = "low"
    shelved_until_ms: int | None = None
    shelved_by: str | None = None
    shelved_reason: str | None = None
    suppressed: bool = False
    chattering: bool = False
    group_id: str | None = None
    citizen_reports: int = 0  # citizens' complaints linked to this incident (api/citizens/linking.py)
    resolution_cause: str | None = None  # fault, false_alarm, planned_work (api/alarms/tuning.py learns from it)
    peak_score: float | None = None  # the highest score analytics sent for it (a tuning's score cut-off)

    @property
    def on_board(self) -> bool:
        """Shown to the operator as an alarm of its own (ISA-18.2: annunciated)."""
        return not (self.resolved or self.shelved_until_ms or self.suppressed or self.chattering or self.group_id
                    or self.priority == "advisory")


# every read of an alert counts its linked complaints (an indexed subquery)
SELECT_ALERT = ("SELECT *, (SELECT count(*) FROM complaint_links l WHERE l.alert_id = alerts.id) AS citizen_reports"
                " FROM alerts")


class AuditEntry(BaseModel):
    seq: int
    alert_id: str
    t_ms: int
    actor: str
    action: str
    note: str
    detail: dict[str, Any]


class AlertNotFound(LookupError):
    pass


class AlertConflict(ValueError):
    """The action does not fit the alert's current state (already acknowledged, already resolved)."""


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def effective(source_severity: str, escalation: int) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, rank(source_severity) + escalation)]


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(**(dict(row) | {"detail": json.loads(row["detail"])}))


def _alert(row: Any) -> Alert:
    data = dict(row)
    data["acknowledged"] = data["acknowledged_ms"] is not None
    data["resolved"] = data["resolved_ms"] is not None
    data["message"] = json.loads(data["message"]) if data.get("message") else None
    data["suppressed"] = bool(data.get("suppressed"))
    data["chattering"] = bool(data.get("chattering"))
    return Alert(**data)


def _message_json(m: dict[str, Any]) -> str:
    return json.dumps(m["message"], separators=(",", ":")) if m.get("message") else ""


FILTERS = ("state", "severity", "kind", "district", "device", "assignee", "priority", "group_id")


class AlertStore:
    def __init__(self, db: ApiDb, classify: Any = None):
        """classify(conn, alert fields, now_ms) -> (extra column values, [(audit action, note, detail)]):
        the alarm policy (api/alarms/policy.py) deciding priority, suppression, chattering and group
        inside the transaction that opens or reopens an alarm; None: all defaults."""
        self.db = db
        self.classify = classify
        db.script(SCHEMA)
        if hasattr(classify, "schema"):  # the tables the policy reads (maintenance)
            db.script(classify.schema)
        # added after the first release: ALTER TABLE keeps an older database's rows
        if "message" not in {row["name"] for row in db.query("PRAGMA table_info(alerts)")}:
            with db.transaction() as conn:
                conn.execute("ALTER TABLE alerts ADD COLUMN message TEXT NOT NULL DEFAULT ''")
        with db.lock:
            have = {row[1] for row in db.conn.execute("PRAGMA table_info(alerts)")}
            for column, spec in ALARM_COLUMNS.items():
                if column not in have:
                    db.conn.execute(f"ALTER TABLE alerts ADD COLUMN {column} {spec}")

    # ------------------------------------------------------------ reads

    def get(self, alert_id: str) -> Alert:
        rows = self.db.query(f"{SELECT_ALERT} WHERE id = ?", (alert_id,))
        if not rows:
            raise AlertNotFound(f"no alert {alert_id[:64]!r}")
        return _alert(rows[0])

    def find(self, limit: int = 100, offset: int = 0, acknowledged: bool | None = None,
             resolved: bool | None = None, on_board: bool | None = None, shelved: bool | None = None,
             **filters: str | None) -> tuple[list[Alert], int]:
        """A page of alerts, most severe and most recently changed first, and the total that match."""
        where, args = [], []
        if on_board is not None:
            where.append(f"({ON_BOARD_SQL})" if on_board else f"NOT ({ON_BOARD_SQL})")
        if shelved is not None:
            where.append("shelved_until_ms IS NOT NULL" if shelved else "shelved_until_ms IS NULL")
        for column in FILTERS:
            value = filters.get(column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if acknowledged is not None:
            where.append("acknowledged_ms IS NOT NULL" if acknowledged else "acknowledged_ms IS NULL")
        if resolved is not None:
            where.append("resolved_ms IS NOT NULL" if resolved else "resolved_ms IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = ("CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,"
                 " CASE state WHEN 'active' THEN 0 ELSE 1 END, changed_ms DESC, id")
        with self.db.lock:
            total = self.db.conn.execute(f"SELECT count(*) FROM alerts {clause}", args).fetchone()[0]
            rows = self.db.conn.execute(f"{SELECT_ALERT} {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                                        [*args, limit, offset]).fetchall()
        return [_alert(row) for row in rows], total

    def open_severities(self) -> list[tuple[str, str, str]]:
        """(device, district, severity) of every open active alert: plain tuples for the fleet's map and
        its district counts (api/routes/fleet.py), no Alert built."""
        return [tuple(row) for row in self.db.query(
            "SELECT device, district, severity FROM alerts WHERE resolved_ms IS NULL AND state = 'active'")]

    def get_with_audit(self, alert_id: str) -> tuple[Alert, list[AuditEntry]]:
        """The alert and its audit trail as of one moment (a detail page never shows one newer than the other)."""
        with self.db.lock:
            row = self.db.conn.execute(f"{SELECT_ALERT} WHERE id = ?", (alert_id,)).fetchone()
            audit_rows = self.db.conn.execute("SELECT * FROM alert_audit WHERE alert_id = ? ORDER BY seq",
                                              (alert_id,)).fetchall()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id[:64]!r}")
        return _alert(row), [_audit_entry(r) for r in audit_rows]

    def audit(self, alert_id: str) -> list[AuditEntry]:
        rows = self.db.query("SELECT * FROM alert_audit WHERE alert_id = ? ORDER BY seq", (alert_id,))
        return [_audit_entry(row) for row in rows]

    # ------------------------------------------------------------ writes

    def _log(self, conn: Any, alert_id: str, t_ms: int, actor: str, action: str, note: str = "",
             **detail: Any) -> None:
        conn.execute("INSERT INTO alert_audit (alert_id, t_ms, actor, action, note, detail) VALUES (?, ?, ?, ?, ?, ?)",
                     (alert_id, t_ms, actor, action, note, json.dumps(detail)))

    def apply(self, message: dict[str, Any]) -> tuple[Alert, list[str]] | None:
        """Apply one decoded alert message from analytics (contract.decode_alert).

        Returns the alert and what changed (e.g. ["opened"], ["severity_raised"]),
        or None for a replay or an older message, which change nothing.
        """
        now = now_ms()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM alerts WHERE id = ?", (message["id"],)).fetchone()
            changes = self._open(conn, message, now) if row is None else self._update(conn, _alert(row), message, now)
        if not changes:
            return None
        return self.get(message["id"]), changes

    def _classify(self, conn: Any, m: dict[str, Any], now: int) -> tuple[dict[str, Any], list]:
        """The alarm policy's columns for an alarm that opens or reopens now, and its reasons (audit notes)."""
        return self.classify(conn, m, now) if self.classify is not None else ({}, [])

    def _notes(self, conn: Any, alert_id: str, now: int, notes: list) -> None:
        for action, note, detail in notes:
            self._log(conn, alert_id, now, SYSTEM, action, note, **detail)

    def _open(self, conn: Any, m: dict[str, Any], now: int) -> list[str]:
        conn.execute(
            "INSERT INTO alerts (id, device, kind, district, metric, rule, state, source_severity, severity,"
            " peak_severity, score, observed, expected, explanation, message, started_ms, updated_ms, received_ms,"
            " changed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (m["id"], m["device"], m["kind"], m["district"], m["metric"], m["rule"], m["state"], m["severity"],
             m["severity"], m["severity"], m["score"], m["observed"], m["expected"], m["explanation"],
             _message_json(m), m["started_ms"], m["updated_ms"], now, now))
        fields, notes = self._classify(conn, m, now)
        fields["peak_score"] = m["score"]
        if m["state"] != "active":  # opened already cleared: only its priority
            fields, notes = {k: v for k, v in fields.items() if k in ("priority", "peak_score")}, []
        self._log(conn, m["id"], now, ANALYTICS, "opened" if m["state"] == "active" else "opened_cleared",
                  severity=m["severity"], score=m["score"], observed=m["observed"])
        self._set(conn, m["id"], fields)
        self._notes(conn, m["id"], now, notes)
        return ["opened"]

    def _set(self, conn: Any, alert_id: str, fields: dict[str, Any]) -> None:
        if fields:
            conn.execute(f"UPDATE alerts SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                         [*fields.values(), alert_id])

    def _update(self, conn: Any, old: Alert, m: dict[str, Any], now: int) -> list[str]:
        if m["updated_ms"] <= old.updated_ms:
            return []  # a replay or an older message: the store already knows better
        changes: list[str] = []
        notes: list = []
        fields: dict[str, Any] = {"score": m["score"], "observed": m["observed"], "expected": m["expected"],
                                  "explanation": m["explanation"] or old.explanation, "updated_ms": m["updated_ms"]}
        if m["explanation"]:  # the message goes with its explanation (an older sender has none)
            fields["message"] = _message_json(m)
        if m["state"] == "active" and old.resolved:
            fields |= {"resolved_by": None, "resolved_ms": None, "acknowledged_by": None, "acknowledged_ms": None,
                       "escalation": 0, "escalated_ms": None, "received_ms": now, "shelved_until_ms": None,
                       "shelved_by": None, "shelved_reason": None, "group_id": None}
            changes.append("reopened")
            policy, notes = self._classify(conn, m, now)
            fields |= {"suppressed": 0, "chattering": 0} | policy
        elif m["state"] != old.state:
            changes.append("cleared" if m["state"] == "cleared" else "reactivated")
            if m["state"] == "active" and not old.chattering:  # raised again: chattering is counted on raises
                policy, found = self._classify(conn, m, now)
                if policy.get("chattering"):
                    fields["chattering"] = 1
                    notes = [note for note in found if note[0] == "chattering"]
        fields["state"] = m["state"]
        escalation = fields.get("escalation", old.escalation)
        severity = effective(m["severity"], escalation)
        if severity != old.severity:
            changes.append("severity_raised" if rank(severity) > rank(old.severity) else "severity_lowered")
        fields |= {"source_severity": m["severity"], "severity": severity,
                   "peak_severity": max(old.peak_severity, severity, key=rank),
                   "peak_score": max(old.peak_score or 0.0, m["score"])}
        if changes:
            fields["changed_ms"] = now
        conn.execute(f"UPDATE alerts SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                     [*fields.values(), old.id])
        for change in changes:
            self._log(conn, old.id, now, ANALYTICS, change, severity=severity, state=m["state"], score=m["score"],
                      observed=m["observed"])
        self._notes(conn, old.id, now, notes)
        return changes or ["updated"]

    def _human(self, alert_id: str, actor: str, action: str, note: str, fields: dict[str, Any],
               refuse: Any = None, **detail: Any) -> Alert:
        now = now_ms()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise AlertNotFound(f"no alert {alert_id[:64]!r}")
            if refuse:
                reason = refuse(_alert(row))
                if reason:
                    raise AlertConflict(reason)
            fields = {k: (now if v is _NOW else v) for k, v in fields.items()} | {"changed_ms": now}
            conn.execute(f"UPDATE alerts SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                         [*fields.values(), alert_id])
            self._log(conn, alert_id, now, actor, action, note, **detail)
        return self.get(alert_id)

    def acknowledge(self, alert_id: str, actor: str, note: str = "") -> Alert:
        def refuse(alert: Alert) -> str | None:
            if alert.acknowledged:
                return f"already acknowledged by {alert.acknowledged_by}"
            return None

        return self._human(alert_id, actor, "acknowledged", note,
                           {"acknowledged_by": actor, "acknowledged_ms": _NOW}, refuse)

    def assign(self, alert_id: str, actor: str, assignee: str, note: str = "") -> Alert:
        return self._human(alert_id, actor, "assigned", note, {"assignee": assignee}, assignee=assignee)

    def resolve(self, alert_id: str, actor: str, note: str, cause: str = "") -> Alert:
        """Close the incident: cleared, resolved (and acknowledged, if no one had)."""
        def refuse(alert: Alert) -> str | None:
            return f"already resolved by {alert.resolved_by}" if alert.resolved else None

        current = self.get(alert_id)
        fields: dict[str, Any] = {"state": "cleared", "resolved_by": actor, "resolved_ms": _NOW,
                                  "resolution_cause": cause or None} | dict.fromkeys(UNSHELVED)
        if not current.acknowledged:
            fields |= {"acknowledged_by": actor, "acknowledged_ms": _NOW}
        return self._human(alert_id, actor, "resolved", note, fields, refuse, **({"cause": cause} if cause else {}))

    def shelve(self, alert_id: str, actor: str, until_ms: int, reason: str) -> Alert:
        """Take an alarm off the board until `until_ms` (the caller bounds it); it returns by itself."""
        def refuse(alert: Alert) -> str | None:
            if alert.resolved:
                return f"already resolved by {alert.resolved_by}: nothing to shelve"
            if alert.shelved_until_ms:
                return f"already shelved by {alert.shelved_by} until {alert.shelved_until_ms} (ms); unshelve it first"
            return None

        return self._human(alert_id, actor, "shelved", reason, {"shelved_until_ms": until_ms, "shelved_by": actor,
                                                                 "shelved_reason": reason}, refuse, until_ms=until_ms)

    def unshelve(self, alert_id: str, actor: str, note: str = "") -> Alert:
        def refuse(alert: Alert) -> str | None:
            return None if alert.shelved_until_ms else "not shelved"

        return self._human(alert_id, actor, "unshelved", note, dict.fromkeys(UNSHELVED), refuse)

    def unshelve_due(self, now: int) -> list[Alert]:
        """Every shelved alarm whose time is up, back on the board (by the system)."""
        with self.db.transaction() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM alerts WHERE shelved_until_ms <= ?", (now,))]
            for alert_id in ids:
                conn.execute("UPDATE alerts SET shelved_until_ms = NULL, shelved_by = NULL, shelved_reason = NULL,"
                             " changed_ms = ? WHERE id = ?", (now, alert_id))
                self._log(conn, alert_id, now, SYSTEM, "unshelved", "shelving time over")
        return [self.get(alert_id) for alert_id in ids]

    def release_group(self, root_id: str, now: int | None = None) -> list[Alert]:
        """A resolved root lets its open children stand on their own again."""
        now = now or now_ms()
        with self.db.transaction() as conn:
            ids = [row[0] for row in conn.execute(
                "SELECT id FROM alerts WHERE group_id = ? AND resolved_ms IS NULL", (root_id,))]
            for alert_id in ids:
                conn.execute("UPDATE alerts SET group_id = NULL, changed_ms = ? WHERE id = ?", (now, alert_id))
                self._log(conn, alert_id, now, SYSTEM, "ungrouped", f"its root {root_id} was resolved")
        return [self.get(alert_id) for alert_id in ids]

    def resolve_group(self, root: Alert, now: int | None = None) -> list[Alert]:
        """A root resolved with a cause (false alarm, planned work...): its open children are resolved
        with the same cause, each audited, so learning from dismissals sees every alarm of the group.
        A child already resolved keeps its own resolution."""
        now = now or now_ms()
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT id, acknowledged_ms FROM alerts WHERE group_id = ? AND resolved_ms IS NULL",
                                (root.id,)).fetchall()
            for row in rows:
                acked = {} if row["acknowledged_ms"] is not None else {
                    "acknowledged_by": root.resolved_by, "acknowledged_ms": now}
                fields = {"state": "cleared", "resolved_by": root.resolved_by, "resolved_ms": now,
                          "resolution_cause": root.resolution_cause, "changed_ms": now} | acked
                conn.execute(f"UPDATE alerts SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                             [*fields.values(), row["id"]])
                self._log(conn, row["id"], now, root.resolved_by or SYSTEM, "resolved",
                          f"with its root {root.id}", cause=root.resolution_cause, root=root.id)
        return [self.get(row["id"]) for row in rows]

    def hold_source(self, alert: Alert, now: int | None = None) -> list[Alert]:
        """A chattering alarm's earlier alarms from the same source, still open, held back with it."""
        now = now or now_ms()
        with self.db.transaction() as conn:
            ids = [row[0] for row in conn.execute(
                "SELECT id FROM alerts WHERE device = ? AND metric = ? AND rule = ? AND id != ?"
                " AND resolved_ms IS NULL AND chattering = 0", (alert.device, alert.metric, alert.rule, alert.id))]
            for alert_id in ids:
                conn.execute("UPDATE alerts SET chattering = 1, changed_ms = ? WHERE id = ?", (now, alert_id))
                self._log(conn, alert_id, now, SYSTEM, "chattering", f"its source chatters (see {alert.id})")
        return [self.get(alert_id) for alert_id in ids]

    def escalate_due(self, after_ms: int, now: int | None = None) -> list[Alert]:
        """Raise, by one step, every active, unacknowledged, unresolved alert left alone for `after_ms`
        since it arrived or was last escalated. Critical ones stay critical but are escalated
        (a reminder goes out) all the same."""
        now = now or now_ms()
        escalated = []
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM alerts WHERE state = 'active' AND acknowledged_ms IS NULL AND resolved_ms IS NULL"
                " AND shelved_until_ms IS NULL AND suppressed = 0 AND chattering = 0 AND priority != 'advisory'"
                " AND coalesce(escalated_ms, received_ms) <= ?", (now - after_ms,)).fetchall()
            for row in rows:
                alert = _alert(row)
                level = alert.escalation + 1
                severity = effective(alert.source_severity, level)
                conn.execute("UPDATE alerts SET escalation = ?, severity = ?, peak_severity = ?, escalated_ms = ?,"
                             " changed_ms = ? WHERE id = ?",
                             (level, severity, max(alert.peak_severity, severity, key=rank), now, now, alert.id))
                self._log(conn, alert.id, now, SYSTEM, "escalated", f"unacknowledged for {after_ms // 1000} s",
                          severity=severity, level=level)
                escalated.append(alert.id)
        return [self.get(alert_id) for alert_id in escalated]


UNSHELVED = ("shelved_until_ms", "shelved_by", "shelved_reason")
_NOW = object()  # stands for "the time of this transaction" in an update
