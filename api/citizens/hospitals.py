"""Hospitals, their wards by bed class, free beds and the doctors on duty, in the API's SQLite file.

A ward's free beds come from the hospital's own staff (the `hospital` role, one key per hospital,
only its own wards) or from a `beds_free` sensor mapped to the ward; whichever is newer counts.
A ward not updated for `api_hospital_stale_after_s` is stale: it shows no free beds, only when it was
last told. The public sees only the fields made for it (`PublicHospital`): never a key, a staff
name, a sensor id or anything about a patient (nothing about patients is stored at all).
"""

from typing import Annotated, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from api.db import ApiDb, now_ms
from api.params import WholeNumber

BED_CLASSES = ("icu", "nicu", "picu", "isolation", "class_1", "class_2", "class_3", "vip")
BedClass = Literal["icu", "nicu", "picu", "isolation", "class_1", "class_2", "class_3", "vip"]
HospitalType = Literal["government", "private", "military", "police"]
SLUG = r"^[a-z0-9][a-z0-9-]{1,47}$"
# text on one line without markup characters: names, addresses, specialities (other control characters are
# dropped when stored, see _line: a pattern of excluded control ranges is read differently by schema tools)
LINE = r"^[^<>\r\n]*[^\s\x1c-\x1f\x85<>][^<>\r\n]*$"  # see api.params.NOT_BLANK_PATTERN


def _line(text: str) -> str:
    return "".join(c for c in text if c.isprintable()).strip() or "-"
