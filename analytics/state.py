"""The analytics engine's learnt state on disk, so a restart does not blind it for two days.

What is kept (everything the engine learnt from the readings):
- per metric, the ring buffer (`SeriesBlock`) with its row keys, and the
  coarse history (`CoarseHistory`: closed bucket means and the open bucket);
- the minimum-night-flow history (`night_history`, `last_night`);
- per device, when it was last heard from and its kind and district;
- the open incidents and the hysteresis behind them (per metric, the peer
  checks and silence), so an alert open at a restart goes on under its own
  id and is cleared by the new engine when the series is normal again.
  Forgotten, it would stay active in the API's alert store for ever (nobody
  else clears it), and a fault still there would raise a second alert. If
  the fault ended while the engine was down, the first readings after the
  restart clear it, as they would have. An operator's acknowledgement or
  resolution in the store meanwhile is the store's business: the engine's
  later messages update the same alert id (version 1 files, without
  incidents, still load).

What is not kept, on purpose:
- The arrival delays of the clock series (`clock_lag_ms`). Messages the
  broker queued while the engine was down arrive late by the downtime, so a
  restored delay baseline would report every device's clock as jumped after
  each deploy. Their arrival times are kept (each device's pace, which the
  silence check needs); the delays are relearnt in `warmup` messages.
- Counters (they count this process's work).

Silence: a device's last-seen time is moved forward by the engine's downtime
(load time minus save time), so the time the engine was not listening never
counts as the device's silence, and a restart does not flag every device
whose readings the broker has not yet redelivered. A device that went quiet
before the restart is still reported once it has been silent for its
`silence_factor` intervals of watched time.

The file is one `numpy.savez` archive (no pickle: loaded with
allow_pickle=False; keys and small values as JSON text in a uint8 array),
written to a temporary file and renamed over the old one, so a crash while
saving leaves the previous checkpoint. A file that cannot be trusted
(corrupt, truncated, another format or version, shapes that do not add up) is
moved aside to `<name>.bad-<UTC stamp>` and the engine starts fresh.
"""

import json
import logging
import os
import re
import time
import zipfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.engine import CLOCK, AnalyticsEngine, Incident
from analytics.rules import Hysteresis
from edge import contract

log = logging.getLogger("analytics")

FORMAT = "city-analytics-state"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no incidents, no hysteresis
# The incident state's fields as stored: Hysteresis' own, its flags as bytes (DTYPES has no bool).
HYSTERESIS_FIELDS = {name: np.dtype("u1") if start is False else np.asarray(start).dtype
                     for name, start in Hysteresis.FIELDS.items()}
INCIDENT_TEXT = {"id": 200, "device": 64, "kind": 16, "district": 64, "metric": 64, "rule": 64, "severity": 16,
                 "opened_by": 100}
DTYPES = (np.dtype("<f8"), np.dtype("<i8"), np.dtype("u1"))  # every array in the file is one of these
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_META_BYTES = 256 * 1024 * 1024  # the JSON part: keys, last seen, info (about 100 bytes a series)


class StateError(Exception):
    """A state file that cannot be trusted; the message says why."""


