"""Complaints linked to incidents.

- Only incidents that say the service is in trouble now link automatically: a device's own trouble
  (silent, clock off, stuck sensor, rejected readings, a meter departing from its peers) says nothing
  about water at the taps or power in the street, and a night-flow rise is background leakage (the
  kind nobody sees) judged once a night and held until the next, so its time says nothing about
  when a citizen saw something. On the simulated city these took 15 of 18 false links
  (tests/api/linking_replay.py); operators can still link a complaint to any of them by hand.
- A new complaint of a utility's category is linked to an open incident of that utility in its
  district: one not resolved, started at most `window` after the complaint, and active or cleared at
  most `window` before it (a sensor incident first, then a citizen-reported one; the most recent).
  An incident that started more than `window` before the complaint takes it only once citizens have
  confirmed it: `cluster_count` complaints linked, as many as raise a citizen-reported alert on their
  own. People complain when trouble starts, so a long incident few complained about in its first
  hours (a drifting sensor: the same `drift` rule also finds leaks) is not what a complaint hours
  later is about, and one chance complaint does not make it collect every later one.
- Incidents first seen in a quality metric (turbidity, chlorine, power factor) are not linked: the
  categories are about supply.
- An incident that opens links the open, unlinked complaints of its utility and district filed in the
  `window` before it started, and takes over the complaints of an open citizen-reported alert of its
  utility and district (the sensors now see what the citizens reported).
- Unmatched complaints cluster: `cluster_count` or more of one category in one district within
  `cluster_window` raise a citizen-reported alert (rule `citizen_reported`) on the board, linked to them.
- Operators link and unlink by hand; every link and unlink is a row in the alert's audit trail.
- Resolving an incident answers its open complaints with the operator's public note.
Each change tells the board (the alert's `citizen_reports` count) through the alert service.
"""

import secrets
from typing import Any

from api.alerts.service import AlertService
from api.alerts.store import Alert, AlertNotFound
from api.citizens.complaints import ComplaintStore
from api.db import now_ms

CITIZEN_RULE = "citizen_reported"
LINKER = "citizen-linker"
LINKED_TO = "SELECT alert_id FROM complaint_links WHERE complaint_id = ?"
UNLINKED = "id NOT IN (SELECT complaint_id FROM complaint_links)"
# rules (analytics' and the API's own) never linked automatically: a device's health, and the nightly indicator
UNLINKABLE_RULES = ("silent", "clock_offset", "stuck_sensor", "sensor_fault", "peer_departure", "night_flow_rise")
# metrics of quality nobody sees at the tap or the lamp: the categories are about supply (no water, low pressure,
# a leak, flooding, power out, a street or traffic light), so an incident first seen in these is not linked
NOT_SUPPLY_METRICS = ("turbidity_ntu", "chlorine_mgl", "power_factor")
LINKABLE = (f"rule NOT IN ({', '.join(repr(r) for r in UNLINKABLE_RULES)})"
            f" AND metric NOT IN ({', '.join(repr(m) for m in NOT_SUPPLY_METRICS)})")


