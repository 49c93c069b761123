"""Scenario files: the city's districts, the device mix, daily curves in local
time and the faults to inject. Validated once on load, with errors that name
the key, so a typo in a scenario never becomes a silent zero."""

import json
import math
from pathlib import Path
from typing import Any

from edge import contract

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "city.json"
MAX_SCENARIO_BYTES = 1_000_000
FAULT_NAMES = ("leak", "burst", "outage", "voltage_sag", "voltage_swell", "tampering", "hvac_failure",
               "co2_buildup", "incident", "congestion", "stuck", "drift", "silent", "clock_skew", "malformed")
CURVES = ("water_demand", "household_load", "commercial_load", "traffic_flow", "occupancy", "outdoor_temp_c",
          "ward_admissions")
KIND_PREFIX = {"water": "wtr", "power": "pwr", "building": "bld", "traffic": "trf"}


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the offending key."""


def load_scenario(path: Path | str = DEFAULT_SCENARIO, city: Any = None) -> dict[str, Any]:
    """A scenario file, with what it leaves out (districts, time zone, grid) from the city profile:
    `city` (a telemetry_shared.city.CityProfile), by default the configured one (CITY_PROFILE)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)  # bounded: a device file or a huge file cannot exhaust memory
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from exc
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"scenario {path} has more than {MAX_SCENARIO_BYTES} bytes")
    try:
        scenario = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ScenarioError(f"scenario {path} is not valid JSON: {exc}") from exc
    if isinstance(scenario, dict):
        scenario = with_city(scenario, city)
    return validate_scenario(scenario)


def with_city(scenario: dict[str, Any], city: Any = None) -> dict[str, Any]:
    """The scenario with the city profile's districts (a device spot inside each boundary), local time,
    grid nominal values and days off, where the scenario does not set its own."""
    if city is None:
        from telemetry_shared.settings import get_settings

        city = get_settings().city
    out = dict(scenario)
    if "districts" not in out:
        out["districts"] = _districts_of(city)
    out.setdefault("utc_offset_hours", city.utc_offset_hours)
    out.setdefault("grid", {"nominal_voltage_v": city.grid.nominal_voltage_v,
                            "nominal_frequency_hz": city.grid.nominal_frequency_hz})
    out.setdefault("rest_weekdays", list(city.rest_weekdays()))
    if "days_off" not in out:  # public holidays and the city's own days: demand as on a weekend
        import datetime

        span = (datetime.date(2020, 1, 1), datetime.date(2035, 12, 31))
        out["days_off"] = list(city.calendar_params(*span)["days_off"])
    return out