def state_file(directory: Path, mqtt_user: str) -> Path:
    """The state file of one engine shard: `engine-<mqtt user>.npz` in `directory`."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", mqtt_user)[:100] or "engine"
    return Path(directory) / f"engine-{safe}.npz"


# ---------------------------------------------------------------- save


def save_state(engine: AnalyticsEngine, path: Path | str, now_ms: int | None = None) -> int:
    """Write the engine's learnt state to `path` atomically; returns the file's size in bytes.

    Call it from the thread that runs the engine (the engine is not thread-safe),
    after process(), so no reading waits unscored. Raises OSError when the file
    cannot be written (the previous checkpoint is then left as it was).
    """
    path = Path(path)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    arrays: dict[str, np.ndarray] = {}
    blocks = []
    for i, metric in enumerate(sorted(engine.blocks)):
        block = engine.blocks[metric]
        n = len(block.keys)
        arrays[f"b{i}_values"], arrays[f"b{i}_times"] = block.values[:n], block.times[:n]
        entry: dict[str, Any] = {"metric": metric, "keys": [list(key) for key in block.keys], "history": None}
        history = engine.history.get(metric)
        if history is not None:
            closed_rows, open_rows = len(history.closed.keys), min(history.open_bucket.size, n)
            arrays[f"h{i}_values"] = history.closed.values[:closed_rows]
            arrays[f"h{i}_times"] = history.closed.times[:closed_rows]
            arrays[f"h{i}_open_bucket"] = history.open_bucket[:open_rows]
            arrays[f"h{i}_sums"] = history.sums[:open_rows]
            entry["history"] = {"bucket_ms": history.bucket_ms}
        blocks.append(entry)
    arrays["night_history"] = engine.night_history
    states = sorted(key for key in engine.states if key != CLOCK)  # the clock's delays are not kept: nor its state
    for i, key in enumerate(states):
        arrays.update(_hysteresis_arrays(f"s{i}", engine.states[key]))
    arrays.update(_hysteresis_arrays("silence", engine.silence))
    meta = {"format": FORMAT, "version": VERSION, "saved_ms": now_ms, "blocks": blocks,
            "last_night": int(engine.last_night),
            "last_seen_ms": {device: int(t) for device, t in engine.last_seen_ms.items()},
            "info": {device: list(info) for device, info in engine.info.items()},
            "states": states, "silence_rows": dict(engine.silence_rows),
            "peer_scored": {metric: int(b) for metric, b in engine.peer_scored.items()},
            # A clock_offset incident too: its state is not kept, so the first reading after the restart
            # clears it rather than leaving it active in the alert store.
            "incidents": [_incident_json(key, incident) for key, incident in engine.incidents.items()]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return _write_atomically(path, arrays)


def _hysteresis_arrays(prefix: str, state: Hysteresis) -> dict[str, np.ndarray]:
    return {f"{prefix}_{name}": np.asarray(getattr(state, name)).astype(dtype)
            for name, dtype in HYSTERESIS_FIELDS.items()}


def _incident_json(key: tuple[str, str], incident: Incident) -> dict:
    fields = {name: getattr(incident, name) for name in INCIDENT_TEXT}
    return {"key": list(key), **fields, "started_ms": int(incident.started_ms),
            "published_ms": int(incident.published_ms), "score": float(incident.score),
            "metrics": sorted(incident.metrics)}


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:  # a file object: savez adds no ".npz" of its own
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return path.stat().st_size


# ---------------------------------------------------------------- load


def load_state(engine: AnalyticsEngine, path: Path | str, now_ms: int | None = None) -> bool:
    """Fill a fresh engine from `path`; True if it was loaded, False for a fresh start.

    A missing file is a fresh start. A file that cannot be trusted is logged,
    moved aside to `<name>.bad-<UTC stamp>` and is a fresh start too: the engine
    is either filled completely or left untouched. Buffers and histories saved
    with other sizes (e.g. CITY_ANALYTICS_BUFFER_SAMPLES changed between
    deploys) keep their newest samples that fit.
    """
    path = Path(path)
    if engine.blocks or engine.last_seen_ms:
        raise ValueError("load_state fills a fresh engine, before it ingests anything")
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # a save cut short by a kill: never the checkpoint
        stale.unlink(missing_ok=True)
    if not path.exists():
        return False
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        staged = _read(path, engine)
    except Exception as exc:  # noqa: BLE001 - whatever a bad file raises, the engine must start, fresh
        moved = _move_aside(path)
        log.warning("analytics state %s not loaded (%s: %s); starting fresh%s", path, type(exc).__name__,
                    str(exc)[:300], f", the file moved to {moved.name}" if moved else "")
        engine.counters["state_rejected"] += 1
        return False
    _apply(engine, staged, now_ms)
    log.info("analytics state loaded from %s: %d series of %d devices", path,
             sum(len(b.keys) for b in staged["blocks"].values()), len(staged["last_seen_ms"]))
    return True


def _move_aside(path: Path) -> Path | None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    try:
        os.replace(path, target)
    except OSError as exc:
        log.warning("could not move the bad state file %s aside: %s", path, exc)
        return None
    return target


def _apply(engine: AnalyticsEngine, staged: dict, now_ms: int) -> None:
    """Hand the checked state to the engine, all at once."""
    downtime_ms = max(0, now_ms - staged["saved_ms"])
    in_service = _in_service(engine, list(staged["last_seen_ms"]))
    incidents = {key: incident for key, incident in staged["incidents"].items() if key[0] in in_service}
    # A device already reported silent stays silent: its downtime is not moved off (see the docstring).
    silent = {key[0] for key in incidents if key[1] == "silent"}
    last_seen = {device: t + (0 if device in silent else downtime_ms)
                 for device, t in staged["last_seen_ms"].items() if device in in_service}
    engine.states = defaultdict(Hysteresis, staged["states"])
    engine.silence = staged["silence"]
    engine.silence_rows = staged["silence_rows"]
    engine.peer_scored = staged["peer_scored"]
    engine.incidents = incidents
    engine.blocks = staged["blocks"]
    engine.history = staged["history"]
    engine.night_history = staged["night_history"]
    engine.last_night = staged["last_night"]
    engine.last_seen_ms = last_seen
    engine.info = {device: info for device, info in staged["info"].items() if device in last_seen}


def _in_service(engine: AnalyticsEngine, devices: list[str]) -> set[str]:
    """The devices still registered and not retired: one retired meanwhile is not waited for (it would be
    reported silent after every restart). With the registry unreadable, all of them (pruned next time)."""
    try:
        return {d for d in devices if (device := engine.devices.get(d)) is not None and device.state != "retired"}
    except Exception as exc:  # noqa: BLE001 - the engine must start; the registry's failure shows on its own
        log.warning("analytics state: registry not readable (%s); keeping every device's last-seen time", exc)
        return set(devices)


def _read(path: Path, engine: AnalyticsEngine) -> dict:
    """The file's state, checked and fitted to the engine's sizes; raises StateError on anything wrong."""
    names = _check_members(path)
    with np.load(path, allow_pickle=False) as archive:
        if "meta" not in names:
            raise StateError("no meta member: not an analytics state file")
        meta = _meta(archive["meta"])
        blocks, history = {}, {}
        params = engine.params
        for i, entry in enumerate(meta["blocks"]):
            metric = entry["metric"]
            keys = [tuple(key) for key in entry["keys"]]
            values, times = _pair(archive, names, f"b{i}", len(keys))
            if metric == CLOCK:
                values = np.full(values.shape, np.nan)  # the delays are not kept (see the module's docstring)
            blocks[metric] = _block(params.buffer_samples, 64, keys, values, times)
            if entry["history"] is not None and metric != CLOCK and params.profile_days > 0:
                fitted = _history(archive, names, i, entry["history"], len(keys), engine)
                if fitted is not None:
                    history[metric] = fitted
        night = _night(archive, names, engine, blocks.get("flow_lps"))
        states = {}
        for i, key in enumerate(meta["states"]):
            metric = key.removeprefix("peer:")
            _expect(metric in blocks, f"state {key}: no such series")
            states[key] = _hysteresis(archive, names, f"s{i}", len(blocks[metric].keys))
        silence = _hysteresis(archive, names, "silence", None) if meta["version"] >= 2 else Hysteresis()
    return {"saved_ms": meta["saved_ms"], "blocks": blocks, "history": history, "night_history": night,
            "last_night": meta["last_night"], "last_seen_ms": meta["last_seen_ms"], "info": meta["info"],
            "states": states, "silence": silence, "silence_rows": meta["silence_rows"],
            "peer_scored": meta["peer_scored"], "incidents": meta["incidents"]}


def _hysteresis(archive, names: set[str], prefix: str, max_rows: int | None) -> Hysteresis:
    """One incident state: every field there, one row per series, of its type and in its range."""
    fields = {}
    for name, dtype in HYSTERESIS_FIELDS.items():
        if f"{prefix}_{name}" not in names:
            raise StateError(f"{prefix}: {name} missing")
        array = archive[f"{prefix}_{name}"]
        _expect(array.dtype == dtype and array.ndim == 1, f"{prefix}_{name}: type")
        fields[name] = array
    rows = fields["active"].size
    _expect(all(a.size == rows for a in fields.values()), f"{prefix}: fields of different lengths")
    _expect(max_rows is None or rows <= max(max_rows, 64), f"{prefix}: more rows than series")
    _expect((fields["active"] <= 1).all() and all((fields[n] >= 0).all() for n in ("calm", "pending", "held_for")),
            f"{prefix}: counters out of range")
    _expect(not any(np.isinf(fields[n]).any() for n in ("held_bias", "held_scale", "departure")),
            f"{prefix}: infinite values")
    state = Hysteresis()
    state.active = fields["active"].astype(bool)
    for name in HYSTERESIS_FIELDS:
        if name != "active":
            setattr(state, name, fields[name].copy())
    return state


def _check_members(path: Path) -> set[str]:
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


def _meta(raw: np.ndarray) -> dict:
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_META_BYTES:
        raise StateError("meta is not JSON text")
    meta = json.loads(raw.tobytes().decode())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateError("not an analytics state file")
    if meta.get("version") not in READABLE_VERSIONS:
        raise StateError(f"state version {meta.get('version')!r}; this engine reads versions {READABLE_VERSIONS}")
    _expect(_is_int(meta.get("saved_ms")) and _is_int(meta.get("last_night")), "saved_ms, last_night")
    blocks = meta.get("blocks")
    _expect(isinstance(blocks, list), "blocks")
    seen_metrics = set()
    for entry in blocks:
        _expect(isinstance(entry, dict) and isinstance(entry.get("metric"), str)
                and METRIC_NAME.match(entry["metric"]) and entry["metric"] not in seen_metrics, "a block's metric")
        seen_metrics.add(entry["metric"])
        keys = entry.get("keys")
        _expect(isinstance(keys, list) and all(isinstance(k, list) and len(k) == 1
                                               and contract.valid_device_id(k[0]) for k in keys),
                f"{entry['metric']}: keys (one device id each)")
        _expect(len({k[0] for k in keys}) == len(keys), f"{entry['metric']}: a device twice")
        history = entry.get("history")
        _expect(history is None or (isinstance(history, dict) and _is_int(history.get("bucket_ms"))
                                    and history["bucket_ms"] > 0), f"{entry['metric']}: history")
    last_seen = meta.get("last_seen_ms")
    _expect(isinstance(last_seen, dict) and all(contract.valid_device_id(d) and _is_int(t)
                                                for d, t in last_seen.items()), "last_seen_ms")
    info = meta.get("info")
    _expect(isinstance(info, dict) and all(
        contract.valid_device_id(d) and isinstance(v, list) and len(v) == 2 and all(isinstance(s, str) and len(s) <= 64
                                                                                    for s in v)
        for d, v in info.items()), "info")
    meta["info"] = {device: (kind, district) for device, (kind, district) in info.items()}
    states = meta.setdefault("states", [])
    _expect(isinstance(states, list) and len(set(states)) == len(states)
            and all(isinstance(k, str) and METRIC_NAME.match(k.removeprefix("peer:")) for k in states), "states")
    silence_rows = meta.setdefault("silence_rows", {})
    _expect(isinstance(silence_rows, dict) and all(contract.valid_device_id(d) and _is_int(r) and r >= 0
                                                   for d, r in silence_rows.items())
            and len(set(silence_rows.values())) == len(silence_rows), "silence_rows")
    peer_scored = meta.setdefault("peer_scored", {})
    _expect(isinstance(peer_scored, dict) and all(isinstance(m, str) and METRIC_NAME.match(m) and _is_int(b)
                                                  for m, b in peer_scored.items()), "peer_scored")
    incidents = meta.setdefault("incidents", [])
    _expect(isinstance(incidents, list), "incidents")
    meta["incidents"] = dict(_incident(entry) for entry in incidents)
    return meta


def _incident(entry: Any) -> tuple[tuple[str, str], Incident]:
    _expect(isinstance(entry, dict), "an incident")
    key = entry.get("key")
    _expect(isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) and len(k) <= 64 for k in key)
            and contract.valid_device_id(key[0]) and key[0] == entry.get("device"), "an incident's key")
    for name, limit in INCIDENT_TEXT.items():
        _expect(isinstance(entry.get(name), str) and len(entry[name]) <= limit, f"an incident's {name}")
    _expect(_is_int(entry.get("started_ms")) and _is_int(entry.get("published_ms")), "an incident's times")
    _expect(type(entry.get("score")) in (int, float) and 0 <= entry["score"] <= 1, "an incident's score")
    metrics = entry.get("metrics")
    _expect(isinstance(metrics, list) and len(metrics) <= 64
            and all(isinstance(m, str) and len(m) <= 100 for m in metrics), "an incident's metrics")
    fields = {name: entry[name] for name in INCIDENT_TEXT}
    return (key[0], key[1]), Incident(**fields, started_ms=entry["started_ms"], published_ms=entry["published_ms"],
                                      score=float(entry["score"]), metrics=set(metrics))


def _expect(condition: Any, what: str) -> None:
    if not condition:
        raise StateError(f"bad {what}")


def _is_int(value: Any) -> bool:
    return type(value) is int and -(2**62) < value < 2**62


def _pair(archive, names: set[str], prefix: str, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A (values, times) pair of one block: same shape, float and int, times never decreasing along a row."""
    if f"{prefix}_values" not in names or f"{prefix}_times" not in names:
        raise StateError(f"{prefix}: arrays missing")
    values, times = archive[f"{prefix}_values"], archive[f"{prefix}_times"]
    _expect(values.dtype == np.float64 and times.dtype == np.int64 and values.ndim == 2
            and values.shape == times.shape and values.shape[1] >= 1, f"{prefix}: array shapes or types")
    _expect(rows is None or values.shape[0] == rows, f"{prefix}: {values.shape[0]} rows for {rows} keys")
    _expect(not np.isinf(values).any(), f"{prefix}: infinite values")
    _expect((times[:, :1] >= 0).all() and (times[:, 1:] >= times[:, :-1]).all(), f"{prefix}: times out of order")
    return values, times


