"""The analytics engine's learnt state on disk, so a restart does not blind it for two days.

What is kept: the engine's `LearntState` (analytics.learnt), whole:
- per metric, the ring buffer (`SeriesBlock`) with its row keys, and the
  coarse history (`CoarseHistory`: closed bucket means and the open bucket);
- per device, its messages' arrival times (its pace, which the silence
  check needs), when it was last heard from and its kind and district;
- the minimum-night-flow history (`night_history`, `last_night`);
- the open incidents and the hysteresis behind them (per metric, the peer
  checks and silence), so an alert open at a restart goes on under its own
  id and is cleared by the new engine when the series is normal again.
  Forgotten, it would stay active in the API's alert store for ever (nobody
  else clears it), and a fault still there would raise a second alert. If
  the fault ended while the engine was down, the first readings after the
  restart clear it, as they would have. An operator's acknowledgement or
  resolution in the store meanwhile is the store's business: the engine's
  later messages update the same alert id.

What is not kept, on purpose:
- The arrival delays beside the arrival times (the clock scorer's evidence,
  analytics.clock). Messages the broker queued while the engine was down
  arrive late by the downtime, so a restored delay baseline would report
  every device's clock as jumped after each deploy; the delays are relearnt
  in `warmup` messages.
- What the engine holds between two passes only (readings waiting to be
  scored, the clock scorer's hysteresis) and its counters: saved after
  process(), there is nothing waiting.

Older files: version 2 (and version 1, without incidents) kept the arrivals
as a block named `clock_lag_ms` among the metrics; they load, that block's
times becoming the arrivals. Version 3 files are not readable by the
engines before it (they move them aside and start fresh).

Silence: a device's last-seen time is moved forward by the engine's downtime
(load time minus save time), so the time the engine was not listening never
counts as the device's silence, and a restart does not flag every device
whose readings the broker has not yet redelivered. A device that went quiet
before the restart is still reported once it has been silent for its
`silence_factor` intervals of watched time.

The file is one `numpy.savez` archive (no pickle: loaded with
allow_pickle=False; keys and small values as JSON text in a uint8 array),
written to a temporary file and renamed over the old one, so a crash while
saving leaves the previous checkpoint. Since version 5 its large (series x
samples) arrays are row chunks in `engine-<user>.chunks/` beside it, named
by their digest: a save writes only the chunks that changed, and the old
ones are deleted only once the new file naming the new ones is in place
(analytics.statechunks); since version 6 the profile's rings are cut by
columns too, since version 7 the ring buffers are saved as the chunks an
earlier save wrote (their base) and the samples appended since (their
tails, analytics.statetails). A file that cannot be trusted
(corrupt, truncated, another format or version, shapes that do not add up) is
moved aside to `<name>.bad-<UTC stamp>` and the engine starts fresh.
"""

import copy
import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.detectors.stream import StreamState
from analytics.engine import AnalyticsEngine
from analytics.incidents import Incident
from analytics.learnt import LearntState, new_history
from analytics.rules import Hysteresis
from analytics.shards import adopt
from analytics.statechunks import MANIFEST, ChunkedArchive, chunk_dir, manifest_member, prune, write_chunks
from analytics.statefile import (
    FORMAT,
    HYSTERESIS_FIELDS,
    INCIDENT_TEXT,
    LEGACY_ARRIVALS,
    VERSION,
    StateError,
    check_members,
    check_pair,
    check_times,
    expect,
    is_int,
    read_hysteresis,
    read_meta,
    read_pair,
    read_times,
)
from analytics.statetails import join, previous_bases, split

log = logging.getLogger("analytics")

