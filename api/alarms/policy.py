"""What an alarm is when it opens: its priority, whether it is suppressed (its device is under
maintenance), chattering, or a child of a group. Runs inside the store's transaction that opens
or reopens the alarm (AlertStore.classify), so an alarm is never seen half-classified.

Grouping (EEMUA 191 "suppression by design"): an alarm joins
- a *consequence root*: an open root alarm (ROOT_RULES, e.g. a power district's voltage out of
  range or lost) in the same district within the flood window, when its own rule is one that a lost
  supply causes (CONSEQUENCE_RULES: devices falling silent, pressure and flow off);
- else the *first* alarm of the same district and utility opened within the group window.
Children are kept (audited, listed under their root) but are not alarms of their own on the
board, in the flood count or in the rate KPIs.

Chattering: a source (device, metric, rule) raising `chatter_count` times within the chatter
window is held back (not on the board, no notification) and listed for engineers.
"""

from typing import Any

from api.alarms import maintenance, tuning
from api.alarms.maintenance import active_maintenance
from api.alarms.priority import ADVISORY, PriorityTable
from telemetry_shared.settings import Settings

# Alarms that stand for a lost supply in a whole district, and what follows from one.
ROOT_RULES = ("supply_lost", "voltage_out_of_range", "district_outage")
CONSEQUENCE_RULES = ("silent", "pressure_low", "unusual_value", "level_shift", "off_daily_profile")

Note = tuple[str, str, dict[str, Any]]  # (audit action, note, detail)


class AlarmPolicy:
    schema = maintenance.SCHEMA + tuning.SCHEMA  # the store creates the tables the policy reads

    def __init__(self, settings: Settings):
        self.priority = PriorityTable(settings.api_alarm_priorities)
        self.chatter_count = settings.api_alarm_chatter_count
        self.chatter_window_ms = int(settings.api_alarm_chatter_window_s * 1000)
        self.group_window_ms = int(settings.api_alarm_group_window_s * 1000)
        self.root_window_ms = int(settings.api_alarm_flood_window_s * 1000)

    def __call__(self, conn: Any, m: dict[str, Any], now: int) -> tuple[dict[str, Any], list[Note]]:
        fields: dict[str, Any] = {"priority": self.priority(m["kind"], m["rule"], m["metric"])}
        notes: list[Note] = []
        tuned = tuning.tuned(conn, m["device"], m["metric"], m["rule"])
        if tuned is not None and fields["priority"] != ADVISORY:
            fields["priority"] = ADVISORY
            notes.append(("tuned", f"an advisory since tuning {tuned} was approved (its false alarms)",
                          {"tuning": tuned}))
        maintenance = active_maintenance(conn, m["device"], now)
        if maintenance is not None:
            fields["suppressed"] = 1
            notes.append(("suppressed", f"{m['device']} is under maintenance: {maintenance['note']}"[:500],
                          {"maintenance": maintenance["id"], "until_ms": maintenance["until_ms"]}))
        raises = self.raises(conn, m, now)
        if raises >= self.chatter_count:
            fields["chattering"] = 1
            notes.append(("chattering", f"raised {raises} times within {self.chatter_window_ms // 1000} s",
                          {"raises": raises}))
        if "suppressed" not in fields and "chattering" not in fields and fields["priority"] != ADVISORY:
            root = self.root(conn, m, now)
            if root is not None:
                fields["group_id"] = root
                notes.append(("grouped", f"under {root}", {"root": root}))
        return fields, notes

    def raises(self, conn: Any, m: dict[str, Any], now: int) -> int:
        """How often this source raised within the chatter window, this time included (its audit row
        is written after this): its alarms opened or reopened then, and their re-activations."""
        since = now - self.chatter_window_ms
        return 1 + int(conn.execute(
            "SELECT count(*) FROM alert_audit WHERE t_ms >= ? AND action IN ('opened', 'reopened', 'reactivated')"
            " AND alert_id IN (SELECT id FROM alerts WHERE device = ? AND metric = ? AND rule = ?)",
            (since, m["device"], m["metric"], m["rule"])).fetchone()[0])

    def root(self, conn: Any, m: dict[str, Any], now: int) -> str | None:
        """The open alarm this one is grouped under, or None to stand on its own."""
        if m["rule"] in CONSEQUENCE_RULES:
            row = conn.execute(
                f"SELECT id FROM alerts WHERE district = ? AND id != ? AND resolved_ms IS NULL AND state = 'active'"
                f" AND group_id IS NULL AND suppressed = 0 AND chattering = 0 AND received_ms >= ?"
                f" AND rule IN ({', '.join('?' * len(ROOT_RULES))}) ORDER BY received_ms, id LIMIT 1",
                (m["district"], m["id"], now - self.root_window_ms, *ROOT_RULES)).fetchone()
            if row is not None:
                return row[0]
        if self.group_window_ms <= 0:
            return None
        row = conn.execute(
            "SELECT id FROM alerts WHERE district = ? AND kind = ? AND id != ? AND resolved_ms IS NULL"
            " AND group_id IS NULL AND suppressed = 0 AND chattering = 0 AND shelved_until_ms IS NULL"
            " AND received_ms >= ? ORDER BY received_ms, id LIMIT 1",
            (m["district"], m["kind"], m["id"], now - self.group_window_ms)).fetchone()
        return row[0] if row is not None else None
