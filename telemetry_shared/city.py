"""The city profile: one YAML file per city (cities/*.yaml) that holds everything the platform
knows about the city: its name, time zone, districts with their boundaries, the grid's nominal
values and limits, water limits, the working week, public holidays and local days off, the
default language, and the open-data policy (what the public may download of each metric).
Nothing else in the code names a district, the city or a nominal value.

`load_profile(path)` validates the file once and raises `ProfileError` naming the file, the line
and the field of the first problems found (an unknown time zone, an invalid or overlapping
boundary, a limit that does not bracket its nominal value, ...), so a bad profile refuses to start.

The boundaries' geometry (shapely, with numpy) and the holiday calendars (holidays, dateutil) are
imported only when a process uses them or checks them: together ~25 MB resident. A process that
never draws a map nor counts working days (the ingest worker) calls `use_light_profiles()` and has
the whole file checked once in a child process instead (`check_profile_in_child`), so a bad profile
still refuses to start while the long-lived process stays small.
"""

import datetime as dt
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from telemetry_shared.files import FileTooLarge, read_bounded_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LANGUAGES = ("id", "en")
# A profile is a few KB; boundaries drawn in detail stay well under this.
MAX_PROFILE_BYTES = 8 * 1024 * 1024
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Two boundaries may share an edge; an overlap larger than this (square degrees, ~1,200 m² near
# the equator) is a drawing error, not rounding of a shared edge.
OVERLAP_TOLERANCE_DEG2 = 1e-7


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text, so a bad date is reported by field and line like any other."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ProfileError(ValueError):
    """A city profile that cannot be used: the message names the file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Strict):
    id: str = Field(min_length=1, max_length=80)
    en: str = Field(min_length=1, max_length=80)


class Boundary(_Strict):
    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list


class DistrictSpec(_Strict):
    slug: str
    name: Names
    weight: float | None = Field(None, gt=0, le=1e6, description="share of the simulated fleet; default: by area")
    boundary: Boundary

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("a slug is a-z, 0-9 and '-', at most 64, not starting with '-'")
        return value


class Grid(_Strict):
    nominal_voltage_v: float = Field(gt=0, le=1000)
    nominal_frequency_hz: float = Field(gt=0, le=400)
    standard: str = Field(min_length=1)
    voltage_limits_v: tuple[float, float]
    frequency_limits_hz: tuple[float, float]
    # EN 50160's frequency bands depend on it: a system synchronously connected to an interconnected one
    # (+-1 %, +4/-6 %) or not, as on an island (+-2 %, +-15 %); analytics/en50160.py.
    interconnected: bool
    interconnected_source: str = ""

    @field_validator("voltage_limits_v", "frequency_limits_hz")
    @classmethod
    def _brackets(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        nominal = info.data.get("nominal_voltage_v" if info.field_name == "voltage_limits_v"
                                else "nominal_frequency_hz")
        if nominal is not None and not value[0] < nominal < value[1]:
            raise ValueError(f"[{value[0]:g}, {value[1]:g}] must bracket the nominal {nominal:g}")
        return value


class Water(_Strict):
    pressure_min_bar: float = Field(gt=0, le=20)
    pressure_source: str = ""
    chlorine_mgl: tuple[float, float]
    chlorine_source: str = ""
    turbidity_max_ntu: float = Field(gt=0, le=1000)
    turbidity_source: str = ""
    # local hours [start, end) of the minimum night flow window (IWA water-loss practice: the lowest
    # demand of the night, when what still flows into a district meter area is mostly leakage)
    night_window_h: tuple[int, int] = (2, 4)

    @field_validator("chlorine_mgl")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1]:
            raise ValueError("[low, high] with 0 <= low < high")
        return value

    @field_validator("night_window_h")
    @classmethod
    def _night(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] < value[1] <= 24:
            raise ValueError("[start, end) local hours with 0 <= start < end <= 24 (not across midnight)")
        return value


class DayOff(_Strict):
    date: dt.date
    name: str = Field(min_length=1, max_length=120)


class Calendar(_Strict):
    working_days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    public_holidays: str = Field("", description="the holidays library's country code, e.g. ID or US-HI")
    days_off: list[DayOff] = []

    @field_validator("public_holidays")
    @classmethod
    def _country(cls, value: str, info: ValidationInfo) -> str:
        if value and (info.context or {}).get("full", True):
            _national_calendar(value, 2026)  # raises for an unknown country or subdivision
        return value


# Open data (issue 20): what the public may download of each metric. Protective by default: a metric the
# profile does not name is published only aggregated (district x hour, k devices at least); what is
# measured per room (occupancy, CO2) is closed unless the profile opens it.
OPEN_DATA_MODES = ("raw", "aggregated", "closed")
DEFAULT_CLOSED_METRICS = ("building.occupancy", "building.co2_ppm")


class MetricRule(_Strict):
    mode: Literal["raw", "aggregated", "closed"]
    k: int | None = Field(None, ge=2, le=1000, description="aggregated: at least this many devices a cell")
    delay_hours: int | None = Field(None, ge=0, le=24 * 366, description="raw: published this long after")


class Publisher(_Strict):
    name: Names
    url: str = Field("", max_length=300)
    email: str = Field("", max_length=120)


class OpenData(_Strict):
    k: int = Field(3, ge=2, le=1000, description="an aggregated cell needs at least k devices")
    raw_delay_hours: int = Field(24, ge=0, le=24 * 366)
    publisher: Publisher | None = None
    metrics: dict[str, MetricRule] = {}

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: dict[str, MetricRule]) -> dict[str, MetricRule]:
        from edge import contract

        for key in value:
            kind, _, metric = key.partition(".")
            if metric not in contract.KINDS.get(kind, {}):
                raise ValueError(f"{key!r} is not <kind>.<metric> of the contract (e.g. water.flow_lps)")
        return value

    def rule(self, kind: str, metric: str) -> tuple[str, int, int]:
        """(mode, k, delay_hours) for one metric: the profile's rule, else the protective default."""
        key = f"{kind}.{metric}"
        rule = self.metrics.get(key)
        mode = rule.mode if rule else ("closed" if key in DEFAULT_CLOSED_METRICS else "aggregated")
        k = rule.k if rule and rule.k is not None else self.k
        delay = rule.delay_hours if rule and rule.delay_hours is not None else self.raw_delay_hours
        return mode, k, delay


class ProfileSpec(_Strict):
    name: str = Field(min_length=1, max_length=120)
    time_zone: str
    default_language: Literal["id", "en"]
    languages: list[Literal["id", "en"]] = list(LANGUAGES)
    districts: list[DistrictSpec] = Field(min_length=1, max_length=500)
    grid: Grid
    water: Water
    calendar: Calendar
    open_data: OpenData = OpenData()

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (Area/Location, as in the tz database)") from exc
        return value


@dataclass(frozen=True)
class District:
    slug: str
    names: dict[str, str]  # language -> name
    geojson: dict
    weight: float | None = None  # share of the simulated fleet (None: by area)

    @cached_property
    def geometry(self) -> Any:
        """The boundary as a shapely Polygon or MultiPolygon (valid: checked when the profile was)."""
        from shapely.geometry import shape

        return shape(self.geojson)

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names["en"]


@dataclass(frozen=True)
class CityProfile:
    """A validated city profile (see the module docstring)."""

    path: Path
    spec: ProfileSpec
    districts: tuple[District, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.spec.time_zone)

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(d.slug for d in self.districts)

    @property
    def grid(self) -> Grid:
        return self.spec.grid

    @property
    def water(self) -> Water:
        return self.spec.water

    @property
    def open_data(self) -> OpenData:
        return self.spec.open_data

    @property
    def utc_offset_hours(self) -> int:
        """The zone's standard offset in whole hours (the analytics' local day; see README troubleshooting)."""
        offset = dt.datetime(2026, 1, 15, tzinfo=self.zone).utcoffset() or dt.timedelta(0)
        return round(offset.total_seconds() / 3600)

    def district(self, slug: str) -> District:
        for district in self.districts:
            if district.slug == slug:
                return district
        raise KeyError(slug)

    def district_at(self, lat: float, lon: float) -> str | None:
        """The slug of the district whose boundary holds (lat, lon), or None."""
        from shapely.geometry import Point  # shapely on first use: a CLI that never needs it starts faster

        point = Point(lon, lat)
        for district in self.districts:
            if district.geometry.covers(point):
                return district.slug
        return None

    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat) over every district."""
        boxes = [d.geometry.bounds for d in self.districts]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

    def days_off(self, start: dt.date, end: dt.date) -> dict[dt.date, str]:
        """Non-working days in [start, end] that are not weekly rest days: public holidays and the
        profile's own days off, each with its name."""
        out: dict[dt.date, str] = {}
        code = self.spec.calendar.public_holidays
        if code:
            for year in range(start.year, end.year + 1):
                for day, name in _national_calendar(code, year).items():
                    if start <= day <= end:
                        out[day] = name
        for day in self.spec.calendar.days_off:
            if start <= day.date <= end:
                out[day.date] = day.name
        return out

    def calendar_params(self, start: dt.date, end: dt.date) -> dict[str, tuple[int, ...]]:
        """The analytics' calendar (analytics.config.DetectorParams rest_weekdays, days_off) over
        [start, end]: days off as local days since 1970-01-01."""
        epoch = dt.date(1970, 1, 1)
        days = tuple(sorted((day - epoch).days for day in self.days_off(start, end)))
        return {"rest_weekdays": self.rest_weekdays(), "days_off": days}

    def rest_weekdays(self) -> tuple[int, ...]:
        """Weekdays (Monday 0) that are not working days."""
        working = {WEEKDAYS.index(day) for day in self.spec.calendar.working_days}
        return tuple(i for i in range(7) if i not in working)

    def public_dict(self, language: str) -> dict:
        """What the pages need: the name, zone, languages, districts as GeoJSON features, the grid nominals."""
        return {
            "name": self.name, "time_zone": self.spec.time_zone, "default_language": self.spec.default_language,
            "languages": list(self.spec.languages), "bounds": list(self.bounds()),
            "grid": {"nominal_voltage_v": self.grid.nominal_voltage_v,
                     "nominal_frequency_hz": self.grid.nominal_frequency_hz},
            "districts": {"type": "FeatureCollection", "features": [
                {"type": "Feature", "geometry": d.geojson,
                 "properties": {"slug": d.slug, "name": d.name(language), "names": d.names}}
                for d in self.districts]},
        }


