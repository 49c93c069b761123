"""Which devices the city has: kinds and districts in the scenario's proportions,
ids like `wtr-bb-0001`, positions scattered round each district's centre.
Deterministic from the seed."""

import hashlib
import math
import random
from typing import Any

from fleetsim.scenario import KIND_PREFIX, ScenarioError

MAX_DEVICES = 100_000


def split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split total into whole parts proportional to weights (largest remainder)."""
    weight_sum = sum(weights.values())
    exact = {name: total * w / weight_sum for name, w in weights.items()}
    parts = {name: int(math.floor(x)) for name, x in exact.items()}
    leftover = total - sum(parts.values())
    by_remainder = sorted(weights, key=lambda name: (-(exact[name] - parts[name]), name))
    for name in by_remainder[:leftover]:
        parts[name] += 1
    return parts


def stable_unit(text: str) -> float:
    """A number in [0, 1) from text alone: the same on every run and machine."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def profile_of(scenario: dict[str, Any], device_id: str, kind: str) -> str:
    """A device's profile (household or commercial meter, hospital ward...), fixed by its id."""
    shares = scenario.get("profiles", {}).get(kind) or {"default": 1.0}
    pick = stable_unit("profile:" + device_id) * sum(shares.values())
    for name in sorted(shares):
        pick -= shares[name]
        if pick < 0:
            return name
    return sorted(shares)[-1]


def plan_fleet(scenario: dict[str, Any], devices: int, seed: int, tag: str = "") -> list[dict[str, Any]]:
    """Device specs {id, kind, district, lat, lon} for `devices` devices of the scenario.

    tag goes before the number (`wtr-bb-s0001`), so two fleets in one city never share an id.
    """
    if type(devices) is not int or not 0 < devices <= MAX_DEVICES:
        raise ScenarioError(f"devices must be 1..{MAX_DEVICES}, not {devices!r}")
    if not (tag == "" or (tag.isalnum() and tag.islower() and len(tag) <= 4)):
        raise ScenarioError(f"tag must be up to 4 lower-case letters or digits, not {tag!r}")
    districts = {d["slug"]: d for d in scenario["districts"]}
    district_weights = {slug: d["weight"] for slug, d in districts.items()}
    rng = random.Random(f"{seed}:positions")
    specs = []
    for kind, kind_count in split(devices, scenario["kinds"]).items():
        for slug, count in split(kind_count, district_weights).items():
            district = districts[slug]
            for n in range(1, count + 1):
                lat, lon = _scatter(rng, district)
                specs.append({"id": f"{KIND_PREFIX[kind]}-{district['abbrev']}-{tag}{n:04d}", "kind": kind,
                              "district": slug, "lat": lat, "lon": lon})
    return specs


def _scatter(rng: random.Random, district: dict[str, Any]) -> tuple[float, float]:
    """A spot inside the district's boundary ("ring", from the city profile) when it has one,
    else uniform over a disc of its radius round its centre."""
    ring = district.get("ring")
    if ring:
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        for _ in range(200):
            lon, lat = rng.uniform(min(lons), max(lons)), rng.uniform(min(lats), max(lats))
            if _inside(ring, lon, lat):
                return round(lat, 6), round(lon, 6)
        return district["lat"], district["lon"]  # a sliver of a district: its representative point
    return _disc(rng, district)


def _inside(ring: list[list[float]], x: float, y: float) -> bool:
    """Ray casting: is (x, y) inside the closed ring?"""
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _disc(rng: random.Random, district: dict[str, Any]) -> tuple[float, float]:
    # Uniform over a disc of the district's radius (1 degree of latitude is ~111 km).
    r_deg = district["radius_km"] / 111.0 * math.sqrt(rng.random())
    angle = rng.random() * 2 * math.pi
    lat = district["lat"] + r_deg * math.sin(angle)
    lon = district["lon"] + r_deg * math.cos(angle) / max(math.cos(math.radians(district["lat"])), 0.01)
    return round(lat, 6), round(lon, 6)
