"""The analytics state file's format, and the checks that an untrusted one must pass before it is loaded.

A state file (analytics.state) is one `numpy.savez` archive of plain arrays
and a JSON `meta` member. Whoever can write the state folder can hand the
engine any file: every member must be a stored (uncompressed) .npy array of
an allowed dtype whose header matches its size (no pickle, no zip bomb, no
header promising more than it holds), and every key, count and time must
add up. Anything else raises StateError, and the file is moved aside.
"""

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from analytics.incidents import Incident
from analytics.rules import Hysteresis
from edge import contract

FORMAT = "city-analytics-state"
VERSION = 7
# version 1: no incidents, no hysteresis; 1 and 2: the arrivals as a metric; 1 to 3: the coarse history as
# (value, time) pairs of every closed bucket in float64 and int64 (version 4: two tiers of float32 rings); version 5:
# the large arrays as row chunks beside the file (analytics.statechunks); version 6: the profile's tiers cut by
# columns too (a manifest entry's "cols"), which an engine reading up to version 5 would refuse as a bad manifest;
# version 7: the ring buffers as a base and its tails (analytics.statetails), which an engine reading up to
# version 6 would load as the stale base alone: it refuses the file instead
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7)
LEGACY_ARRIVALS = "clock_lag_ms"  # the name of the arrivals block among the metrics, in versions 1 and 2
# The incident state's fields as stored: Hysteresis' own, its flags as bytes (DTYPES has no bool).
HYSTERESIS_FIELDS = {name: np.dtype("u1") if start is False else np.asarray(start).dtype
                     for name, start in Hysteresis.FIELDS.items()}
INCIDENT_TEXT = {"id": 200, "device": 64, "kind": 16, "district": 64, "metric": 64, "rule": 64, "severity": 16,
                 "opened_by": 100}
DTYPES = (np.dtype("<f8"), np.dtype("<f4"), np.dtype("<i8"), np.dtype("u1"))  # every array in the file is one of these
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_META_BYTES = 256 * 1024 * 1024  # the JSON part: keys, last seen, info (about 100 bytes a series)


class StateError(Exception):
    """A state file that cannot be trusted; the message says why."""


def read_hysteresis(archive, names: set[str], prefix: str, max_rows: int | None) -> Hysteresis:
    """One incident state: every field there, one row per series, of its type and in its range."""
    fields = {}
    for name, dtype in HYSTERESIS_FIELDS.items():
        if f"{prefix}_{name}" not in names:
            raise StateError(f"{prefix}: {name} missing")
        array = archive[f"{prefix}_{name}"]
        expect(array.dtype == dtype and array.ndim == 1, f"{prefix}_{name}: type")
        fields[name] = array
    rows = fields["active"].size
    expect(all(a.size == rows for a in fields.values()), f"{prefix}: fields of different lengths")
    expect(max_rows is None or rows <= max(max_rows, 64), f"{prefix}: more rows than series")
    expect((fields["active"] <= 1).all() and all((fields[n] >= 0).all() for n in ("calm", "pending", "held_for")),
            f"{prefix}: counters out of range")
    expect(not any(np.isinf(fields[n]).any() for n in ("held_bias", "held_scale", "departure")),
            f"{prefix}: infinite values")
    state = Hysteresis()
    state.active = fields["active"].astype(bool)
    for name in HYSTERESIS_FIELDS:
        if name != "active":
            setattr(state, name, fields[name].copy())
    return state


def check_members(path: Path) -> set[str]:
    """Every member a plain, uncompressed .npy of an allowed dtype whose header matches its size.

    numpy.savez stores its members uncompressed, so no member can unpack to
    more than the file holds (no zip bomb), and no header can promise an array
    larger than its data.
    """
    names = set()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy") or info.compress_type != zipfile.ZIP_STORED:
                raise StateError(f"member {info.filename[:60]!r} is not a stored .npy array")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise StateError(f"member {info.filename[:60]!r}: .npy version {version}")
                if dtype not in DTYPES or fortran:
                    raise StateError(f"member {info.filename[:60]!r}: dtype {dtype}, fortran order {fortran}")
                size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if member.tell() + size != info.file_size:
                    raise StateError(f"member {info.filename[:60]!r}: its header says {shape}, its data differs")
            names.add(info.filename[:-4])
    return names


