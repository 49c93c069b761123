"""Alarm-system performance (EEMUA 191 section 6 and appendix 5, ISA-18.2 section 16), read
from the alert store and its audit trail.

An *annunciated* alarm is a raise (an alarm opened or reopened) that reached the board as an
alarm of its own: not suppressed by maintenance, not held back as chattering, not grouped under
a root. The policy writes those reasons into the audit trail at the same moment as the raise,
so the KPIs see each raise as it was, not as the alarm stands now.

- alarms per operator-hour: annunciated raises / hours / operator positions (EEMUA 191: about 6
  is manageable, over 12 is not);
- per 10 minutes: the mean and the worst 10-minute period; a period with more than the flood
  count (10) is in flood, and the share of such periods is the time in flood (EEMUA: < 1 %);
- top sources: (device, rule) by raises, all raises counted (held back ones are noise too);
- chattering: sources held back as chattering; stale: alarms standing longer than 24 h now;
- priority mix of annunciated raises (target about 80/15/5 low/medium/high);
- time to acknowledge, from arrival, of the annunciated alarms that arrived in the range (one held back
  was never on the board to acknowledge: resolving it acknowledges it, which would count its time to
  resolve as a late acknowledgement); time to resolve of every alarm (not advisories) that arrived in it.
"""

import math
import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel

from api.alarms.priority import PRIORITIES
from api.db import ApiDb

PERIOD_MS = 600_000  # the 10-minute period of EEMUA 191
HELD_BACK = ("suppressed", "chattering", "grouped")

# A raise, annunciated or not: its alert and time.
RAISES_SQL = "SELECT a.alert_id, a.t_ms FROM alert_audit a WHERE a.action IN ('opened', 'reopened') " \
             "AND a.t_ms >= ? AND a.t_ms < ?"
ANNUNCIATED_SQL = (RAISES_SQL + " AND (SELECT priority FROM alerts WHERE id = a.alert_id) != 'advisory'"
                   " AND NOT EXISTS (SELECT 1 FROM alert_audit h WHERE h.alert_id = a.alert_id"
                   " AND h.t_ms = a.t_ms AND h.action IN ('suppressed', 'chattering', 'grouped'))")


class Source(BaseModel):
    device: str
    rule: str
    raises: int


class Durations(BaseModel):
    count: int
    median_s: float | None
    p90_s: float | None


class AlarmKpis(BaseModel):
    since_ms: int
    until_ms: int
    hours: float
    operator_positions: int
    raised: int  # every raise, held back or not
    advisories: int  # raises of advisories (not alarms: never on the board)
    annunciated: int
    per_operator_hour: float
    per_10min_mean: float
    per_10min_max: int
    periods: int
    periods_in_flood: int
    flood_percent: float
    flood_count: int
    top_sources: list[Source]
    chattering_sources: int
    chattering_alarms: int
    stale_now: int
    shelved_now: int
    suppressed_now: int
    false_alarms: int  # resolved as false alarms (of alarms that arrived in the range)
    planned_work: int  # resolved as expected: planned work
    priority_mix: dict[str, int]
    priority_percent: dict[str, float]
    time_to_ack: Durations
    time_to_resolve: Durations


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def durations(values_ms: list[int]) -> Durations:
    seconds = [v / 1000 for v in values_ms]
    median = statistics.median(seconds) if seconds else None
    p90 = percentile(seconds, 0.9)
    return Durations(count=len(seconds), median_s=None if median is None else round(median, 1),
                     p90_s=None if p90 is None else round(p90, 1))