def _block(capacity: int, initial_rows: int, keys: list[tuple], values: np.ndarray, times: np.ndarray) -> SeriesBlock:
    """A SeriesBlock of `capacity` holding these rows' newest samples (right-aligned, as SeriesBlock keeps them)."""
    block = SeriesBlock(capacity, initial_rows)
    rows, keep = len(keys), min(capacity, values.shape[1])
    allocated = max(initial_rows, rows)  # the next new series grows the block by doubling, as usual
    if values.shape == (allocated, capacity):  # the arrays as loaded are the block's: no second copy in memory
        block.values, block.times = values, times
    else:
        block.values = np.full((allocated, capacity), np.nan)
        block.times = np.zeros((allocated, capacity), dtype=np.int64)
        block.values[:rows, capacity - keep:] = values[:, values.shape[1] - keep:]
        block.times[:rows, capacity - keep:] = times[:, times.shape[1] - keep:]
    block.keys = list(keys)
    block.row_of = {key: row for row, key in enumerate(block.keys)}
    return block


def _history(archive, names: set[str], i: int, saved: dict, fine_rows: int,
             engine: AnalyticsEngine) -> CoarseHistory | None:
    params = engine.params
    if saved["bucket_ms"] != params.profile_bucket_ms:
        log.warning("analytics state: the coarse history was kept in %d ms buckets, now %d ms: relearnt",
                    saved["bucket_ms"], params.profile_bucket_ms)
        return None
    values, times = _pair(archive, names, f"h{i}", None)
    _expect(values.shape[0] <= fine_rows, f"h{i}: more rows than its block")
    if f"h{i}_open_bucket" not in names or f"h{i}_sums" not in names:
        raise StateError(f"h{i}: open buckets missing")
    open_bucket, sums = archive[f"h{i}_open_bucket"], archive[f"h{i}_sums"]
    open_rows = open_bucket.shape[0] if open_bucket.ndim == 1 else -1
    _expect(open_bucket.dtype == np.int64 and sums.dtype == np.float64 and 0 <= open_rows <= fine_rows
            and sums.shape == (open_rows, 3) and np.isfinite(sums).all() and (open_bucket >= -1).all(),
            f"h{i}: open buckets")
    capacity = params.profile_days * 86_400_000 // params.profile_bucket_ms
    history = CoarseHistory(params.profile_bucket_ms, capacity)
    history.closed = _block(capacity, 4, [(row,) for row in range(values.shape[0])], values, times)
    history.open_bucket, history.sums = open_bucket.copy(), sums.copy()
    return history


def _night(archive, names: set[str], engine: AnalyticsEngine, flow: SeriesBlock | None) -> np.ndarray:
    """The night-flow minima (rows of flow_lps, oldest night first), fitted to this engine's night_history."""
    width = engine.night_history.shape[1]
    if "night_history" not in names:
        raise StateError("night_history missing")
    saved = archive["night_history"]
    _expect(saved.dtype == np.float64 and saved.ndim == 2 and saved.shape[1] >= 1, "night_history")
    _expect(saved.shape[0] <= (len(flow.keys) if flow is not None else 0), "night_history: more rows than meters")
    fitted = np.full((saved.shape[0], width), np.nan)
    keep = min(width, saved.shape[1])
    fitted[:, width - keep:] = saved[:, saved.shape[1] - keep:]
    return fitted
