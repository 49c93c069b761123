"""Learning from dismissals: an operator who resolves an alarm as a false alarm says so (`cause`);
a source (device, metric, rule) dismissed as false `min_false` times within the window gets a
proposal, with its effect measured on the store's own history of that window: how many of its
alarms would have left the board, and how many of those were resolved as real faults (the recall
it would cost). An engineer approves or rejects it; approved, the source's alarms become
advisories (kept and listed, never on the board); an approved change can be undone. Every step is
a row of `alarm_audit` (subject `tuning:<id>`); a decision on a proposal already decided is a
conflict and changes nothing.

What it does not do (yet): propose detector changes (a threshold, a score cut-off, a calendar
exception) measured by `city rescore` over InfluxDB history; see api/README.md.
"""

import json
from typing import Any

from pydantic import BaseModel

from api.alarms.maintenance import log_alarm
from api.db import ApiDb

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
CHANGE = "advisory"  # the source's alarms become advisories


class Effect(BaseModel):
    window_days: float
    alarms: int  # the source's alarms raised in the window
    false_alarms: int  # resolved as false alarms
    real_faults: int  # resolved as real faults: what the change would have hidden
    planned_work: int
    undecided: int  # open, or resolved without a cause
    board_share_percent: float  # of all alarms raised in the window


class Tuning(BaseModel):
    id: int
    device: str
    metric: str
    rule: str
    change: str
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


def _tuning(row: Any) -> Tuning:
    return Tuning(**(dict(row) | {"effect": json.loads(row["effect"])}))


def tuned(conn: Any, device: str, metric: str, rule: str) -> int | None:
    """The approved tuning of this source (its id), or None."""
    row = conn.execute("SELECT id FROM alarm_tuning WHERE state = 'approved' AND device = ? AND metric = ?"
                       " AND rule = ? LIMIT 1", (device, metric, rule)).fetchone()
    return row[0] if row else None


class TuningStore:
    def __init__(self, db: ApiDb):
        self.db = db
        db.script(SCHEMA)

    def propose(self, now: int, window_ms: int, min_false: int = 2) -> list[Tuning]:
        """New proposals for the sources dismissed as false `min_false` times in the window (none twice)."""
        since = now - window_ms
        with self.db.transaction() as conn:
            total = conn.execute("SELECT count(*) FROM alerts WHERE received_ms >= ?", (since,)).fetchone()[0]
            rows = conn.execute(
                "SELECT device, metric, rule, count(*) AS alarms, sum(resolution_cause = 'false_alarm') AS f,"
                " sum(resolution_cause = 'fault') AS r, sum(resolution_cause = 'planned_work') AS p"
                " FROM alerts WHERE received_ms >= ? GROUP BY device, metric, rule HAVING f >= ?"
                " ORDER BY f DESC, device, metric, rule", (since, min_false)).fetchall()
            made = []
            for row in rows:
                if conn.execute("SELECT 1 FROM alarm_tuning WHERE device = ? AND metric = ? AND rule = ?"
                                " AND state IN ('proposed', 'approved')", (row[0], row[1], row[2])).fetchone():
                    continue
                effect = Effect(window_days=round(window_ms / 86_400_000, 2), alarms=row["alarms"],
                                false_alarms=row["f"], real_faults=row["r"], planned_work=row["p"],
                                undecided=row["alarms"] - row["f"] - row["r"] - row["p"],
                                board_share_percent=round(100 * row["alarms"] / total, 1) if total else 0.0)
                cursor = conn.execute(
                    "INSERT INTO alarm_tuning (device, metric, rule, change, state, proposed_ms, effect)"
                    " VALUES (?, ?, ?, ?, 'proposed', ?, ?)", (row[0], row[1], row[2], CHANGE, now,
                                                               effect.model_dump_json()))
                log_alarm(conn, now, "system", "tuning_proposed", f"tuning:{cursor.lastrowid}",
                          f"{row[0]} {row[1] or '-'} {row[2]}: {row['f']} false alarms", **effect.model_dump())
                made.append(cursor.lastrowid)
        return [self.get(tuning_id) for tuning_id in made]

    def decide(self, tuning_id: int, actor: str, action: str, note: str, now: int) -> Tuning:
        """approve or reject a proposal, or undo an approved change."""
        was, becomes = {"approve": ("proposed", "approved"), "reject": ("proposed", "rejected"),
                        "undo": ("approved", "undone")}[action]
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
                      device=row["device"], metric=row["metric"], rule=row["rule"], change=row["change"])
        return self.get(tuning_id)

    def get(self, tuning_id: int) -> Tuning:
        rows = self.db.query("SELECT * FROM alarm_tuning WHERE id = ?", (tuning_id,))
        if not rows:
            raise TuningNotFound(f"no tuning proposal {tuning_id}")
        return _tuning(rows[0])

    def list(self, state: str | None = None) -> list[Tuning]:
        where, args = ("WHERE state = ?", [state]) if state else ("", [])
        return [_tuning(r) for r in self.db.query(f"SELECT * FROM alarm_tuning {where} ORDER BY id DESC", args)]