def kpis(db: ApiDb, since_ms: int, until_ms: int, now: int, positions: int = 1, flood_count: int = 10,
         stale_after_ms: int = 86_400_000) -> AlarmKpis:
    """The KPIs over [since_ms, until_ms) (the caller checks since < until)."""
    args = (since_ms, until_ms)
    with db.lock:
        raised = db.conn.execute(f"SELECT count(*) FROM ({RAISES_SQL})", args).fetchone()[0]
        advisories = db.conn.execute(f"SELECT count(*) FROM ({RAISES_SQL}) r JOIN alerts al ON al.id = r.alert_id"
                                     " WHERE al.priority = 'advisory'", args).fetchone()[0]
        annunciated = db.conn.execute(
            f"SELECT r.t_ms, al.priority FROM ({ANNUNCIATED_SQL}) r JOIN alerts al ON al.id = r.alert_id",
            args).fetchall()
        sources = db.conn.execute(
            f"SELECT al.device, al.rule, count(*) AS n FROM ({RAISES_SQL}) r JOIN alerts al ON al.id = r.alert_id"
            " GROUP BY al.device, al.rule ORDER BY n DESC, al.device, al.rule LIMIT 10", args).fetchall()
        chatter = db.conn.execute(
            "SELECT count(DISTINCT al.id), count(DISTINCT al.device || '|' || al.metric || '|' || al.rule)"
            " FROM alert_audit a JOIN alerts al ON al.id = a.alert_id WHERE a.action = 'chattering'"
            " AND a.t_ms >= ? AND a.t_ms < ?", args).fetchone()
        now_counts = db.conn.execute(
            "SELECT sum(state = 'active' AND started_ms <= ?), sum(shelved_until_ms IS NOT NULL), sum(suppressed)"
            " FROM alerts WHERE resolved_ms IS NULL", (now - stale_after_ms,)).fetchone()
        acks = [r[0] for r in db.conn.execute(
            "SELECT acknowledged_ms - received_ms FROM alerts WHERE received_ms >= ? AND received_ms < ?"
            f" AND acknowledged_ms IS NOT NULL AND id IN (SELECT alert_id FROM ({ANNUNCIATED_SQL}))", args + args)]
        resolves = [r[0] for r in db.conn.execute(
            "SELECT resolved_ms - received_ms FROM alerts WHERE received_ms >= ? AND received_ms < ?"
            " AND resolved_ms IS NOT NULL AND priority != 'advisory'", args)]
        causes = dict(db.conn.execute(
            "SELECT resolution_cause, count(*) FROM alerts WHERE received_ms >= ? AND received_ms < ?"
            " AND resolution_cause IS NOT NULL GROUP BY resolution_cause", args).fetchall())
    periods = max(1, math.ceil((until_ms - since_ms) / PERIOD_MS))
    per_period: Counter[int] = Counter()  # only the periods with alarms: a range of years costs nothing more
    mix = dict.fromkeys(reversed(PRIORITIES), 0)
    for t_ms, priority in annunciated:
        per_period[min(periods - 1, (t_ms - since_ms) // PERIOD_MS)] += 1
        mix[priority] = mix.get(priority, 0) + 1
    hours = (until_ms - since_ms) / 3_600_000
    flooded = sum(1 for n in per_period.values() if n > flood_count)
    total = len(annunciated)
    return AlarmKpis(
        since_ms=since_ms, until_ms=until_ms, hours=round(hours, 3), operator_positions=positions, raised=raised,
        advisories=advisories,
        annunciated=total, per_operator_hour=round(total / hours / positions, 2) if hours else 0.0,
        per_10min_mean=round(total / periods, 2), per_10min_max=max(per_period.values(), default=0), periods=periods,
        periods_in_flood=flooded, flood_percent=round(100 * flooded / periods, 2), flood_count=flood_count,
        top_sources=[Source(device=r[0], rule=r[1], raises=r[2]) for r in sources],
        chattering_alarms=chatter[0] or 0, chattering_sources=chatter[1] or 0,
        stale_now=now_counts[0] or 0, shelved_now=now_counts[1] or 0, suppressed_now=now_counts[2] or 0,
        false_alarms=causes.get("false_alarm", 0), planned_work=causes.get("planned_work", 0),
        priority_mix=mix, priority_percent={k: round(100 * v / total, 1) if total else 0.0 for k, v in mix.items()},
        time_to_ack=durations(acks), time_to_resolve=durations(resolves))


def recent_annunciated(db: ApiDb, window_ms: int, now: int) -> int:
    """Annunciated raises within the last window (the flood check)."""
    return db.query(f"SELECT count(*) FROM ({ANNUNCIATED_SQL})", (now - window_ms, now + 1))[0][0]


def influx_line(k: AlarmKpis, flood_now: bool) -> str:
    """The KPIs of the last hour as one `alarm_kpis` point (Grafana: the Alarm system panels)."""
    fields: dict[str, Any] = {
        "per_operator_hour": float(k.per_operator_hour), "per_10min_max": f"{k.per_10min_max}i",
        "flood_percent": float(k.flood_percent), "flood": f"{int(flood_now)}i", "annunciated": f"{k.annunciated}i",
        "raised": f"{k.raised}i", "advisories": f"{k.advisories}i",
        "chattering": f"{k.chattering_sources}i", "stale": f"{k.stale_now}i",
        "shelved": f"{k.shelved_now}i", "suppressed": f"{k.suppressed_now}i",
    }
    for priority, n in k.priority_mix.items():
        fields[f"priority_{priority}"] = f"{n}i"
    for name, d in (("ack", k.time_to_ack), ("resolve", k.time_to_resolve)):
        if d.median_s is not None:
            fields[f"{name}_median_s"] = float(d.median_s)
            fields[f"{name}_p90_s"] = float(d.p90_s)
    body = ",".join(f"{key}={value}" for key, value in fields.items())
    return f"alarm_kpis {body} {k.until_ms}"
