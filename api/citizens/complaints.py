"""Citizens' complaints (pengaduan) as Open311 GeoReport v2 service requests, in the API's SQLite file.

A request's id is also its tracking code (`PGD-` and 8 letters and digits without look-alikes: 32^8,
unguessable enough to hand out, and nothing private is behind it). Contact details are sealed
(protect.ContactVault); the citizen's description and photo are public only once a moderator approved
them; the city's answer (`status_notes`) is written by staff and public at once. Limits: per client
address per hour and per contact per day (both counted on keyed hashes); the same text of the same
category in the same district from the same address or contact within a day is a duplicate: the
earlier request's id is returned, nothing new is stored.
"""

import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.alerts.store import LINKS_SCHEMA
from api.citizens.protect import ContactUnreadable, ContactVault, normal_contact
from api.db import ApiDb, now_ms

# category -> the utility (alert kind) whose incidents it can be linked to; None: no utility
CATEGORIES: dict[str, str | None] = {
    "no_water": "water", "low_pressure": "water", "leak": "water", "power_out": "power",
    "street_light": "power", "traffic_light": "traffic", "flooding": "water", "other": None}
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_PATTERN = r"^PGD-[2-9A-HJ-NP-Z]{8}$"
MAX_DESCRIPTION = 2000
DUPLICATE_WINDOW_MS = 24 * 3600_000
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS complaints (
    id TEXT PRIMARY KEY,
    service_code TEXT NOT NULL,
    kind TEXT,
    district TEXT NOT NULL,
    lat REAL,
    lon REAL,
    address_string TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    moderation TEXT NOT NULL DEFAULT 'pending',
    moderated_by TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    status_notes TEXT NOT NULL DEFAULT '',
    requested_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    contact_sealed BLOB,
    contact_hash TEXT,
    client_hash TEXT NOT NULL,
    photo BLOB,
    answered_ms INTEGER
);
CREATE INDEX IF NOT EXISTS complaints_client ON complaints (client_hash, requested_ms);
CREATE INDEX IF NOT EXISTS complaints_contact ON complaints (contact_hash, requested_ms);
CREATE INDEX IF NOT EXISTS complaints_place ON complaints (kind, district, requested_ms);
"""


class ComplaintRefused(ValueError):
    """Refused for the citizen: `code` picks the catalogue text, `status` the HTTP answer."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class NewComplaint:
    service_code: str
    district: str
    description: str
    lat: float | None = None
    lon: float | None = None
    address_string: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    photo: bytes | None = None


class Complaint(BaseModel):
    """As staff see it (contact opened only on the detail route)."""

    id: str
    service_code: str
    kind: str | None
    district: str
    lat: float | None
    lon: float | None
    address_string: str
    description: str
    moderation: str
    moderated_by: str | None
    status: str
    status_notes: str
    requested_ms: int
    updated_ms: int
    has_photo: bool
    has_contact: bool
    alert_id: str | None = None


