"""The dead-letter store: every rejected message or reading, with its reason.

SQLite in WAL mode so several workers can share one file on one machine.
Nothing is dropped silently: what the contract or InfluxDB refuses lands here.
"""

from __future__ import annotations  # the method `list` shadows the builtin in annotations

import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    device TEXT NOT NULL DEFAULT '',
    topic TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    payload BLOB NOT NULL,
    replayed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason);
"""


class DeadLetters:
    def __init__(self, path: Path | str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)

    def add_many(self, entries: list[tuple[str, str, str, str, bytes]]) -> None:
        """entries: (reason, device, topic, detail, payload)."""
        if not entries:
            return
        now = int(time.time() * 1000)
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO dead_letters (received_ms, reason, device, topic, detail, payload) VALUES (?,?,?,?,?,?)",
                [(now, *entry) for entry in entries])
            self.db.execute("COMMIT")

    def counts(self, pending_only: bool = False) -> dict[str, int]:
        """reason -> entries (with pending_only, those not replayed yet)."""
        where = " WHERE replayed_ms IS NULL" if pending_only else ""
        with self.lock:
            rows = self.db.execute(f"SELECT reason, count(*) FROM dead_letters{where} GROUP BY reason").fetchall()
        return dict(rows)

    def list(self, reason: str | None = None, limit: int = 100, offset: int = 0, device: str | None = None,
             pending_only: bool = False, ids: list[int] | None = None) -> list[dict]:
        """Entries oldest first, as dicts of the table's columns."""
        where: list[str] = []
        args: list = []
        for column, value in (("reason", reason), ("device", device)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if pending_only:
            where.append("replayed_ms IS NULL")
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args += ids
        query = "SELECT * FROM dead_letters" + (f" WHERE {' AND '.join(where)}" if where else "")
        query += " ORDER BY id LIMIT ? OFFSET ?"
        with self.lock:
            cursor = self.db.execute(query, [*args, limit, offset])
            columns = [c[0] for c in cursor.description]
            return [dict(zip(columns, row, strict=False)) for row in cursor.fetchall()]

    def mark_replayed(self, ids: list[int]) -> None:
        if not ids:
            return
        now = int(time.time() * 1000)
        with self.lock:
            self.db.executemany("UPDATE dead_letters SET replayed_ms = ? WHERE id = ?", [(now, i) for i in ids])

    def close(self) -> None:
        self.db.close()