PHONE = r"^\+?[0-9][0-9 ()-]{4,23}$"
MAX_ROSTER = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS hospitals (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    district TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    phone TEXT NOT NULL,
    type TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wards (
    id TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL REFERENCES hospitals(id),
    name TEXT NOT NULL,
    bed_class TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    beds_free INTEGER,
    updated_ms INTEGER,
    updated_by TEXT,
    sensor_device TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS wards_hospital ON wards (hospital_id);
CREATE TABLE IF NOT EXISTS duty_roster (
    hospital_id TEXT NOT NULL REFERENCES hospitals(id),
    doctor TEXT NOT NULL,
    speciality TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS duty_roster_hospital ON duty_roster (hospital_id, end_ms);
CREATE TABLE IF NOT EXISTS hospital_keys (
    key_id TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL REFERENCES hospitals(id)
);
"""

# python-re: "\S" means here what it means where schemathesis generates from the schema
STRICT = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")


class HospitalNew(BaseModel):
    model_config = STRICT

    id: str = Field(pattern=SLUG, description="a short slug, e.g. rsud-raja-ahmad-tabib")
    name: str = Field(min_length=2, max_length=120, pattern=LINE)
    address: str = Field(min_length=2, max_length=200, pattern=LINE)
    lat: float = Field(ge=-90, le=90, description="its district is the city profile's district holding this point")
    lon: float = Field(ge=-180, le=180)
    phone: str = Field(pattern=PHONE, description="the number the public calls, e.g. +62 771 25678")
    type: HospitalType


class HospitalPublicFields(BaseModel):
    """A hospital's record as the public may see all of it (the staff view adds its own fields)."""

    id: str
    name: str
    address: str
    district: str
    lat: float
    lon: float
    phone: str
    type: str


class Hospital(HospitalPublicFields):
    created_ms: int
    updated_ms: int


class WardNew(BaseModel):
    model_config = STRICT

    id: str = Field(pattern=SLUG, description="a slug unique in the city, e.g. rsud-icu-1")
    name: str = Field(min_length=1, max_length=80, pattern=LINE, description="as the public sees it: Ruang Melati")
    bed_class: BedClass
    capacity: WholeNumber = Field(ge=0, le=2000)


class Ward(BaseModel):
    id: str
    hospital_id: str
    name: str
    bed_class: str
    capacity: int
    beds_free: int | None
    updated_ms: int | None
    updated_by: str | None
    sensor_device: str | None


class BedsUpdate(BaseModel):
    model_config = STRICT

    beds_free: WholeNumber = Field(ge=0, le=2000)
    # the bounds inside the union, so the schema's integer branch carries them
    capacity: Annotated[WholeNumber, Ge(0), Le(2000),
                        WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 2000})] | None = Field(
        None, description="a changed capacity (beds opened or closed)")


class DutyShift(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    doctor: str = Field(min_length=2, max_length=80, pattern=LINE, description="as the public sees it: dr. Sari, Sp.A")
    speciality: str = Field(min_length=2, max_length=80, pattern=LINE)
    start_ms: WholeNumber = Field(ge=0, le=4_102_444_800_000)
    end_ms: WholeNumber = Field(ge=0, le=4_102_444_800_000)


class Roster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shifts: list[DutyShift] = Field(max_length=MAX_ROSTER, description="replaces the hospital's roster")


class PublicWard(BaseModel):
    name: str
    bed_class: str
    capacity: int
    beds_free: int | None = Field(description="null when stale: never shown as free")
    updated_ms: int | None
    stale: bool


class PublicDoctor(BaseModel):
    doctor: str
    speciality: str
    until_ms: int


class PublicHospital(HospitalPublicFields):
    distance_km: float | None = None
    beds_free: int = Field(description="free beds over its fresh wards (of the asked class)")
    wards: list[PublicWard]
    doctors_on_duty: list[PublicDoctor]


class HospitalNotFound(LookupError):
    pass


class HospitalConflict(ValueError):
    pass


class HospitalStore:
    def __init__(self, db: ApiDb):
        self.db = db
        db.script(SCHEMA)

    # ------------------------------------------------------------ hospitals and wards

    def add(self, new: HospitalNew, district: str) -> Hospital:
        now = now_ms()
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM hospitals WHERE id = ?", (new.id,)).fetchone():
                raise HospitalConflict(f"hospital {new.id!r} exists")
            conn.execute("INSERT INTO hospitals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (new.id, _line(new.name), _line(new.address), district, new.lat, new.lon, new.phone, new.type,
                          now, now))
        return self.get(new.id)

    def get(self, hospital_id: str) -> Hospital:
        rows = self.db.query("SELECT * FROM hospitals WHERE id = ?", (hospital_id,))
        if not rows:
            raise HospitalNotFound(f"no hospital {hospital_id[:48]!r}")
        return Hospital(**dict(rows[0]))

    def hospitals(self) -> list[Hospital]:
        return [Hospital(**dict(r)) for r in self.db.query("SELECT * FROM hospitals ORDER BY district, name")]

    def add_ward(self, hospital_id: str, new: WardNew) -> Ward:
        self.get(hospital_id)
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM wards WHERE id = ?", (new.id,)).fetchone():
                raise HospitalConflict(f"ward {new.id!r} exists")
            conn.execute("INSERT INTO wards (id, hospital_id, name, bed_class, capacity) VALUES (?, ?, ?, ?, ?)",
                         (new.id, hospital_id, _line(new.name), new.bed_class, new.capacity))
        return self.ward(hospital_id, new.id)

    def ward(self, hospital_id: str, ward_id: str) -> Ward:
        """The ward of this hospital; another hospital's ward is not found here."""
        rows = self.db.query("SELECT * FROM wards WHERE id = ? AND hospital_id = ?", (ward_id, hospital_id))
        if not rows:
            raise HospitalNotFound(f"hospital {hospital_id[:48]!r} has no ward {ward_id[:48]!r}")
        return Ward(**dict(rows[0]))

    def wards(self, hospital_id: str | None = None) -> list[Ward]:
        if hospital_id is None:
            rows = self.db.query("SELECT * FROM wards ORDER BY hospital_id, bed_class, name")
        else:
            rows = self.db.query("SELECT * FROM wards WHERE hospital_id = ? ORDER BY bed_class, name", (hospital_id,))
        return [Ward(**dict(r)) for r in rows]

    def set_beds(self, hospital_id: str, ward_id: str, update: BedsUpdate, by: str, t_ms: int | None = None) -> Ward:
        ward = self.ward(hospital_id, ward_id)
        capacity = ward.capacity if update.capacity is None else update.capacity
        if update.beds_free > capacity:
            raise HospitalConflict(f"{update.beds_free} free beds in a ward of {capacity}")
        with self.db.transaction() as conn:
            conn.execute("UPDATE wards SET beds_free = ?, capacity = ?, updated_ms = ?, updated_by = ? WHERE id = ?",
                         (update.beds_free, capacity, t_ms or now_ms(), by, ward_id))
        return self.ward(hospital_id, ward_id)

    def map_sensor(self, hospital_id: str, ward_id: str, device: str | None) -> Ward:
        self.ward(hospital_id, ward_id)
        with self.db.transaction() as conn:
            if device and conn.execute("SELECT 1 FROM wards WHERE sensor_device = ? AND id != ?",
                                       (device, ward_id)).fetchone():
                raise HospitalConflict(f"{device} already feeds another ward")
            conn.execute("UPDATE wards SET sensor_device = ? WHERE id = ?", (device, ward_id))
        return self.ward(hospital_id, ward_id)

    def sensor_readings(self, readings: list[dict]) -> int:
        """Apply the newest `beds_free` reading of each mapped sensor ([{device, t_ms, value}]) where it is
        newer than what the ward has. Returns how many wards changed."""
        by_device = {r["device"]: r for r in readings}
        changed = 0
        with self.db.transaction() as conn:
            for row in conn.execute("SELECT id, capacity, updated_ms, sensor_device FROM wards"
                                    " WHERE sensor_device IS NOT NULL").fetchall():
                reading = by_device.get(row["sensor_device"])
                if reading is None or reading["t_ms"] <= (row["updated_ms"] or 0):
                    continue
                free = max(0, min(row["capacity"], int(round(reading["value"]))))
                conn.execute("UPDATE wards SET beds_free = ?, updated_ms = ?, updated_by = 'sensor' WHERE id = ?",
                             (free, reading["t_ms"], row["id"]))
                changed += 1
        return changed

    # ------------------------------------------------------------ keys and roster

    def scope_key(self, key_id: str, hospital_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO hospital_keys VALUES (?, ?)", (key_id, hospital_id))

    def hospital_of_key(self, key_id: str) -> str | None:
        rows = self.db.query("SELECT hospital_id FROM hospital_keys WHERE key_id = ?", (key_id,))
        return rows[0][0] if rows else None

    def set_roster(self, hospital_id: str, roster: Roster) -> int:
        self.get(hospital_id)
        for n, shift in enumerate(roster.shifts):
            if shift.end_ms <= shift.start_ms or shift.end_ms - shift.start_ms > 48 * 3600_000:
                raise HospitalConflict(f"shifts[{n}]: a shift ends after it starts and lasts at most 48 h")
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM duty_roster WHERE hospital_id = ?", (hospital_id,))
            conn.executemany("INSERT INTO duty_roster VALUES (?, ?, ?, ?, ?)",
                             [(hospital_id, _line(s.doctor), _line(s.speciality), s.start_ms, s.end_ms)
                              for s in roster.shifts])
        return len(roster.shifts)

    def on_duty(self, t_ms: int) -> dict[str, list[PublicDoctor]]:
        rows = self.db.query("SELECT hospital_id, doctor, speciality, end_ms FROM duty_roster"
                             " WHERE start_ms <= ? AND end_ms > ? ORDER BY speciality, doctor", (t_ms, t_ms))
        out: dict[str, list[PublicDoctor]] = {}
        for r in rows:
            out.setdefault(r["hospital_id"], []).append(
                PublicDoctor(doctor=r["doctor"], speciality=r["speciality"], until_ms=r["end_ms"]))
        return out


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    from math import asin, cos, radians, sin, sqrt

    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * 6371.0088 * asin(sqrt(a))


def public_ward(ward: Ward, now: int, stale_ms: int) -> PublicWard:
    stale = ward.updated_ms is None or now - ward.updated_ms > stale_ms
    return PublicWard(name=ward.name, bed_class=ward.bed_class, capacity=ward.capacity,
                      beds_free=None if stale else ward.beds_free, updated_ms=ward.updated_ms, stale=stale)


def public_beds(hospitals: list[Hospital], wards: list[Ward], duty: dict[str, list[PublicDoctor]], now: int,
                stale_ms: int, bed_class: str | None = None, near: tuple[float, float] | None = None,
                only_free: bool = False) -> list[PublicHospital]:
    """The public list: hospitals with their wards (of `bed_class`), free beds only where fresh, the doctors on
    duty now; nearest first from `near`, else by district and name."""
    by_hospital: dict[str, list[Ward]] = {}
    for ward in wards:
        if bed_class is None or ward.bed_class == bed_class:
            by_hospital.setdefault(ward.hospital_id, []).append(ward)
    out = []
    for h in hospitals:
        ordered = sorted(by_hospital.get(h.id, []), key=lambda w: (BED_CLASSES.index(w.bed_class), w.name))
        shown = [public_ward(w, now, stale_ms) for w in ordered]
        if bed_class is not None and not shown:
            continue
        free = sum(w.beds_free or 0 for w in shown)
        if only_free and not free:
            continue
        doctors = [d for d in duty.get(h.id, []) if d.until_ms > now]
        distance = round(distance_km(near[0], near[1], h.lat, h.lon), 2) if near else None
        out.append(PublicHospital(id=h.id, name=h.name, address=h.address, district=h.district, lat=h.lat, lon=h.lon,
                                  phone=h.phone, type=h.type, distance_km=distance, beds_free=free, wards=shown,
                                  doctors_on_duty=doctors))
    if near:
        out.sort(key=lambda h: (h.distance_km, h.name))
    return out