def clean_text(text: str, limit: int) -> str:
    """Printable text: control characters (but newlines) dropped, NFC, trimmed and capped."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if c == "\n" or unicodedata.category(c)[0] != "C")
    return text.strip()[:limit]


def fingerprint(service_code: str, district: str, description: str) -> str:
    words = re.sub(r"\W+", " ", description.lower()).strip()
    return f"{service_code}|{district}|{words}"


def new_code() -> str:
    return "PGD-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


COLUMNS = ("id, service_code, kind, district, lat, lon, address_string, description, moderation, moderated_by,"
           " status, status_notes, requested_ms, updated_ms, photo IS NOT NULL AS has_photo,"
           " contact_sealed IS NOT NULL AS has_contact,"
           " (SELECT alert_id FROM complaint_links l WHERE l.complaint_id = complaints.id) AS alert_id")


class ComplaintStore:
    def __init__(self, db: ApiDb, vault: ContactVault, per_address_per_hour: int, per_contact_per_day: int):
        self.db = db
        self.vault = vault
        self.per_address_per_hour = per_address_per_hour
        self.per_contact_per_day = per_contact_per_day
        db.script(LINKS_SCHEMA + SCHEMA)
        columns = {row[1] for row in db.query("PRAGMA table_info(complaints)")}
        if "answered_ms" not in columns:  # a database made before the open data counted answers
            db.script("ALTER TABLE complaints ADD COLUMN answered_ms INTEGER")

    def create(self, new: NewComplaint, client: str, t_ms: int | None = None) -> tuple[Complaint, bool]:
        """Store a complaint; (complaint, False) when it duplicates an earlier one (returned instead).
        t_ms: when it was filed (replaying a simulated day); default now."""
        now = t_ms or now_ms()
        client_hash = self.vault.digest("ip|" + client)
        contact = {k: v for k, v in (("first_name", new.first_name), ("last_name", new.last_name),
                                     ("email", new.email), ("phone", new.phone)) if v}
        contact_hash = self.vault.digest("contact|" + normal_contact(new.email, new.phone)) \
            if new.email or new.phone else None
        print_ = fingerprint(new.service_code, new.district, new.description)
        with self.db.transaction() as conn:
            same = conn.execute(
                "SELECT id FROM complaints WHERE fingerprint = ? AND requested_ms > ? AND (client_hash = ?"
                " OR contact_hash = ?) ORDER BY requested_ms LIMIT 1",
                (print_, now - DUPLICATE_WINDOW_MS, client_hash, contact_hash or "-")).fetchone()
            if same:
                duplicate_of = same[0]
            else:
                duplicate_of = None
                self._check_limits(conn, now, client_hash, contact_hash)
                code = new_code()
                sealed = self.vault.seal(contact, code) if contact else None
                conn.execute(
                    "INSERT INTO complaints (id, service_code, kind, district, lat, lon, address_string, description,"
                    " fingerprint, requested_ms, updated_ms, contact_sealed, contact_hash, client_hash, photo)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (code, new.service_code, CATEGORIES[new.service_code], new.district, new.lat, new.lon,
                     new.address_string, new.description, print_, now, now, sealed, contact_hash, client_hash,
                     new.photo))
        return self.get(duplicate_of or code), duplicate_of is None

    def _check_limits(self, conn: Any, now: int, client_hash: str, contact_hash: str | None) -> None:
        recent = conn.execute("SELECT count(*) FROM complaints WHERE client_hash = ? AND requested_ms > ?",
                              (client_hash, now - 3600_000)).fetchone()[0]
        if recent >= self.per_address_per_hour:
            raise ComplaintRefused(429, "too_many_address", "too many reports from this address; try in an hour")
        if contact_hash:
            recent = conn.execute("SELECT count(*) FROM complaints WHERE contact_hash = ? AND requested_ms > ?",
                                  (contact_hash, now - 86_400_000)).fetchone()[0]
            if recent >= self.per_contact_per_day:
                raise ComplaintRefused(429, "too_many_contact", "too many reports from this contact today")

    def get(self, complaint_id: str) -> Complaint:
        rows = self.db.query(f"SELECT {COLUMNS} FROM complaints WHERE id = ?", (complaint_id,))
        if not rows:
            raise LookupError(f"no service request {complaint_id[:20]!r}")
        return Complaint(**dict(rows[0]))

    def find(self, ids: list[str] | None = None, service_codes: list[str] | None = None,
             statuses: list[str] | None = None, start_ms: int | None = None, end_ms: int | None = None,
             moderation: str | None = None, alert_id: str | None = None, limit: int = 1000,
             offset: int = 0) -> tuple[list[Complaint], int]:
        where, args = [], []
        for column, values in (("id", ids), ("service_code", service_codes), ("status", statuses)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args += values
        if start_ms is not None:
            where.append("requested_ms >= ?")
            args.append(start_ms)
        if end_ms is not None:
            where.append("requested_ms <= ?")
            args.append(end_ms)
        if moderation:
            where.append("moderation = ?")
            args.append(moderation)
        if alert_id:
            where.append("id IN (SELECT complaint_id FROM complaint_links WHERE alert_id = ?)")
            args.append(alert_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.db.lock:
            total = self.db.conn.execute(f"SELECT count(*) FROM complaints {clause}", args).fetchone()[0]
            rows = self.db.conn.execute(f"SELECT {COLUMNS} FROM complaints {clause} ORDER BY requested_ms DESC, id"
                                        " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [Complaint(**dict(r)) for r in rows], total

    def contact(self, complaint_id: str) -> dict[str, str]:
        """The contact opened for staff; {} when none was given, it expired, or no key opens it (logged)."""
        rows = self.db.query("SELECT contact_sealed FROM complaints WHERE id = ?", (complaint_id,))
        if not rows:
            raise LookupError(f"no service request {complaint_id[:20]!r}")
        try:
            return self.vault.open(rows[0][0], complaint_id) if rows[0][0] else {}
        except ContactUnreadable as exc:  # a former key left out of CITY_API_CITIZEN_CONTACT_OLD_KEYS
            log.warning("%s", exc)
            return {}

    def expire(self, now: int, photo_keep_ms: int, contact_keep_ms: int) -> tuple[int, int]:
        """Retention: photos filed longer than photo_keep_ms ago, and the contacts (sealed and hashed) of
        complaints closed longer than contact_keep_ms ago, are deleted; the rest of the complaint stays.
        SQLite's secure_delete overwrites what is deleted, so it does not linger in free pages.
        Returns (photos, contacts) deleted."""
        with self.db.lock:
            self.db.conn.execute("PRAGMA secure_delete = ON")
        with self.db.transaction() as conn:
            photos = conn.execute("UPDATE complaints SET photo = NULL WHERE photo IS NOT NULL AND requested_ms < ?",
                                  (now - photo_keep_ms,)).rowcount
            contacts = conn.execute(
                "UPDATE complaints SET contact_sealed = NULL, contact_hash = NULL WHERE status = 'closed'"
                " AND (contact_sealed IS NOT NULL OR contact_hash IS NOT NULL) AND updated_ms < ?",
                (now - contact_keep_ms,)).rowcount
        if photos or contacts:
            with self.db.lock:  # the WAL holds the old pages until a checkpoint copies the overwritten ones back
                self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return photos, contacts

    def rekey(self, batch: int = 500) -> tuple[int, int, int]:
        """Every sealed contact moved to the vault's current key, its hash made again under it.
        Returns (resealed, already current, unreadable: no key opens it; left as it is)."""
        resealed = current = unreadable = 0
        last = ""
        while True:
            rows = self.db.query("SELECT id, contact_sealed FROM complaints WHERE contact_sealed IS NOT NULL"
                                 " AND id > ? ORDER BY id LIMIT ?", (last, batch))
            if not rows:
                return resealed, current, unreadable
            changed = []
            for complaint_id, sealed in rows:
                try:
                    moved = self.vault.reseal(sealed, complaint_id)
                except ContactUnreadable:
                    unreadable += 1
                    continue
                if moved is None:
                    current += 1
                    continue
                contact, new_seal = moved
                email, phone = contact.get("email", ""), contact.get("phone", "")
                digest = self.vault.digest("contact|" + normal_contact(email, phone)) if email or phone else None
                changed.append((new_seal, digest, complaint_id, sealed))
            with self.db.transaction() as conn:  # only if nobody changed it meanwhile (an expiry)
                resealed += sum(conn.execute("UPDATE complaints SET contact_sealed = ?, contact_hash = ? WHERE id = ?"
                                             " AND contact_sealed = ?", row).rowcount for row in changed)
            last = rows[-1][0]

    def photo(self, complaint_id: str, public: bool) -> bytes | None:
        moderated = " AND moderation = 'approved'" if public else ""
        rows = self.db.query(f"SELECT photo FROM complaints WHERE id = ?{moderated}", (complaint_id,))
        return rows[0][0] if rows else None

    def moderate(self, complaint_id: str, approve: bool, by: str) -> Complaint:
        self.get(complaint_id)
        with self.db.transaction() as conn:
            conn.execute("UPDATE complaints SET moderation = ?, moderated_by = ?, updated_ms = ? WHERE id = ?",
                         ("approved" if approve else "rejected", by, now_ms(), complaint_id))
        return self.get(complaint_id)

    def answer(self, complaint_id: str, status: str, notes: str) -> Complaint:
        self.get(complaint_id)
        with self.db.transaction() as conn:
            # answered_ms: the first public answer (how fast the city answers, in the open data)
            now = now_ms()
            conn.execute("UPDATE complaints SET status = ?, status_notes = ?, updated_ms = ?,"
                         " answered_ms = COALESCE(answered_ms, CASE WHEN ? != '' OR ? = 'closed' THEN ? END)"
                         " WHERE id = ?", (status, notes, now, notes, status, now, complaint_id))
        return self.get(complaint_id)