def _districts_of(city: Any) -> list[dict[str, Any]]:
    districts, used = [], set()
    for district in city.districts:
        words = district.slug.split("-")
        abbrev = "".join(w[0] for w in words if w)[:6]
        if abbrev in used or len(words) == 1:
            abbrev = district.slug.replace("-", "")[:4]
        while abbrev in used:
            abbrev = abbrev[:3] + str(len(used))
        used.add(abbrev)
        geometry = district.geometry
        inside = geometry.representative_point()
        polygon = max(getattr(geometry, "geoms", [geometry]), key=lambda g: g.area)
        area_km2 = geometry.area * 111.0 * 111.0 * max(math.cos(math.radians(inside.y)), 0.01)
        districts.append({"slug": district.slug, "abbrev": abbrev, "lat": round(inside.y, 6),
                          "lon": round(inside.x, 6), "radius_km": round(min(100.0, math.sqrt(area_km2)), 3),
                          "weight": district.weight or round(math.sqrt(area_km2), 3) or 1.0,
                          "ring": [list(p) for p in polygon.exterior.coords]})
    return districts


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _require(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ScenarioError(f"scenario key {key!r}: {problem}")


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def validate_scenario(scenario: Any) -> dict[str, Any]:
    """Check a parsed scenario; returns it unchanged or raises ScenarioError."""
    _require(isinstance(scenario, dict), "<root>", "must be an object")
    interval = scenario.get("interval_s")
    _require(_is_number(interval) and 1 <= interval <= 86400, "interval_s", "must be a number of seconds, 1..86400")
    offset = scenario.get("utc_offset_hours", 0)
    _require(_is_number(offset) and -14 <= offset <= 14, "utc_offset_hours", "must be -14..14")
    _check_districts(scenario.get("districts"))
    _check_shares(scenario.get("kinds"), "kinds", set(contract.KINDS))
    profiles = scenario.get("profiles", {})
    _require(isinstance(profiles, dict), "profiles", "must be an object")
    for kind, shares in profiles.items():
        _require(kind in contract.KINDS, f"profiles.{kind}", "is not a device kind")
        _check_shares(shares, f"profiles.{kind}", None)
    curves = scenario.get("curves")
    _require(isinstance(curves, dict), "curves", "must be an object")
    for name in CURVES:
        curve = curves.get(name)
        _require(isinstance(curve, list) and len(curve) == 24 and all(_is_number(v) for v in curve),
                 f"curves.{name}", "must be 24 hourly numbers")
    horizon = scenario.get("fault_horizon_hours", 24)
    _require(_is_number(horizon) and 0 < horizon <= 24 * 35, "fault_horizon_hours", "must be 0..840")
    _check_faults(scenario.get("faults", {}))
    return scenario


def _check_districts(districts: Any) -> None:
    _require(isinstance(districts, list) and 0 < len(districts) <= 100, "districts", "must be a list of 1..100")
    seen = set()
    for i, district in enumerate(districts):
        key = f"districts[{i}]"
        _require(isinstance(district, dict), key, "must be an object")
        slug, abbrev = district.get("slug"), district.get("abbrev")
        _require(contract.valid_device_id(slug), f"{key}.slug", "must be 3..32 of a-z 0-9 -")
        _require(isinstance(abbrev, str) and 1 <= len(abbrev) <= 6 and abbrev.isalnum() and abbrev.islower(),
                 f"{key}.abbrev", "must be 1..6 lower-case letters or digits")
        _require(abbrev not in seen, f"{key}.abbrev", f"{abbrev!r} is used twice")
        seen.add(abbrev)
        for field, lo, hi in (("lat", -90, 90), ("lon", -180, 180), ("radius_km", 0, 100), ("weight", 0, 1e6)):
            value = district.get(field)
            _require(_is_number(value) and lo <= value <= hi, f"{key}.{field}", f"must be a number in {lo}..{hi}")


def _check_shares(shares: Any, key: str, allowed: set[str] | None) -> None:
    _require(isinstance(shares, dict) and shares, key, "must be a non-empty object of shares")
    for name, share in shares.items():
        _require(allowed is None or name in allowed, f"{key}.{name}", "is not a device kind")
        _require(_is_number(share) and share >= 0, f"{key}.{name}", "must be a share >= 0")
    _require(sum(shares.values()) > 0, key, "shares must not all be zero")


def _check_faults(faults: Any) -> None:
    _require(isinstance(faults, dict), "faults", "must be an object")
    for name, spec in faults.items():
        key = f"faults.{name}"
        _require(name in FAULT_NAMES, key, f"unknown fault; known: {', '.join(FAULT_NAMES)}")
        _require(isinstance(spec, dict), key, "must be an object")
        kinds = spec.get("kinds")
        _require(isinstance(kinds, list) and kinds and all(k in contract.KINDS for k in kinds), f"{key}.kinds",
                 "must list device kinds")
        _require(_is_number(spec.get("share")) and 0 <= spec["share"] <= 1, f"{key}.share", "must be 0..1")
        _require(type(spec.get("min", 0)) is int and 0 <= spec.get("min", 0) <= 1000, f"{key}.min", "must be 0..1000")
        minutes = spec.get("minutes")
        _require(isinstance(minutes, list) and len(minutes) == 2 and all(_is_number(m) for m in minutes)
                 and 0 < minutes[0] <= minutes[1] <= 60 * 24 * 35, f"{key}.minutes", "must be [low, high] minutes")


def local_hour(scenario: dict[str, Any], t_ms: int) -> float:
    """Hours since local midnight (0..24) at UTC time t_ms."""
    offset_ms = scenario.get("utc_offset_hours", 0) * 3_600_000
    return ((t_ms + offset_ms) % 86_400_000) / 3_600_000


def curve_at(curve: list[float], hour: float) -> float:
    """The hourly curve interpolated linearly, wrapping round midnight."""
    i = int(hour) % 24
    frac = hour - int(hour)
    return curve[i] + (curve[(i + 1) % 24] - curve[i]) * frac