class Linker:
    def __init__(self, alerts: AlertService, complaints: ComplaintStore, window_s: float, cluster_count: int,
                 cluster_window_s: float):
        self.alerts = alerts
        self.complaints = complaints
        self.db = complaints.db
        self.window_ms = int(window_s * 1000)
        self.cluster_count = cluster_count
        self.cluster_window_ms = int(cluster_window_s * 1000)
        alerts.listeners.append(self.on_alert)

    # ------------------------------------------------------------ links

    def _link(self, conn: Any, complaint_id: str, alert_id: str, actor: str, now: int) -> None:
        conn.execute("INSERT OR REPLACE INTO complaint_links VALUES (?, ?, ?, ?)", (complaint_id, alert_id, actor, now))
        self.alerts.store._log(conn, alert_id, now, actor, "complaint_linked", "", complaint=complaint_id)

    def _told(self, alert_ids: set[str]) -> None:
        for alert_id in alert_ids:
            self.alerts.changed(self.alerts.store.get(alert_id), ["citizen_reports"])

    def link(self, complaint_id: str, alert_id: str, actor: str) -> Alert:
        """By hand (an operator): moves the complaint from any other incident, audited on both."""
        self.complaints.get(complaint_id)
        self.alerts.store.get(alert_id)
        now = now_ms()
        with self.db.transaction() as conn:
            old = conn.execute(LINKED_TO, (complaint_id,)).fetchone()
            if old and old[0] != alert_id:
                self.alerts.store._log(conn, old[0], now, actor, "complaint_unlinked", "", complaint=complaint_id)
            self._link(conn, complaint_id, alert_id, actor, now)
        self._told({alert_id} | ({old[0]} if old else set()))
        return self.alerts.store.get(alert_id)

    def unlink(self, complaint_id: str, actor: str) -> str:
        """By hand; returns the incident it was linked to (LookupError when it was not linked)."""
        now = now_ms()
        with self.db.transaction() as conn:
            old = conn.execute(LINKED_TO, (complaint_id,)).fetchone()
            if old is None:
                raise LookupError(f"{complaint_id} is linked to no incident")
            conn.execute("DELETE FROM complaint_links WHERE complaint_id = ?", (complaint_id,))
            self.alerts.store._log(conn, old[0], now, actor, "complaint_unlinked", "", complaint=complaint_id)
        self._told({old[0]})
        return old[0]

    # ------------------------------------------------------------ automatic

    def on_complaint(self, complaint_id: str) -> str | None:
        """Link a new complaint to its incident, or cluster it; the incident's id or None."""
        c = self.complaints.get(complaint_id)
        if c.kind is None:
            return None
        t = c.requested_ms
        rows = self.db.query(
            "SELECT id FROM alerts WHERE resolved_ms IS NULL AND kind = ? AND district = ? AND started_ms <= ?"
            f" AND (state = 'active' OR updated_ms >= ?) AND {LINKABLE}"
            " AND (started_ms >= ? OR id IN (SELECT alert_id FROM complaint_links GROUP BY alert_id"
            " HAVING count(*) >= ?)) ORDER BY rule = ?, started_ms DESC LIMIT 1",
            (c.kind, c.district, t + self.window_ms, t - self.window_ms, t - self.window_ms, self.cluster_count,
             CITIZEN_RULE))
        if rows:
            with self.db.transaction() as conn:
                self._link(conn, c.id, rows[0][0], LINKER, now_ms())
            self._told({rows[0][0]})
            return rows[0][0]
        return self._cluster(c.service_code, c.kind, c.district, t)

    def _cluster(self, service_code: str, kind: str, district: str, t: int) -> str | None:
        rows = self.db.query(
            "SELECT id, requested_ms FROM complaints WHERE service_code = ? AND district = ? AND status = 'open'"
            f" AND moderation != 'rejected' AND requested_ms > ? AND {UNLINKED}"
            " ORDER BY requested_ms", (service_code, district, t - self.cluster_window_ms))
        if len(rows) < self.cluster_count:
            return None
        alert_id = "cit-" + secrets.token_hex(6)
        now = now_ms()
        self.alerts.apply({
            "id": alert_id, "device": "citizens", "kind": kind, "district": district, "metric": "citizen_reports",
            "rule": CITIZEN_RULE, "state": "active", "severity": "warning", "score": 0.0, "observed": None,
            "expected": None, "started_ms": rows[0][1], "updated_ms": now,
            "explanation": f"{len(rows)} citizen reports of {service_code} in {district} within "
                           f"{self.cluster_window_ms // 60_000} min"})
        with self.db.transaction() as conn:
            for complaint_id, _ in rows:
                self._link(conn, complaint_id, alert_id, LINKER, now)
        self._told({alert_id})
        return alert_id

    def on_alert(self, alert: Alert, changes: list[str]) -> None:
        """A sensor incident opened: link the complaints that were waiting for it."""
        if alert.rule in (CITIZEN_RULE, *UNLINKABLE_RULES) or alert.metric in NOT_SUPPLY_METRICS \
                or not ({"opened", "reopened"} & set(changes)):
            return
        now = now_ms()
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id FROM complaints WHERE kind = ? AND district = ? AND status = 'open' AND requested_ms >= ?"
                f" AND {UNLINKED}", (alert.kind, alert.district, alert.started_ms - self.window_ms)).fetchall()
            for row in rows:
                self._link(conn, row[0], alert.id, LINKER, now)
            # the sensors now see what citizens reported: their open citizen-reported alert's complaints move over
            moved = conn.execute(
                "SELECT l.complaint_id, l.alert_id FROM complaint_links l JOIN alerts a ON a.id = l.alert_id"
                " WHERE a.rule = ? AND a.kind = ? AND a.district = ? AND a.resolved_ms IS NULL",
                (CITIZEN_RULE, alert.kind, alert.district)).fetchall()
            for complaint_id, old in moved:
                self.alerts.store._log(conn, old, now, LINKER, "complaint_unlinked", "", complaint=complaint_id,
                                       moved_to=alert.id)
                self._link(conn, complaint_id, alert.id, LINKER, now)
        if rows or moved:
            self._told({alert.id} | {old for _, old in moved})

    def answer_resolved(self, alert_id: str, public_note: str) -> int:
        """The incident was resolved: its open complaints are closed with the public note."""
        try:
            self.alerts.store.get(alert_id)
        except AlertNotFound:
            return 0
        now = now_ms()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE complaints SET status = 'closed', status_notes = ?, updated_ms = ?,"
                " answered_ms = COALESCE(answered_ms, ?) WHERE status = 'open'"
                " AND id IN (SELECT complaint_id FROM complaint_links WHERE alert_id = ?)",
                (public_note, now, now, alert_id))
        return cursor.rowcount
