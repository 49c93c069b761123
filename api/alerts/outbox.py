"""The notification outbox: one row per notification in the API's SQLite file.

A notification is written `pending` before its first try, with the exact
body that will be sent (and, for a webhook, its signature), so a restart or
a crash loses nothing: the next process picks up every pending row that is
due. A try first *claims* its row (attempts + 1, next_try_ms pushed out by a
lease), so two API processes on one file never send the same row at once and
a row claimed by a process that died becomes due again when the lease ends.
A row ends `sent` or, after the give-up window, `failed`; ended rows are pruned after the
keep window (`prune`), pending ones never.

The table keeps its old name, `notifications`, and gains the outbox's columns
on first open, so an existing deployment keeps its delivery history.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.db import ApiDb, now_ms

PENDING, SENT, FAILED = "pending", "sent", "failed"
STATUSES = (PENDING, SENT, FAILED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    t_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    role TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notifications_alert ON notifications (alert_id, seq);
"""

# Added to a table created before the outbox (ALTER TABLE ADD COLUMN keeps the rows).
OUTBOX_COLUMNS = {
    "body": "TEXT NOT NULL DEFAULT ''",
    "signature": "TEXT NOT NULL DEFAULT ''",
    "next_try_ms": "INTEGER",
    "sent_ms": "INTEGER",
}
DUE_INDEX = "CREATE INDEX IF NOT EXISTS notifications_due ON notifications (status, next_try_ms)"


class Delivery(BaseModel):
    """A notification as the alert detail shows it (the target is masked by the route)."""

    seq: int
    alert_id: str
    t_ms: int
    reason: str
    role: str
    channel: str
    target: str
    status: str
    attempts: int
    error: str
    next_try_ms: int | None = None
    sent_ms: int | None = None


@dataclass
class Claimed:
    """A pending row this process now holds for one try."""

    seq: int
    alert_id: str
    channel: str
    target: str
    body: str
    signature: str
    attempts: int
    t_ms: int


class Outbox:
    def __init__(self, db: ApiDb):
        self.db = db
        db.script(SCHEMA)
        have = {row["name"] for row in db.query("PRAGMA table_info(notifications)")}
        with db.transaction() as conn:
            for column, decl in OUTBOX_COLUMNS.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE notifications ADD COLUMN {column} {decl}")
            conn.execute(DUE_INDEX)

    def add(self, alert_id: str, reason: str, role: str, channel: str, target: str,
            render: Any) -> int:
        """Write one pending notification; `render(seq) -> (body, signature)` makes its body,
        which carries the row's id so a receiver can tell a repeat from a new one."""
        now = now_ms()
        with self.db.transaction() as conn:
            seq = conn.execute(
                "INSERT INTO notifications (alert_id, t_ms, reason, role, channel, target, status, attempts, error,"
                " next_try_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', ?)",
                (alert_id, now, reason, role, channel, target, PENDING, now)).lastrowid
            body, signature = render(seq, now)
            conn.execute("UPDATE notifications SET body = ?, signature = ? WHERE seq = ?", (body, signature, seq))
        return seq

    def claim(self, limit: int, lease_ms: int, skip: set[int]) -> list[Claimed]:
        """Take up to `limit` due pending rows (not in `skip`) for one try each."""
        if limit <= 0:
            return []
        now = now_ms()
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM notifications WHERE status = ? AND next_try_ms <= ? ORDER BY next_try_ms, seq LIMIT ?",
                (PENDING, now, limit + len(skip))).fetchall()
            rows = [row for row in rows if row["seq"] not in skip][:limit]
            for row in rows:
                conn.execute("UPDATE notifications SET attempts = attempts + 1, next_try_ms = ? WHERE seq = ?",
                             (now + lease_ms, row["seq"]))
        return [Claimed(seq=row["seq"], alert_id=row["alert_id"], channel=row["channel"], target=row["target"],
                        body=row["body"], signature=row["signature"], attempts=row["attempts"] + 1,
                        t_ms=row["t_ms"]) for row in rows]

    def sent(self, seq: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE notifications SET status = ?, sent_ms = ?, next_try_ms = NULL, error = ''"
                         " WHERE seq = ? AND status = ?", (SENT, now_ms(), seq, PENDING))

    def retry_at(self, seq: int, next_try_ms: int, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE notifications SET next_try_ms = ?, error = ? WHERE seq = ? AND status = ?",
                         (next_try_ms, error, seq, PENDING))

    def failed(self, seq: int, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE notifications SET status = ?, next_try_ms = NULL, error = ? WHERE seq = ? AND"
                         " status = ?", (FAILED, error, seq, PENDING))

    def release(self, seq: int) -> None:
        """A try cut short by a stop: due again at once, and that try not counted."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE notifications SET next_try_ms = ?, attempts = max(0, attempts - 1)"
                         " WHERE seq = ? AND status = ?", (now_ms(), seq, PENDING))

    def prune(self, older_than_ms: int) -> int:
        """Delete sent and failed rows written before `older_than_ms`; a pending row is owed and stays.
        Returns how many rows went."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM notifications WHERE status != ? AND t_ms < ?",
                                (PENDING, older_than_ms)).rowcount

    def next_due_ms(self) -> int | None:
        rows = self.db.query("SELECT min(next_try_ms) FROM notifications WHERE status = ?", (PENDING,))
        return rows[0][0]

    def counts(self) -> dict[str, Any]:
        """{pending, sent, failed, oldest_pending_s}: what /ready, /metrics and the stats point show."""
        out: dict[str, Any] = dict.fromkeys(STATUSES, 0)
        with self.db.lock:
            for row in self.db.conn.execute("SELECT status, count(*) FROM notifications GROUP BY status"):
                if row[0] in out:
                    out[row[0]] = row[1]
            oldest = self.db.conn.execute("SELECT min(t_ms) FROM notifications WHERE status = ?",
                                          (PENDING,)).fetchone()[0]
        out["oldest_pending_s"] = round(max(0, now_ms() - oldest) / 1000, 1) if oldest is not None else 0.0
        return out

    def deliveries(self, alert_id: str) -> list[Delivery]:
        rows = self.db.query("SELECT * FROM notifications WHERE alert_id = ? ORDER BY seq", (alert_id,))
        return [Delivery(**{k: row[k] for k in Delivery.model_fields}) for row in rows]