def read_meta(raw: np.ndarray) -> dict:
    """The `meta` member (JSON text as uint8): format, version, keys and tables, every one checked."""
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_META_BYTES:
        raise StateError("meta is not JSON text")
    meta = json.loads(raw.tobytes().decode())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateError("not an analytics state file")
    if meta.get("version") not in READABLE_VERSIONS:
        raise StateError(f"state version {meta.get('version')!r}; this engine reads versions {READABLE_VERSIONS}")
    expect(is_int(meta.get("saved_ms")) and is_int(meta.get("last_night")), "saved_ms, last_night")
    blocks = meta.get("blocks")
    expect(isinstance(blocks, list), "blocks")
    seen_metrics = set()
    for entry in blocks:
        expect(isinstance(entry, dict) and isinstance(entry.get("metric"), str)
                and METRIC_NAME.match(entry["metric"]) and entry["metric"] not in seen_metrics, "a block's metric")
        seen_metrics.add(entry["metric"])
        keys = entry.get("keys")
        expect(isinstance(keys, list) and all(isinstance(k, list) and len(k) == 1
                                               and contract.valid_device_id(k[0]) for k in keys),
                f"{entry['metric']}: keys (one device id each)")
        expect(len({k[0] for k in keys}) == len(keys), f"{entry['metric']}: a device twice")
        history = entry.get("history")
        expect(history is None or (isinstance(history, dict) and is_int(history.get("bucket_ms"))
                                    and history["bucket_ms"] > 0), f"{entry['metric']}: history")
    arrivals = meta.setdefault("arrivals", [])
    expect(isinstance(arrivals, list) and all(contract.valid_device_id(d) for d in arrivals)
            and len(set(arrivals)) == len(arrivals), "arrivals (one device id each)")
    last_seen = meta.get("last_seen_ms")
    expect(isinstance(last_seen, dict) and all(contract.valid_device_id(d) and is_int(t)
                                                for d, t in last_seen.items()), "last_seen_ms")
    info = meta.get("info")
    expect(isinstance(info, dict) and all(
        contract.valid_device_id(d) and isinstance(v, list) and len(v) == 2 and all(isinstance(s, str) and len(s) <= 64
                                                                                    for s in v)
        for d, v in info.items()), "info")
    meta["info"] = {device: (kind, district) for device, (kind, district) in info.items()}
    states = meta.setdefault("states", [])
    expect(isinstance(states, list) and len(set(states)) == len(states)
            and all(isinstance(k, str) and METRIC_NAME.match(k.removeprefix("peer:")) for k in states), "states")
    silence_rows = meta.setdefault("silence_rows", {})
    expect(isinstance(silence_rows, dict) and all(contract.valid_device_id(d) and is_int(r) and r >= 0
                                                   for d, r in silence_rows.items())
            and len(set(silence_rows.values())) == len(silence_rows), "silence_rows")
    peer_scored = meta.setdefault("peer_scored", {})
    expect(isinstance(peer_scored, dict) and all(isinstance(m, str) and METRIC_NAME.match(m) and is_int(b)
                                                  for m, b in peer_scored.items()), "peer_scored")
    incidents = meta.setdefault("incidents", [])
    expect(isinstance(incidents, list), "incidents")
    meta["incidents"] = dict(read_incident(entry) for entry in incidents)
    return meta


def read_incident(entry: Any) -> tuple[tuple[str, str], Incident]:
    """One open incident from its JSON: (its key, the Incident)."""
    expect(isinstance(entry, dict), "an incident")
    key = entry.get("key")
    expect(isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) and len(k) <= 64 for k in key)
            and contract.valid_device_id(key[0]) and key[0] == entry.get("device"), "an incident's key")
    for name, limit in INCIDENT_TEXT.items():
        expect(isinstance(entry.get(name), str) and len(entry[name]) <= limit, f"an incident's {name}")
    expect(is_int(entry.get("started_ms")) and is_int(entry.get("published_ms")), "an incident's times")
    expect(type(entry.get("score")) in (int, float) and 0 <= entry["score"] <= 1, "an incident's score")
    metrics = entry.get("metrics")
    expect(isinstance(metrics, list) and len(metrics) <= 64
            and all(isinstance(m, str) and len(m) <= 100 for m in metrics), "an incident's metrics")
    fields = {name: entry[name] for name in INCIDENT_TEXT}
    return (key[0], key[1]), Incident(**fields, started_ms=entry["started_ms"], published_ms=entry["published_ms"],
                                      score=float(entry["score"]), metrics=set(metrics))


def expect(condition: Any, what: str) -> None:
    """Raise StateError('bad <what>') unless `condition` holds."""
    if not condition:
        raise StateError(f"bad {what}")


def is_int(value: Any) -> bool:
    """A JSON integer (not a bool, not a float) far from int64's limits."""
    return type(value) is int and -(2**62) < value < 2**62


def read_pair(archive, names: set[str], prefix: str, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A (values, times) pair of one block: same shape, float and int, times never decreasing along a row."""
    if f"{prefix}_values" not in names or f"{prefix}_times" not in names:
        raise StateError(f"{prefix}: arrays missing")
    return check_pair(archive[f"{prefix}_values"], archive[f"{prefix}_times"], prefix, rows)


def check_pair(values: np.ndarray, times: np.ndarray, prefix: str, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """read_pair's checks of arrays already read."""
    times = check_times(times, f"{prefix}_times", rows)
    expect(values.dtype == np.float64 and values.shape == times.shape, f"{prefix}: array shapes or types")
    expect(not np.isinf(values).any(), f"{prefix}: infinite values")
    return values, times


def read_times(archive, names: set[str], name: str, rows: int | None) -> np.ndarray:
    """A (rows, samples) int64 array of times, never decreasing along a row."""
    if name not in names:
        raise StateError(f"{name} missing")
    return check_times(archive[name], name, rows)


def check_times(times: np.ndarray, name: str, rows: int | None) -> np.ndarray:
    """read_times' checks of an array already read."""
    expect(times.dtype == np.int64 and times.ndim == 2 and times.shape[1] >= 1, f"{name}: shape or type")
    expect(rows is None or times.shape[0] == rows, f"{name}: {times.shape[0]} rows for {rows} keys")
    expect((times[:, :1] >= 0).all() and (times[:, 1:] >= times[:, :-1]).all(), f"{name}: times out of order")
    return times