def state_file(directory: Path, mqtt_user: str) -> Path:
    """The state file of one engine shard: `engine-<mqtt user>.npz` in `directory`."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", mqtt_user)[:100] or "engine"
    return Path(directory) / f"engine-{safe}.npz"


# ---------------------------------------------------------------- save


def save_state(learnt: LearntState, path: Path | str, now_ms: int | None = None, report: dict | None = None) -> int:
    """Write an engine's learnt state (`engine.learnt`) to `path` atomically; returns the state's size in bytes
    (the file and its chunks). Only the chunks that changed since the last save are written
    (analytics.statechunks); `report`, if given, gets "written" (bytes written by this save) and "size".

    Call it from the thread that runs the engine (the engine is not thread-safe),
    after process(), so no reading waits unscored. now_ms: the save's time
    (default: now), from which a load measures the engine's downtime. Raises
    OSError when the file cannot be written (the previous checkpoint is then
    left as it was).
    """
    path = Path(path)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    arrays: dict[str, np.ndarray] = {}
    blocks = []
    # The ring buffers as the bases the previous file holds and the samples appended since (statetails).
    bases, kept, lineages = previous_bases(path), {}, {}

    def buffer(prefix: str, block: SeriesBlock, with_values: bool) -> None:
        n = len(block.keys)
        times, values = block.times[:n], block.values[:n] if with_values else None
        arrays[f"{prefix}_times"] = times
        if values is not None:
            arrays[f"{prefix}_values"] = values
        kept_here, members = split(prefix, times, values, block.appended, bases.get(block.lineage), chunk_dir(path))
        arrays.update(members)
        kept.update(kept_here)
        lineages[f"{prefix}_times"] = block.lineage

    for i, metric in enumerate(sorted(learnt.blocks)):
        block = learnt.blocks[metric]
        n = len(block.keys)
        buffer(f"b{i}", block, with_values=True)
        entry: dict[str, Any] = {"metric": metric, "keys": [list(key) for key in block.keys], "history": None}
        history = learnt.history.get(metric)
        if history is not None:
            rows = min(history.rows, n)
            for name in CoarseHistory.ARRAYS:
                arrays[f"h{i}_{name}"] = getattr(history, name)[:rows]
            entry["history"] = {"bucket_ms": history.bucket_ms, "coarse_ms": history.coarse_ms,
                                "buckets": history.capacity, "fine_buckets": history.fine_capacity}
        stream = learnt.streams.get(metric)
        if stream is not None:
            arrays.update(_stream_arrays(f"d{i}", stream, n))
            entry["stream"] = {"periods": stream.periods, "hold": stream.hold,
                               "errors": [errors is not None for errors in stream.errors]}
        blocks.append(entry)
    arrivals = learnt.arrivals
    buffer("arrivals", arrivals, with_values=False)  # the times only: the delays are not kept
    arrays["night_history"] = learnt.night_history
    states = sorted(learnt.states)
    for i, key in enumerate(states):
        arrays.update(_hysteresis_arrays(f"s{i}", learnt.states[key]))
    arrays.update(_hysteresis_arrays("silence", learnt.silence))
    meta = {"format": FORMAT, "version": VERSION, "saved_ms": now_ms, "blocks": blocks,
            "arrivals": [key[0] for key in arrivals.keys],
            "last_night": int(learnt.last_night),
            "last_seen_ms": {device: int(t) for device, t in learnt.last_seen_ms.items()},
            "info": {device: list(info) for device, info in learnt.info.items()},
            "states": states, "silence_rows": dict(learnt.silence_rows),
            "peer_scored": {metric: int(b) for metric, b in learnt.peer_scored.items()},
            # A clock_offset incident too: the clock's hysteresis is not kept, so the first live message
            # after the restart clears it rather than leaving it active in the alert store.
            "incidents": [_incident_json(key, incident) for key, incident in learnt.incidents.items()]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    # The profile's tiers are rings indexed by the bucket's number: every series writes the same columns.
    tiled = {f"h{i}_{name}" for i in range(len(blocks)) for name in ("fine", "coarse")}
    small, manifest, written = write_chunks(arrays, path, tiled, kept)
    for name, lineage in lineages.items():
        if name in manifest:  # chunked: the next save can take its chunks as the base
            manifest[name]["lineage"] = lineage
    small[MANIFEST] = manifest_member(manifest)
    size = _write_atomically(path, small)
    size += prune(path, manifest)  # only now: until the rename, the old file's chunks are its checkpoint
    if report is not None:
        report.update(written=written + path.stat().st_size, size=size)
    return size


def snapshot(learnt: LearntState) -> LearntState:
    """A copy of `learnt` that the engine's later passes cannot change, for save_state on another thread.

    Take it on the thread that runs the engine, between passes: it copies the
    arrays in use (a memory copy, a fraction of a save's time), so scoring
    pauses only for the copy while the file is written beside the stream.
    Holds as much memory as the state again until the save is done.
    """
    return replace(
        learnt, blocks={metric: _frozen_block(block) for metric, block in learnt.blocks.items()},
        arrivals=_frozen_block(learnt.arrivals),
        history={metric: _frozen_history(history) for metric, history in learnt.history.items()},
        states=defaultdict(Hysteresis, {key: _frozen_hysteresis(state) for key, state in learnt.states.items()}),
        silence=_frozen_hysteresis(learnt.silence), silence_rows=dict(learnt.silence_rows),
        incidents={key: replace(incident, metrics=set(incident.metrics)) for key, incident in learnt.incidents.items()},
        last_seen_ms=dict(learnt.last_seen_ms), info=dict(learnt.info), night_history=learnt.night_history.copy(),
        peer_scored=dict(learnt.peer_scored), streams={metric: s.copy() for metric, s in learnt.streams.items()})


def _stream_arrays(prefix: str, stream: StreamState, n: int) -> dict[str, np.ndarray]:
    """The detectors' state of one block's first n rows (fewer where it has fewer)."""
    rows = min(stream.rows, n)
    arrays = {f"{prefix}_{name}": array[:rows] for name, array in stream.arrays.items()}
    for p, errors in enumerate(stream.errors):
        if errors is not None:
            arrays[f"{prefix}_errors{p}"] = errors[:rows]
    return arrays


def _frozen_block(block: SeriesBlock) -> SeriesBlock:
    frozen = copy.copy(block)
    n = len(block.keys)
    frozen.values, frozen.times = block.values[:n].copy(), block.times[:n].copy()
    frozen.appended = block.appended[:n].copy()
    frozen.keys, frozen.row_of = list(block.keys), dict(block.row_of)
    return frozen


def _frozen_history(history: CoarseHistory) -> CoarseHistory:
    return history.copy()


def _frozen_hysteresis(state: Hysteresis) -> Hysteresis:
    return Hysteresis(**{name: getattr(state, name).copy() for name in Hysteresis.FIELDS})


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
    """Fill a fresh engine from `path` (engine.restore); True if it was loaded, False for a fresh start.

    engine: a new engine, before its first ingest() (the file is read with its
    sizes and its registry). now_ms: the load's time (default: now), so the
    engine's downtime is not counted as the devices' silence. A missing file is
    a fresh start. A file that cannot be trusted is logged, moved aside to
    `<name>.bad-<UTC stamp>` and is a fresh start too: the engine is either
    filled completely or left untouched. Buffers and histories saved with
    other sizes (e.g. CITY_ANALYTICS_BUFFER_SAMPLES changed between deploys)
    keep their newest samples that fit. Raises ValueError for an engine that
    has already ingested readings.
    """
    path = Path(path)
    if engine.learnt.blocks or engine.learnt.last_seen_ms:
        raise ValueError("load_state fills a fresh engine, before it ingests anything")
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # a save cut short by a kill: never the checkpoint
        stale.unlink(missing_ok=True)
    if not path.exists():
        return False
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        saved_ms, learnt = _read(path, engine)
    except Exception as exc:  # noqa: BLE001 - whatever a bad file raises, the engine must start, fresh
        moved = _move_aside(path)
        log.warning("analytics state %s not loaded (%s: %s); starting fresh%s", path, type(exc).__name__,
                    str(exc)[:300], f", the file moved to {moved.name}" if moved else "")
        engine.counters["state_rejected"] += 1
        return False
    engine.restore(_in_service_only(engine, learnt, max(0, now_ms - saved_ms)))
    log.info("analytics state loaded from %s: %d series of %d devices", path,
             sum(len(b.keys) for b in learnt.blocks.values()), len(learnt.last_seen_ms))
    return True


def load_shard(engine: AnalyticsEngine, path: Path | str, keep: Callable[[str], bool],
               now_ms: int | None = None) -> bool:
    """As load_state, for one of several workers sharing the devices (analytics.shards): the devices `keep`
    accepts, from every state file beside `path` (`engine-*.npz`: this worker's and the others'), each from
    the file saved last that holds it; so a worker takes over the devices that moved to it when the number
    of workers changed, with what was learnt of them. Alone in its folder, it is load_state (every device kept
    but the devices `keep` refuses). Another worker's file that cannot be read is
    skipped with a warning (it is that worker's to move aside); this worker's own is moved aside."""
    path = Path(path)
    others = sorted(p for p in path.parent.glob("engine-*.npz") if p != path)
    if not others:
        if not load_state(engine, path, now_ms):
            return False
        if not all(keep(device) for device in engine.learnt.last_seen_ms):  # the folder's only file, not all mine
            fresh = LearntState.empty(engine.params, engine.detector)
            engine.learnt = adopt([(0, engine.learnt)], keep, fresh)
        return True
    if engine.learnt.blocks or engine.learnt.last_seen_ms:
        raise ValueError("load_shard fills a fresh engine, before it ingests anything")
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    parts = []
    for file in [path, *others]:
        if not file.exists():
            continue
        try:
            saved_ms, whole = _read(file, engine)
        except Exception as exc:  # noqa: BLE001 - a bad file never stops the engine
            if file == path:
                moved = _move_aside(path)
                engine.counters["state_rejected"] += 1
                log.warning("analytics state %s not loaded (%s: %s)%s", path, type(exc).__name__, str(exc)[:300],
                            f", the file moved to {moved.name}" if moved else "")
            else:
                log.warning("analytics state of another worker %s not read (%s: %s)", file, type(exc).__name__,
                            str(exc)[:300])
            continue
        # This worker's devices only, before the next file is read: memory for one whole file at a time.
        parts.append((saved_ms, adopt([(saved_ms, whole)], keep, engine.learnt)))
        del whole
    if not parts:
        return False
    learnt = adopt(parts, keep, engine.learnt)
    saved_ms = max(saved for saved, _ in parts)
    engine.restore(_in_service_only(engine, learnt, max(0, now_ms - saved_ms)))
    log.info("analytics state of this worker's devices taken from %d files: %d series of %d devices", len(parts),
             sum(len(b.keys) for b in learnt.blocks.values()), len(learnt.last_seen_ms))
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


def _in_service_only(engine: AnalyticsEngine, learnt: LearntState, downtime_ms: int) -> LearntState:
    """The loaded state without the devices retired or deleted meanwhile, their last-seen times moved forward
    by the engine's downtime."""
    in_service = _in_service(engine, list(learnt.last_seen_ms))
    incidents = {key: incident for key, incident in learnt.incidents.items() if key[0] in in_service}
    # A device already reported silent stays silent: its downtime is not moved off (see the docstring).
    silent = {key[0] for key in incidents if key[1] == "silent"}
    last_seen = {device: t + (0 if device in silent else downtime_ms)
                 for device, t in learnt.last_seen_ms.items() if device in in_service}
    info = {device: info for device, info in learnt.info.items() if device in last_seen}
    return replace(learnt, incidents=incidents, last_seen_ms=last_seen, info=info)


def _in_service(engine: AnalyticsEngine, devices: list[str]) -> set[str]:
    """The devices still registered and not retired: one retired meanwhile is not waited for (it would be
    reported silent after every restart). With the registry unreadable, all of them (pruned next time)."""
    try:
        return {d for d in devices if (device := engine.devices.get(d)) is not None and device.state != "retired"}
    except Exception as exc:  # noqa: BLE001 - the engine must start; the registry's failure shows on its own
        log.warning("analytics state: registry not readable (%s); keeping every device's last-seen time", exc)
        return set(devices)


def _read(path: Path, engine: AnalyticsEngine) -> tuple[int, LearntState]:
    """(when it was saved, the file's state checked and fitted to the engine's sizes); raises StateError on
    anything wrong."""
    names = check_members(path)
    with np.load(path, allow_pickle=False) as opened:
        archive = opened
        if MANIFEST in names:  # version 5: the large arrays in chunks beside the file
            archive = ChunkedArchive(opened, path, opened[MANIFEST])
            names = (names - {MANIFEST}) | archive.names()
        if "meta" not in names:
            raise StateError("no meta member: not an analytics state file")
        meta = read_meta(archive["meta"])
        params = engine.params
        blocks, history, streams = {}, {}, {}
        arrivals = SeriesBlock(params.arrival_samples)
        for i, entry in enumerate(meta["blocks"]):
            keys = [tuple(key) for key in entry["keys"]]
            if meta["version"] < 7:
                values, times = read_pair(archive, names, f"b{i}", len(keys))
                appended = lineage = None
            else:
                values, times, appended, lineage = _buffer(archive, names, f"b{i}", len(keys), with_values=True)
            if meta["version"] < 3 and entry["metric"] == LEGACY_ARRIVALS:
                arrivals = _arrivals(params.arrival_samples, keys, times)
                continue
            blocks[entry["metric"]] = _block(params.buffer_samples, 64, keys, values, times, appended, lineage)
            if entry.get("stream") is not None:
                stream = _stream(archive, names, f"d{i}", entry["stream"], len(keys), engine)
                if stream is not None:
                    streams[entry["metric"]] = stream
            if entry["history"] is not None and params.profile_days > 0:
                fitted = _history(archive, names, i, entry["history"], len(keys), engine, meta["version"])
                if fitted is not None:
                    history[entry["metric"]] = fitted
        if meta["version"] >= 7:
            keys = [(device,) for device in meta["arrivals"]]
            _, times, appended, lineage = _buffer(archive, names, "arrivals", len(keys), with_values=False)
            arrivals = _arrivals(params.arrival_samples, keys, times, appended, lineage)
        elif meta["version"] >= 3:
            keys = [(device,) for device in meta["arrivals"]]
            arrivals = _arrivals(params.arrival_samples, keys, read_times(archive, names, "arrivals_times", len(keys)))
        night = _night(archive, names, engine, blocks.get("flow_lps"))
        states = {}
        for i, key in enumerate(meta["states"]):
            metric = key.removeprefix("peer:")
            expect(metric in blocks, f"state {key}: no such series")
            states[key] = read_hysteresis(archive, names, f"s{i}", len(blocks[metric].keys))
        silence = read_hysteresis(archive, names, "silence", None) if meta["version"] >= 2 else Hysteresis()
    return meta["saved_ms"], LearntState(
        blocks, arrivals, history=history, states=defaultdict(Hysteresis, states), silence_rows=meta["silence_rows"],
        silence=silence, incidents=meta["incidents"], last_seen_ms=meta["last_seen_ms"], info=meta["info"],
        night_history=night, last_night=meta["last_night"], peer_scored=meta["peer_scored"], streams=streams)


def _stream(archive, names: set[str], prefix: str, saved: Any, max_rows: int,
            engine: AnalyticsEngine) -> StreamState | None:
    """The detectors' state of one block, every member checked; None (rebuilt from the buffers on the next
    pass) when the detectors changed shape since (another number of profile periods or drift hold)."""
    expect(isinstance(saved, dict) and is_int(saved.get("periods")) and is_int(saved.get("hold"))
           and isinstance(saved.get("errors"), list) and len(saved["errors"]) == saved["periods"]
           and all(isinstance(e, bool) for e in saved["errors"]), f"{prefix}: stream")
    stream = StreamState.empty(engine.detector)
    if (saved["periods"], saved["hold"]) != (stream.periods, stream.hold):
        log.warning("analytics state: the detectors' state was kept for other parameters: rebuilt from the buffers")
        return None
    rows = None
    for name, (shape, _) in stream.fields().items():
        expect(f"{prefix}_{name}" in names, f"{prefix}: {name} missing")
        array = archive[f"{prefix}_{name}"]
        rows = array.shape[0] if rows is None else rows
        expect(array.dtype == np.float64 and array.shape == (rows, *shape) and rows <= max_rows
               and not np.isinf(array).any(), f"{prefix}_{name}: shape, type or values")
        stream.arrays[name] = array
    for p, kept in enumerate(saved["errors"]):
        if not kept:
            continue
        expect(f"{prefix}_errors{p}" in names, f"{prefix}: errors{p} missing")
        errors = archive[f"{prefix}_errors{p}"]
        expect(errors.dtype == np.float32 and errors.ndim == 2 and errors.shape[0] == rows
               and not np.isinf(errors).any(), f"{prefix}_errors{p}: shape, type or values")
        stream.errors[p] = errors
    return stream


def _buffer(archive, names: set[str], prefix: str, rows: int,
            with_values: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, str | None]:
    """A version-7 block's rows, its base and tails joined (statetails), checked: (values or None, times,
    each row's appended count or None, the block's lineage or None)."""
    wanted = (f"{prefix}_times", *((f"{prefix}_values",) if with_values else ()))
    if any(name not in names for name in wanted):
        raise StateError(f"{prefix}: arrays missing")
    times, values, appended = join(archive, names, prefix, archive[f"{prefix}_times"],
                                   archive[f"{prefix}_values"] if with_values else None)
    if values is not None:
        values, times = check_pair(values, times, prefix, rows)
    else:
        times = check_times(times, f"{prefix}_times", rows)
    manifest = getattr(archive, "manifest", {})
    return values, times, appended, manifest.get(f"{prefix}_times", {}).get("lineage")


def _arrivals(capacity: int, keys: list[tuple], times: np.ndarray, appended: np.ndarray | None = None,
              lineage: str | None = None) -> SeriesBlock:
    """The arrivals block: the times as saved, the delays unknown (NaN; see the module's docstring)."""
    return _block(capacity, 64, keys, np.full(times.shape, np.nan), times, appended, lineage)


def _block(capacity: int, initial_rows: int, keys: list[tuple], values: np.ndarray, times: np.ndarray,
           appended: np.ndarray | None = None, lineage: str | None = None) -> SeriesBlock:
    """A SeriesBlock of `capacity` holding these rows' newest samples (right-aligned, as SeriesBlock keeps them).
    With the saved block's `appended` counts and `lineage` (version 7) and the same capacity, it is that block
    going on: its next save takes the file's chunks as its base (statetails)."""
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
    block.appended = np.zeros(block.values.shape[0], dtype=np.int64)
    if appended is not None and lineage is not None and values.shape[1] == capacity:
        block.appended[:rows] = appended
        block.lineage = lineage
    return block


def _history(archive, names: set[str], i: int, saved: dict, fine_rows: int,
             engine: AnalyticsEngine, version: int) -> CoarseHistory | None:
    params = engine.params
    if saved["bucket_ms"] != params.profile_bucket_ms:
        log.warning("analytics state: the coarse history was kept in %d ms buckets, now %d ms: relearnt",
                    saved["bucket_ms"], params.profile_bucket_ms)
        return None
    history = new_history(params)
    if version >= 4:
        kept = _tiers(archive, names, f"h{i}", saved, fine_rows)
        if all(getattr(kept, name) == getattr(history, name) for name in ("capacity", "fine_capacity", "coarse_ms")):
            return kept
        # Other sizes (CITY_ANALYTICS_PROFILE_* changed between deploys): the saved means, laid out again.
        values, times, _ = kept.window(np.arange(kept.rows))
        open_bucket, sums = kept.open_bucket, kept.sums
    else:
        # Versions 1 to 3: every closed bucket as (value, time) in float64 and int64, one tier (the migration).
        values, times = read_pair(archive, names, f"h{i}", None)
        expect(values.shape[0] <= fine_rows, f"h{i}: more rows than its block")
        open_bucket, sums = _open_buckets(archive, names, f"h{i}", fine_rows)
    history.fill_closed(values, times)
    history._ensure_rows(open_bucket.shape[0])
    history.open_bucket[:open_bucket.shape[0]], history.sums[:sums.shape[0]] = open_bucket, sums
    return history


def _open_buckets(archive, names: set[str], prefix: str, fine_rows: int) -> tuple[np.ndarray, np.ndarray]:
    if f"{prefix}_open_bucket" not in names or f"{prefix}_sums" not in names:
        raise StateError(f"{prefix}: open buckets missing")
    open_bucket, sums = archive[f"{prefix}_open_bucket"], archive[f"{prefix}_sums"]
    open_rows = open_bucket.shape[0] if open_bucket.ndim == 1 else -1
    expect(open_bucket.dtype == np.int64 and sums.dtype == np.float64 and 0 <= open_rows <= fine_rows
            and sums.shape == (open_rows, 3) and np.isfinite(sums).all() and (open_bucket >= -1).all(),
            f"{prefix}: open buckets")
    return open_bucket, sums


def _tiers(archive, names: set[str], prefix: str, saved: dict, fine_rows: int) -> CoarseHistory:
    """A version-4 history as saved (its own sizes), every member checked."""
    for key in ("coarse_ms", "buckets", "fine_buckets"):
        expect(is_int(saved.get(key)) and 0 < saved[key] <= 10_000_000, f"{prefix}: {key}")
    try:
        history = CoarseHistory(saved["bucket_ms"], saved["buckets"], saved["fine_buckets"], saved["coarse_ms"])
    except ValueError as exc:
        raise StateError(f"{prefix}: {exc}") from None
    open_bucket, sums = _open_buckets(archive, names, prefix, fine_rows)
    rows = open_bucket.shape[0]
    shapes = {"fine": (rows, history.fine_capacity), "fine_newest": (rows,),
              "coarse": (rows, history.coarse_capacity), "coarse_newest": (rows,), "coarse_open": (rows,),
              "coarse_sums": (rows, 3)}
    history._ensure_rows(rows)
    for name, shape in shapes.items():
        if f"{prefix}_{name}" not in names:
            raise StateError(f"{prefix}: {name} missing")
        array = archive[f"{prefix}_{name}"]
        dtype = getattr(history, name).dtype
        expect(array.dtype == dtype and array.shape == shape, f"{prefix}_{name}: shape or type")
        expect(not np.isinf(array).any() if dtype.kind == "f" else (array >= -1).all(), f"{prefix}_{name}: values")
        getattr(history, name)[:rows] = array
    expect(np.isfinite(history.coarse_sums).all(), f"{prefix}_coarse_sums: values")
    history.open_bucket[:rows], history.sums[:rows] = open_bucket, sums
    return history


def _night(archive, names: set[str], engine: AnalyticsEngine, flow: SeriesBlock | None) -> np.ndarray:
    """The night-flow minima (rows of flow_lps, oldest night first), fitted to this engine's night_history."""
    width = engine.learnt.night_history.shape[1]
    if "night_history" not in names:
        raise StateError("night_history missing")
    saved = archive["night_history"]
    expect(saved.dtype == np.float64 and saved.ndim == 2 and saved.shape[1] >= 1, "night_history")
    expect(saved.shape[0] <= (len(flow.keys) if flow is not None else 0), "night_history: more rows than meters")
    fitted = np.full((saved.shape[0], width), np.nan)
    keep = min(width, saved.shape[1])
    fitted[:, width - keep:] = saved[:, saved.shape[1] - keep:]
    return fitted
