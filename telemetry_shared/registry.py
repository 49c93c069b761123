"""The device registry: SQLite in WAL mode, a portable schema.

A device's kind, district and position live here, never in its payload.
`version()` changes whenever a device is added, changed or removed, so the
ingest workers can cache lookups and drop the cache when it moves.
"""

import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from edge import contract
from telemetry_shared import network as net
from telemetry_shared.city import CityProfile, check_devices
from telemetry_shared.settings import get_settings

SERVICE_PREFIX = "svc-"  # MQTT usernames of the platform's own services
STATES = ("provisioned", "active", "silent", "retired")
# The state the control room shows: a device active or silent that has not spoken since the first bound
# parameter (a time in ms) is silent; otherwise its registry state (api/routes/fleet.py).
FLEET_STATE_SQL = ("(CASE WHEN state IN ('active', 'silent') AND last_seen_ms < ? THEN 'silent' ELSE state END)")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    district TEXT NOT NULL,
    lat REAL,
    lon REAL,
    note TEXT NOT NULL DEFAULT '',
    public_name TEXT NOT NULL DEFAULT '',
    firmware TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'provisioned',
    credential_hash TEXT NOT NULL DEFAULT '',
    last_seen_ms INTEGER,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_kind_district ON devices (kind, district);
CREATE INDEX IF NOT EXISTS devices_district ON devices (district, id);
CREATE TABLE IF NOT EXISTS registry_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO registry_meta VALUES ('devices_version', 0);
CREATE TRIGGER IF NOT EXISTS devices_version_insert AFTER INSERT ON devices BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE key = 'devices_version'; END;
CREATE TRIGGER IF NOT EXISTS devices_version_delete AFTER DELETE ON devices BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE key = 'devices_version'; END;
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    utility TEXT NOT NULL,
    parent TEXT,
    name TEXT NOT NULL DEFAULT '',
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS network_meters (
    device TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    role TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS network_meters_network ON network_meters (network);
"""
# What the hot path's caches (RegistryCache: ingest, analytics) read of a device: its kind, district, credential
# and whether it is retired. A device's first message (provisioned -> active) or its silence (active <-> silent)
# does not move the version: with 100,000 devices each move made every cache reload the whole registry
# (~4 s a process), every few seconds while a fleet came up (bench_city_scale, analytics/README.md).
# Replaces `devices_version_update`, which also counted those (dropped in the same transaction).
VERSION_TRIGGER = """
BEGIN IMMEDIATE;
DROP TRIGGER IF EXISTS devices_version_update;
CREATE TRIGGER IF NOT EXISTS devices_version_update_2 AFTER UPDATE ON devices
WHEN old.kind IS NOT new.kind OR old.district IS NOT new.district
  OR old.credential_hash IS NOT new.credential_hash
  OR (old.state IS NOT new.state AND 'retired' IN (old.state, new.state))
BEGIN UPDATE registry_meta SET value = value + 1 WHERE key = 'devices_version'; END;
COMMIT;
"""


class DeviceNew(BaseModel):
    id: str
    kind: str
    district: str
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    note: str = Field("", max_length=500)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not contract.valid_device_id(value):
            raise ValueError("a device id is 3 to 32 of a-z, 0-9 and '-', not starting with '-'")
        if value.startswith(SERVICE_PREFIX):
            raise ValueError(f"ids starting with {SERVICE_PREFIX!r} are reserved for service accounts")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in contract.KINDS:
            raise ValueError(f"unknown kind; one of {', '.join(contract.KINDS)}")
        return value

    @field_validator("district")
    @classmethod
    def _district(cls, value: str, info: ValidationInfo) -> str:
        if not _SLUG.match(value):
            raise ValueError("a district is a slug: a-z, 0-9 and '-', at most 64")
        if (info.context or {}).get("stored"):
            return value  # read back from the file: checked against the profile at start-up (check_districts)
        allowed = get_settings().city.slugs
        if value not in allowed:
            raise ValueError(f"unknown district {value!r}: the city profile has {', '.join(allowed)}")
        return value


class Device(DeviceNew):
    # the name the public sees (a hospital ward's), set by an admin; `note` is for staff and never public
    public_name: str = Field("", max_length=120)
    firmware: str = ""
    state: str = "provisioned"
    credential_hash: str = ""
    last_seen_ms: int | None = None
    created_ms: int
    updated_ms: int


def _stored(row: sqlite3.Row) -> Device:
    return Device.model_validate(dict(row), context={"stored": True})


class RegistryError(Exception):
    pass


class DeviceExists(RegistryError):
    pass


class DeviceNotFound(RegistryError):
    pass


def _now_ms() -> int:
    return int(time.time() * 1000)


class Registry:
    """Thread-safe access to the registry file (one connection, serialised)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            triggers = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            if "devices_version_update" in triggers or "devices_version_update_2" not in triggers:
                self.db.executescript(VERSION_TRIGGER)  # a new file, or one made before the trigger changed
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(devices)")}
            if "public_name" not in columns:  # a registry made before public names existed
                self.db.execute("ALTER TABLE devices ADD COLUMN public_name TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    def version(self) -> int:
        with self.lock:
            row = self.db.execute("SELECT value FROM registry_meta WHERE key='devices_version'").fetchone()
        return row[0]

    def add(self, new: DeviceNew, credential_hash: str = "") -> Device:
        now = _now_ms()
        device = Device(**new.model_dump(), credential_hash=credential_hash, created_ms=now, updated_ms=now)
        row = device.model_dump()
        try:
            with self.lock:
                self.db.execute(
                    f"INSERT INTO devices ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                )
        except sqlite3.IntegrityError as exc:
            raise DeviceExists(f"device {new.id} already exists") from exc
        return device

    def add_many(self, news: Sequence[DeviceNew], credential_hash: str = "") -> int:
        """Register many devices in one transaction (a city's fleet seeded at once: 100,000 in seconds, where
        `add` commits each one); all or none (DeviceExists: one of them is registered already)."""
        now = _now_ms()
        given = list(DeviceNew.model_fields)
        columns = [*given, "credential_hash", "created_ms", "updated_ms"]  # the others: the table's defaults
        rows = [[*(getattr(new, c) for c in given), credential_hash, now, now] for new in news]
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.executemany(f"INSERT INTO devices ({', '.join(columns)}) VALUES "
                                    f"({', '.join('?' * len(columns))})", rows)
            except sqlite3.IntegrityError as exc:
                self.db.execute("ROLLBACK")
                raise DeviceExists(f"one of the {len(rows)} devices is registered already: {exc}") from exc
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return len(rows)

    def get(self, device_id: str) -> Device:
        with self.lock:
            row = self.db.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()
        if row is None:
            raise DeviceNotFound(f"no device {device_id!r}")
        return _stored(row)

    def list(self, kind: str | None = None, district: str | None = None, state: str | None = None,
             limit: int = 1000, offset: int = 0) -> tuple[list[Device], int]:
        """A page of devices and the total that match."""
        where, args = [], []
        for column, value in (("kind", kind), ("district", district), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.lock:
            total = self.db.execute(f"SELECT count(*) FROM devices {clause}", args).fetchone()[0]
            rows = self.db.execute(f"SELECT * FROM devices {clause} ORDER BY id LIMIT ? OFFSET ?",
                                   [*args, limit, offset]).fetchall()
        return [_stored(row) for row in rows], total

    # ------------------------------------------------------------ the fleet as the control room sees it

    @staticmethod
    def _fleet_where(silent_before_ms: int, district: str | None, state: str | None,
                     bbox: tuple[float, float, float, float] | None) -> tuple[str, list]:
        where, args = [], []
        if district is not None:
            where.append("district = ?")
            args.append(district)
        if state is not None:
            where.append(f"{FLEET_STATE_SQL} = ?")
            args += [silent_before_ms, state]
        if bbox is not None:
            where.append("lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?")
            args += [bbox[0], bbox[2], bbox[1], bbox[3]]
        return (f"WHERE {' AND '.join(where)}" if where else ""), args

    def fleet_page(self, silent_before_ms: int, district: str | None = None, state: str | None = None,
                   bbox: tuple[float, float, float, float] | None = None, silent_first: bool = False,
                   limit: int = 1000, offset: int = 0) -> "tuple[list[Device], int]":
        """A page of devices and the total that match, filtered in SQL: by district, by the state the
        control room shows (a device active or silent not heard since `silent_before_ms` is silent), by a
        box (min_lon, min_lat, max_lon, max_lat; devices with a registered position in it). Ordered by id,
        or longest silent first. Reads only the page, whatever the size of the fleet."""
        clause, args = self._fleet_where(silent_before_ms, district, state, bbox)
        order = "last_seen_ms IS NULL, last_seen_ms, id" if silent_first else "id"
        with self.lock:
            total = self.db.execute(f"SELECT count(*) FROM devices {clause}", args).fetchone()[0]
            rows = self.db.execute(f"SELECT * FROM devices {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                                   [*args, limit, offset]).fetchall()
        return [_stored(row) for row in rows], total

    def fleet_counts(self, silent_before_ms: int) -> dict[str, dict[str, int]]:
        """district -> {shown state -> devices}, counted in SQL (one pass, no device read into Python)."""
        counts: dict[str, dict[str, int]] = {}
        with self.lock:
            rows = self.db.execute(f"SELECT district, {FLEET_STATE_SQL} AS shown, count(*) FROM devices"
                                   " GROUP BY district, shown", (silent_before_ms,)).fetchall()
        for district, shown, n in rows:
            counts.setdefault(district, {})[shown] = n
        return counts

    def districts_of(self, device_ids: Sequence[str]) -> dict[str, str]:
        """device id -> district for those of `device_ids` that are registered."""
        out: dict[str, str] = {}
        ids = list(device_ids)
        with self.lock:
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = ids[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                out.update(self.db.execute(f"SELECT id, district FROM devices WHERE id IN ({marks})", chunk).fetchall())
        return out

    def update(self, device_id: str, **changes: object) -> Device:
        """Change some fields; validated as the whole device would be."""
        current = self.get(device_id)
        merged = Device(**(current.model_dump() | changes | {"updated_ms": _now_ms()}))
        if merged.state not in STATES:
            raise RegistryError(f"state must be one of {', '.join(STATES)}")
        row = merged.model_dump()
        del row["id"]
        with self.lock:
            self.db.execute(f"UPDATE devices SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
                            [*row.values(), device_id])
        return merged

    def seen(self, device_id: str, t_ms: int, firmware: str | None = None) -> None:
        """Record that a device spoke (cheap; does not invalidate caches)."""
        self.seen_many([(device_id, t_ms, firmware)])

    def seen_many(self, entries: Sequence[tuple[str, int, str | None]]) -> None:
        """`seen` for many (device, t_ms, firmware) in one transaction (one commit, not one per device)."""
        with_fw = [(t_ms, firmware, device_id) for device_id, t_ms, firmware in entries if firmware]
        without = [(t_ms, device_id) for device_id, t_ms, firmware in entries if not firmware]
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.executemany(
                    "UPDATE devices SET last_seen_ms = max(coalesce(last_seen_ms, 0), ?), firmware = ?,"
                    " state = CASE WHEN state IN ('provisioned', 'silent') THEN 'active' ELSE state END WHERE id = ?",
                    with_fw)
                self.db.executemany("UPDATE devices SET last_seen_ms = max(coalesce(last_seen_ms, 0), ?) WHERE id = ?",
                                    without)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def check_districts(self, profile: CityProfile) -> None:
        """Refuse to start (ProfileError) when a device not retired sits in a district the profile lacks."""
        with self.lock:
            rows = self.db.execute("SELECT id, district FROM devices WHERE state != 'retired' ORDER BY id").fetchall()
        check_devices(profile, [(row[0], row[1]) for row in rows])

    def delete(self, device_id: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM devices WHERE id = ?", (device_id,))

    # ------------------------------------------------------------ network topology (telemetry_shared/network.py)

    def set_network(self, spec: net.NetworkSpec) -> net.Network:
        """Create or replace one DMA or feeder, checked whole in one transaction (TopologyError: refused,
        nothing changed)."""
        named = sorted({d for ids in spec.meters.values() for d in ids})
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                kinds, owner = {}, {}
                for start in range(0, len(named), 500):  # SQLite's bound-parameter limit
                    chunk = named[start:start + 500]
                    marks = ", ".join("?" * len(chunk))
                    kinds.update(self.db.execute(f"SELECT id, kind FROM devices WHERE id IN ({marks})", chunk))
                    owner.update(self.db.execute(
                        f"SELECT device, network FROM network_meters WHERE device IN ({marks})", chunk))
                stored = self.db.execute("SELECT id, utility, parent FROM networks").fetchall()
                net.check(spec, kinds, owner, {r[0]: r[2] for r in stored if r[1] == "water"},
                          {r[0]: r[1] for r in stored})
                saved = net.Network(**spec.model_dump(), updated_ms=_now_ms())
                self.db.execute("INSERT OR REPLACE INTO networks (id, utility, parent, name, updated_ms) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (saved.id, saved.utility, saved.parent, saved.name, saved.updated_ms))
                self.db.execute("DELETE FROM network_meters WHERE network = ?", (saved.id,))
                self.db.executemany("INSERT INTO network_meters (device, network, role) VALUES (?, ?, ?)",
                                    [(d, saved.id, role) for role, ids in saved.meters.items() for d in ids])
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return saved

    def networks(self, utility: str | None = None) -> "list[net.Network]":
        """Every DMA and feeder (of one utility), sorted by id, with their meters."""
        with self.lock:
            rows = self.db.execute("SELECT * FROM networks WHERE ? IS NULL OR utility = ? ORDER BY id",
                                   (utility, utility)).fetchall()
            meters = self.db.execute("SELECT network, role, device FROM network_meters ORDER BY device").fetchall()
        by_network: dict[str, dict[str, list[str]]] = {}
        for network, role, device in meters:
            by_network.setdefault(network, {}).setdefault(role, []).append(device)
        return [net.Network(**dict(row), meters={role: by_network.get(row["id"], {}).get(role, [])
                                                  for role in net.ROLES[row["utility"]]}) for row in rows]

    def network(self, network_id: str) -> net.Network:
        found = [n for n in self.networks() if n.id == network_id]
        if not found:
            raise net.TopologyError("not_found", f"no dma or feeder {network_id!r}", 404)
        return found[0]

    def remove_network(self, network_id: str) -> None:
        """Remove a DMA or feeder (its meters stay registered); a DMA that has sub-DMAs is refused."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.db.execute("SELECT 1 FROM networks WHERE id = ?", (network_id,)).fetchone() is None:
                    raise net.TopologyError("not_found", f"no dma or feeder {network_id!r}", 404)
                children = [r[0] for r in self.db.execute("SELECT id FROM networks WHERE parent = ? ORDER BY id",
                                                          (network_id,))]
                if children:
                    raise net.TopologyError("has_children", f"dma {network_id} still holds sub-dmas "
                                                            f"{', '.join(children[:10])}: move or remove them first")
                self.db.execute("DELETE FROM network_meters WHERE network = ?", (network_id,))
                self.db.execute("DELETE FROM networks WHERE id = ?", (network_id,))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def topology(self, utility: str) -> net.Topology:
        """Every network of one utility as arrays, for analytics (see telemetry_shared/network.py)."""
        return net.topology(utility, self.networks(utility))


class RegistryCache:
    """Device lookups for the hot path of ingest and analytics: the whole registry
    in memory, reloaded when its version moves (checked at most every check_s).
    The version moves with a device's kind, district, credential or retirement, not
    with provisioned/active/silent: a cached device's state is exact only for
    "retired" (all the hot path asks)."""

    def __init__(self, registry: Registry, check_s: float = 1.0):
        self.registry = registry
        self.check_s = check_s
        self.version = -1
        self.checked = 0.0
        self.devices: dict[str, Device] = {}

    def get(self, device_id: str, fresh_since: float | None = None) -> Device | None:
        """The cached device. With `fresh_since` (a time.monotonic()), the registry is read again
        first unless that was done after `fresh_since`: a device registered before then is found."""
        now = time.monotonic()
        if now - self.checked > self.check_s or (fresh_since is not None and self.checked <= fresh_since):
            self.checked = now
            self.refresh()
        return self.devices.get(device_id)

    def refresh(self) -> None:
        version = self.registry.version()
        if version != self.version:
            devices, _ = self.registry.list(limit=10_000_000)
            self.devices = {d.id: d for d in devices}
            self.version = version