def _national_calendar(code: str, year: int) -> dict[dt.date, str]:
    import holidays

    country, _, subdiv = code.partition("-")
    try:
        return dict(holidays.country_holidays(country, subdiv=subdiv or None, years=year))
    except NotImplementedError as exc:
        raise ValueError(f"the holidays library has no calendar {code!r} (e.g. ID, US-HI)") from exc


# ------------------------------------------------------------------ line numbers


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Every path in the YAML document -> the 1-based line where its value starts."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _line_index(value, (*path, key.value), out)
            out[(*path, key.value, "<key>")] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)
    return out


def _line_of(lines: dict[tuple, int], loc: tuple) -> int:
    """The line of loc, or of its nearest parent that the file has (a missing field: its parent)."""
    loc = tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get((*loc, "<key>"), lines.get(loc, 1))  # a mapping's field: the line of its key


def _field(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


# ------------------------------------------------------------------ loading


def _geometry_problems(spec: ProfileSpec) -> tuple[list[tuple[tuple, str]], list[District]]:
    from shapely.geometry import shape
    from shapely.validation import explain_validity

    problems: list[tuple[tuple, str]] = []
    districts: list[District] = []
    seen: dict[str, int] = {}
    for i, d in enumerate(spec.districts):
        if d.slug in seen:
            problems.append((("districts", i, "slug"), f"{d.slug!r} repeats districts[{seen[d.slug]}]"))
        seen.setdefault(d.slug, i)
        geojson = d.boundary.model_dump()
        try:
            geometry = shape(geojson)
        except Exception as exc:  # shapely's errors for malformed coordinates vary by case
            problems.append((("districts", i, "boundary", "coordinates"), f"not a GeoJSON {d.boundary.type}: {exc}"))
            continue
        if geometry.is_empty or not geometry.is_valid:
            why = "empty" if geometry.is_empty else explain_validity(geometry)
            problems.append((("districts", i, "boundary"), f"invalid boundary: {why}"))
            continue
        min_lon, min_lat, max_lon, max_lat = geometry.bounds
        if min_lon < -180 or max_lon > 180 or min_lat < -90 or max_lat > 90:
            problems.append((("districts", i, "boundary", "coordinates"),
                             "outside [-180, 180] x [-90, 90]: GeoJSON is [longitude, latitude]"))
            continue
        district = District(d.slug, d.name.model_dump(), geojson, d.weight)
        district.__dict__["geometry"] = geometry  # the cached_property's slot: built once, checked
        districts.append(district)
    index = {d.slug: i for i, d in enumerate(spec.districts)}
    for a_pos, a in enumerate(districts):
        for b in districts[a_pos + 1:]:
            overlap = a.geometry.intersection(b.geometry).area
            if overlap > OVERLAP_TOLERANCE_DEG2:
                problems.append((("districts", index[b.slug], "boundary"),
                                 f"overlaps {a.slug!r} (districts[{index[a.slug]}]) by {overlap:.2e} square degrees"))
    return problems, districts


def _fail(path: Path, lines: dict[tuple, int], problems: list[tuple[tuple, str]]) -> ProfileError:
    text = "\n".join(f"{path}:{_line_of(lines, loc)}: {_field(loc)}: {message}" for loc, message in problems)
    return ProfileError(f"city profile {path} is not valid:\n{text}")


def load_profile(path: Path | str, full: bool = True) -> CityProfile:
    """Read and validate one city profile; raises ProfileError naming the line and field.

    full=False skips the checks that need the boundaries' geometry and the holiday calendars
    (see the module docstring): the fields, values and limits are still checked."""
    path = Path(path)
    try:
        text = read_bounded_text(path, MAX_PROFILE_BYTES)
    except (FileTooLarge, UnicodeDecodeError) as exc:
        raise ProfileError(f"city profile {path}: {exc}") from exc
    except OSError as exc:
        raise ProfileError(f"city profile {path}: cannot be read ({exc.strerror}); set CITY_PROFILE") from exc
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ProfileError(f"city profile {path} is not valid:\n{path}:{line}: not YAML: {exc}") from exc
    lines = _line_index(node) if node is not None else {}
    if not isinstance(data, dict):
        raise _fail(path, lines, [((), "a profile is a mapping of name, time_zone, districts, ...")])
    try:
        spec = ProfileSpec.model_validate(data, context={"full": full})
    except ValidationError as exc:
        problems = [(tuple(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
        raise _fail(path, lines, problems) from None
    if not full:
        return CityProfile(path, spec, tuple(District(d.slug, d.name.model_dump(), d.boundary.model_dump(), d.weight)
                                             for d in spec.districts))
    problems, districts = _geometry_problems(spec)
    if problems:
        raise _fail(path, lines, problems)
    return CityProfile(path, spec, tuple(districts))


def resolve_path(path: Path) -> Path:
    """A relative profile path from the working directory, else from the source tree (cities/ ships beside it)."""
    if path.is_absolute() or path.exists():
        return path
    beside = Path(__file__).resolve().parent.parent / path
    return beside if beside.exists() else path


_light = False  # set by use_light_profiles(): cached_profile skips the geometry and calendar checks


def use_light_profiles() -> None:
    """This process loads profiles without the geometry and calendar checks (and their ~25 MB of
    libraries); it must have the file checked fully another way, e.g. check_profile_in_child."""
    global _light
    _light = True


def check_profile_in_child(path: Path) -> None:
    """Check the profile fully in a short-lived child process (its libraries leave with it);
    raises ProfileError with the child's explanation."""
    path = resolve_path(path)
    done = subprocess.run([sys.executable, "-m", "telemetry_shared.city", str(path)],  # noqa: S603 - our own module
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ProfileError(done.stderr.strip() or f"city profile {path}: the check failed ({done.returncode})")


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int, full: bool) -> CityProfile:
    return load_profile(path, full)


def cached_profile(path: Path) -> CityProfile:
    """load_profile, read again only when the file changes."""
    path = resolve_path(path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return _cached(str(path), mtime, not _light)


def check_devices(profile: CityProfile, devices: list[tuple[str, str]]) -> None:
    """Refuse (ProfileError) registered devices whose district the profile lacks: (id, district) pairs."""
    allowed = set(profile.slugs)
    stray = [(device, district) for device, district in devices if district not in allowed]
    if stray:
        shown = ", ".join(f"{device} in {district!r}" for device, district in stray[:10])
        more = f" and {len(stray) - 10} more" if len(stray) > 10 else ""
        raise ProfileError(f"{profile.path}: districts: the registry has devices in districts this profile lacks: "
                           f"{shown}{more}; allowed: {', '.join(profile.slugs)} (add the district to the profile "
                           f"or move the devices with `city device`)")


if __name__ == "__main__":  # python -m telemetry_shared.city PATH: check_profile_in_child's check
    try:
        load_profile(resolve_path(Path(sys.argv[1])))
    except ProfileError as error:
        sys.exit(str(error))
