"""Detection quality against the simulator's ground truth, measured not assumed.

The readings (device, kind, district, t_ms, {metric: value}) arrive time by
time, as the fleet simulator yields them. They are laid on a grid by arrival
(a device whose clock jumped still arrives with the others), every rule is
run causally, incidents come out of the same hysteresis the live engine
uses, and each incident is matched with the labelled faults:

- a labelled fault is detected when an incident on the same device overlaps
  it (up to `grace_steps` after its end); its delay is from the fault's start
  to the first such incident's start (0 if one was already open);
- an incident that overlaps no fault is a false alarm.

Per fault type: recall = detected / labelled; precision = detected / (detected
+ false alarms on devices of the kinds this fault type can hit), i.e. of the
things an operator of those utilities was alerted to, how many were real (a
fault counts once however many alerts it raised, so an alert storm earns
nothing); F1 from the two; alerts per detected fault shows any storm. Row
"all": every incident and every fault.
"""

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from analytics import peers
from analytics.buffers import row_blocks
from analytics.config import DEFAULT_PARAMS, PEER_METRICS, DetectorParams
from analytics.detectors import Anchor, Baseline, night_flow_score, night_minimum
from analytics.detectors.stream import StreamState
from analytics.peers import peer_scores
from analytics.rules import (
    Hysteresis,
    MetricScores,
    clock_offset_score,
    grade,
    incidents,
    score_metric,
    score_metric_new,
    silence_on_grid,
)

Reading = tuple[str, str, str, int, dict[str, float]]
Label = tuple[str, str, str, int, int]  # device, metric ('' for the whole device), fault, start_ms, end_ms


@dataclass
class Alert:
    device: str
    metric: str
    rule: str
    start_ms: int
    end_ms: int
    peak: float
    severity: str


@dataclass
class Grid:
    devices: list[str]
    kinds: list[str]
    start_ms: int
    step_ms: int
    present: np.ndarray  # (D, T) a reading arrived
    lag_ms: np.ndarray  # (D, T) arrival minus the reading's timestamp, NaN when none
    metrics: dict[str, tuple[np.ndarray, np.ndarray]]  # metric -> (device rows, values (S, T))
    districts: list[str] = field(default_factory=list)  # per device, beside kinds (peer comparison)

    @property
    def times(self) -> np.ndarray:
        return self.start_ms + self.step_ms * np.arange(self.present.shape[1], dtype=np.int64)


def build_grid(readings: Iterable[Reading], start_ms: int, step_ms: int, n_steps: int,
               capacity: dict[str, int] | None = None) -> Grid:
    """Lay readings on the arrival grid. Readings must come time by time (as fleetsim yields them).

    Each reading is written into the grid's arrays as it arrives (float64 as simulated, NaN where none came;
    nothing is kept of the reading itself), so memory is the grid: ~1.4 GB for 2,000 devices over 12 days of
    minutes, where a list of every reading took more than 8 GB before the simulation ended. capacity, when the
    fleet is known ({"": devices, metric: devices reporting it}, see fleet_capacity): the arrays are allocated at
    that size once; without it (or beyond it) their rows grow by doubling and are trimmed at the end.
    """
    capacity = capacity or {}
    device_index: dict[str, int] = {}
    kinds: list[str] = []
    districts: list[str] = []
    present = np.zeros((max(1, capacity.get("", 16)), n_steps), dtype=bool)
    lag = np.full(present.shape, np.nan)
    arrays: dict[str, np.ndarray] = {}  # metric -> (rows, n_steps), in the order metrics first arrive
    rows_of: dict[str, dict[int, int]] = {}  # metric -> device -> row, rows in the order devices first report it
    arrival_ms = start_ms
    for device, kind, district, t_ms, values in readings:
        arrival_ms = max(arrival_ms, t_ms)  # a skewed clock reports the past; arrival is now
        step = (arrival_ms - start_ms) // step_ms
        if not 0 <= step < n_steps:
            continue
        d = device_index.get(device)
        if d is None:
            d = device_index[device] = len(kinds)
            kinds.append(kind)
            districts.append(district)
            if d == present.shape[0]:
                present, lag = _grown(present, False), _grown(lag, np.nan)
        present[d, step] = True
        lag[d, step] = arrival_ms - t_ms
        for metric, value in values.items():
            table = rows_of.get(metric)
            if table is None:
                table = rows_of[metric] = {}
                arrays[metric] = np.full((max(1, capacity.get(metric, 16)), n_steps), np.nan)
            row = table.get(d)
            if row is None:
                row = table[d] = len(table)
                if row == arrays[metric].shape[0]:
                    arrays[metric] = _grown(arrays[metric], np.nan)
            arrays[metric][row, step] = value
    n_devices = len(kinds)
    metrics = {m: (np.array(list(rows_of[m]), dtype=np.int64), _trimmed(a, len(rows_of[m]))) for m, a in arrays.items()}
    return Grid(list(device_index), kinds, start_ms, step_ms, _trimmed(present, n_devices), _trimmed(lag, n_devices),
                metrics, districts)


def _grown(array: np.ndarray, fill: object) -> np.ndarray:
    """The array with twice the rows, the new ones `fill`."""
    out = np.full((2 * array.shape[0], array.shape[1]), fill, dtype=array.dtype)
    out[:array.shape[0]] = array
    return out


def _trimmed(array: np.ndarray, rows: int) -> np.ndarray:
    """The first `rows` rows: the array itself when it has no more (no copy), else a copy of them."""
    return array if array.shape[0] == rows else array[:rows].copy()


def fleet_capacity(scenario: dict, devices: int, seed: int) -> dict[str, int]:
    """build_grid's capacity for fleetsim.generate(scenario, devices, seed, ...): devices, and per metric the
    devices whose model reports it (the simulator's plan, without simulating)."""
    import fleetsim
    from fleetsim.models import make_model

    specs = fleetsim.plan_fleet(scenario, devices, seed)
    rows = Counter(m for spec in specs for m in make_model(scenario, spec, seed).metrics)
    return {"": len(specs), **rows}


def _alerts_from(active: np.ndarray, score: np.ndarray, rules: np.ndarray | None, severities: np.ndarray | None,
                 grid: Grid, device_rows: np.ndarray, metric: str, fixed_rule: str = "",
                 params: DetectorParams = DEFAULT_PARAMS) -> list[Alert]:
    out = []
    for row, first, after in incidents(active):
        window = np.nan_to_num(score[row, first:after])
        peak_at = first + int(window.argmax())
        rule = fixed_rule or str(rules[row, peak_at])
        severity = grade(float(window.max()), "" if severities is None else str(severities[row, peak_at]), params)
        out.append(Alert(grid.devices[device_rows[row]], metric, rule, int(grid.times[first]),
                         int(grid.start_ms + grid.step_ms * after), float(window.max()), severity))
    return out


# Series scored at once by detect. A metric's scores and their temporaries peak at ~6.7 MB a series over 12 days of
# minutes (power_kw of bench_alarm_week's 200-device week, tracemalloc): a block of 128 is ~0.9 GB whatever the
# fleet, where the 700 power meters of 2,000 devices at once would be ~4.7 GB on top of their 1.4 GB grid.
DETECT_BLOCK_ROWS = 128


def detect(grid: Grid, params: DetectorParams = DEFAULT_PARAMS, pass_samples: int = 0,
           block_rows: int = DETECT_BLOCK_ROWS) -> list[Alert]:
    """Every rule over the grid, incidents through the hysteresis: the alerts the engine would raise.

    pass_samples: 0 scores each metric's whole array at once; N > 0 scores it in passes of N samples
    through the live engine's incremental scorer (detectors.stream), its state carried between passes.
    block_rows: at most this many series are scored at once (0: all), which bounds detection's memory. Every rule
    scores each series on its own but the peer check, which takes whole districts (as many as fit in a block, a
    larger district alone), so the alerts are the same, in the same order, for any block size.
    """
    alerts: list[Alert] = []
    times = grid.times
    for metric, (device_rows, values) in sorted(grid.metrics.items()):
        for rows in row_blocks(values.shape[0], block_rows):
            alerts += _metric_alerts(grid, metric, device_rows[rows], values[rows], times, params, pass_samples)
    alerts += peer_alerts(grid, params, block_rows)  # before the merge: a device still gets one incident
    alerts = merge_by_device(alerts) + _night_flow_alerts(grid, params)
    all_rows = np.arange(len(grid.devices))
    for rule in ("silent", "clock_offset"):
        for rows in row_blocks(len(grid.devices), block_rows):
            alerts += _device_alerts(grid, rule, all_rows[rows], params)
    return alerts


def _metric_alerts(grid: Grid, metric: str, device_rows: np.ndarray, values: np.ndarray, times: np.ndarray,
                   params: DetectorParams, pass_samples: int) -> list[Alert]:
    """One metric's alerts for these series (values: their rows); the block's arrays are freed on return."""
    scored = score_in_passes(metric, values, times, params, pass_samples) if pass_samples > 0 \
        else score_metric(metric, values, times, params)
    score = np.where(np.isnan(values), np.nan, scored.score)
    active = Hysteresis().step(score, params, values=values, anchor=scored.anchor)
    return _alerts_from(active, score, scored.rule, scored.severity, grid, device_rows, metric, params=params)


def _device_alerts(grid: Grid, rule: str, rows: np.ndarray, params: DetectorParams) -> list[Alert]:
    """The device rules ('silent', 'clock_offset') for these devices (grid rows)."""
    present = grid.present[rows]
    if rule == "silent":
        score = silence_on_grid(present, params)
    else:
        score = np.where(present, clock_offset_score(grid.lag_ms[rows], grid.step_ms, params), np.nan)
    return _alerts_from(Hysteresis().step(score, params), score, None, None, grid, rows, "", rule, params)


def score_in_passes(metric: str, values: np.ndarray, times: np.ndarray, params: DetectorParams,
                    samples: int) -> MetricScores:
    """score_metric over (S, T) values, `samples` columns a pass, as the live engine scores new readings."""
    state = StreamState.empty(params)
    rows = np.arange(values.shape[0])
    times = np.broadcast_to(times, values.shape)
    parts = [score_metric_new(metric, state, rows, values[:, :end], times[:, :end], end - start, params)
             for start in range(0, values.shape[1], samples) for end in [min(start + samples, values.shape[1])]]
    anchor = None if parts[0].anchor is None else \
        Anchor(*(np.concatenate([getattr(p.anchor, name) for p in parts], axis=1)
                 for name in ("profile", "bias", "scale")))
    joined = [np.concatenate([getattr(p, name) for p in parts], axis=1) for name in ("score", "rule", "severity")]
    baseline = Baseline(*(np.concatenate([getattr(p.baseline, name) for p in parts], axis=1)
                          for name in ("expected", "scale", "z")))
    return MetricScores(*joined, baseline, anchor)


def peer_alerts(grid: Grid, params: DetectorParams, block_rows: int = 0) -> list[Alert]:
    """Meters drifting away from the other meters of their district (tampering, a failing meter).

    block_rows: districts are scored together up to this many meters (0: all at once); a district is never split,
    as its meters are compared with each other. The alerts come in the order of all at once (meter, then time).
    """
    alerts: list[Alert] = []
    for metric in PEER_METRICS:
        if metric not in grid.metrics or not grid.districts:
            continue
        device_rows, values = grid.metrics[metric]
        districts = np.array([grid.districts[row] for row in device_rows], dtype=object)
        found: list[Alert] = []
        for rows in _district_blocks(districts, block_rows):
            found += _peer_alerts_of(grid, metric, device_rows[rows], values[rows], districts[rows], params)
        position = {grid.devices[row]: n for n, row in enumerate(device_rows)}
        alerts += sorted(found, key=lambda a: (position[a.device], a.start_ms))
    return alerts


def _district_blocks(districts: np.ndarray, block_rows: int) -> list[slice | np.ndarray]:
    """Rows of whole districts, as many districts as fit in block_rows together (a larger one alone); all the rows
    as one slice when they fit or block_rows is 0."""
    if block_rows <= 0 or districts.size <= block_rows:
        return [slice(0, districts.size)]
    names, counts = np.unique(districts, return_counts=True)
    groups: list[list[str]] = [[]]
    size = 0
    for name, count in zip(names, counts, strict=True):
        if groups[-1] and size + count > block_rows:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += count
    return [np.flatnonzero(np.isin(districts, group)) for group in groups]


def _peer_alerts_of(grid: Grid, metric: str, device_rows: np.ndarray, values: np.ndarray, districts: np.ndarray,
                    params: DetectorParams) -> list[Alert]:
    """The peer check over these meters (whole districts); the block's arrays are freed on return."""
    scored = peer_scores(values, districts, peers.warmup_samples(grid.step_ms), params)
    active = Hysteresis().step(scored.score, params, values=scored.departure, anchor=scored.anchor)
    warning = np.full(scored.score.shape, "warning", dtype=object)  # as the engine: a suspicion to inspect
    return _alerts_from(active, scored.score, None, warning, grid, device_rows, metric, peers.RULE, params)


def _night_flow_alerts(grid: Grid, params: DetectorParams) -> list[Alert]:
    """The engine's night-flow check: an incident from the end of a night whose minimum rose, to the next night."""
    if "flow_lps" not in grid.metrics:
        return []
    device_rows, values = grid.metrics["flow_lps"]
    _, minima, ready = night_minimum(values, grid.times, params.utc_offset_h, params)
    score = night_flow_score(minima, params)
    score = np.where(np.isnan(minima), np.nan, score)
    out = []
    for row, first, after in incidents(Hysteresis().step(score, replace(params, clear_samples=1, confirm_samples=1))):
        end = int(ready[after]) if after < ready.size else int(grid.times[-1])
        out.append(Alert(grid.devices[device_rows[row]], "flow_lps", "night_flow_rise", int(ready[first]), end,
                         float(np.nanmax(score[row, first:after])), "warning"))
    return out


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def merge_by_device(alerts: list[Alert]) -> list[Alert]:
    """One incident per device while any of its metrics is anomalous, as the engine keeps it.

    Overlapping alerts of one device become one: the first one's metric and
    rule, the union of the times, the highest peak and severity.
    """
    merged: list[Alert] = []
    for alert in sorted(alerts, key=lambda a: (a.device, a.start_ms)):
        last = merged[-1] if merged else None
        if last is not None and last.device == alert.device and alert.start_ms < last.end_ms:
            last.end_ms = max(last.end_ms, alert.end_ms)
            last.peak = max(last.peak, alert.peak)
            last.severity = max(last.severity, alert.severity, key=SEVERITY_RANK.get)
        else:
            merged.append(Alert(**vars(alert)))
    return merged


@dataclass
class FaultRow:
    fault: str
    labelled: int
    detected: int
    alerts: int
    false_alarms: int
    precision: float
    recall: float
    f1: float
    median_delay_steps: float | None


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def match(alerts: list[Alert], labels: Iterable[Label], kinds_of_fault: dict[str, set[str]],
          kind_of_device: dict[str, str], step_ms: int, grace_steps: int = 5, count_from_ms: int = 0) -> list[FaultRow]:
    """Per fault type (and 'all'): precision, recall, F1, median delay in steps (see the module doc).

    Faults and alerts that start before `count_from_ms` (the baselines'
    warm-up) are not counted, nor are alerts on a fault of the warm-up; neither are `info` alerts, which are advice
    (CO2 above 1,000 ppm: ventilate), not alarms.
    """
    alerts = [a for a in alerts if a.start_ms >= count_from_ms and a.severity != "info"]
    faults: dict[tuple[str, str, int], int] = {}  # (device, fault, start) -> end
    uncounted: dict[str, list[tuple[int, int]]] = defaultdict(list)  # device -> faults of the warm-up
    for device, _metric, fault, start_ms, end_ms in labels:
        if start_ms < count_from_ms:
            uncounted[device].append((int(start_ms), int(end_ms)))
            continue
        key = (device, fault, int(start_ms))
        faults[key] = max(faults.get(key, 0), int(end_ms))
    by_device: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for (device, fault, start), end in faults.items():
        by_device[device].append((fault, start, end))
    grace = grace_steps * step_ms
    # An alert on a fault of the warm-up (a leak that began then and lasts) is
    # neither a detection that counts nor a false alarm: it is left out.
    alerts = [a for a in alerts if not any(a.start_ms < end + grace and a.end_ms > start
                                           for start, end in uncounted.get(a.device, []))]
    matched_type: list[str | None] = []
    first_alert: dict[tuple[str, str, int], int] = {}
    for alert in alerts:
        hit = None
        for fault, start, end in by_device.get(alert.device, []):
            if alert.start_ms < end + grace and alert.end_ms > start:
                hit = fault
                key = (alert.device, fault, start)
                first_alert[key] = min(first_alert.get(key, alert.start_ms), alert.start_ms)
        matched_type.append(hit)
    rows = []
    for fault in sorted({f for (_, f, _) in faults}) + ["all"]:
        keys = [k for k in faults if fault in ("all", k[1])]
        detected = [k for k in keys if k in first_alert]
        delays = [max(0, first_alert[k] - k[2]) / step_ms for k in detected]
        kinds = set(kind_of_device.values()) if fault == "all" else kinds_of_fault.get(fault, set())
        true_alerts = sum(1 for t in matched_type if t is not None and fault in ("all", t))
        false_alarms = sum(1 for a, t in zip(alerts, matched_type, strict=True)
                           if t is None and kind_of_device.get(a.device) in kinds)
        found = len(detected)
        precision = found / (found + false_alarms) if found + false_alarms else 0.0
        recall = len(detected) / len(keys) if keys else 0.0
        rows.append(FaultRow(fault, len(keys), len(detected), true_alerts, false_alarms, precision, recall,
                             _f1(precision, recall), statistics.median(delays) if delays else None))
    return rows


@dataclass
class Evaluation:
    rows: list[FaultRow]
    alerts: list[Alert]
    labels: list[Label]
    devices: int
    steps: int
    step_ms: int


def evaluate_fleet(devices: int = 200, hours: float = 192.0, interval_s: float = 60.0, seed: int = 7,
                   warmup_hours: float = 120.0, start_ms: int = 1_767_200_400_000,
                   params: DetectorParams = DEFAULT_PARAMS, utc_offset_h: int = 7,
                   on_stage: Callable[[str], None] | None = None, pass_samples: int = 0) -> Evaluation:
    """Simulate the city with fleetsim (faults and labels included), detect, and match.

    start_ms defaults to 2026-01-01 00:00 at UTC+7 (a Thursday). on_stage is told each step as it starts
    ("simulating", "scoring"), for a caller that shows progress in its own words.
    Faults starting in the first `warmup_hours` (while the baselines learn
    the working-day profile: by default until Tuesday 00:00, so the first
    weekend-to-Monday step is learnt too) are not counted, nor are alerts
    that start then.
    """
    import fleetsim  # the simulator is a separate component; only the evaluation needs it

    if warmup_hours >= hours:
        raise ValueError("warmup_hours must be shorter than hours")
    say = on_stage or (lambda _stage: None)
    scenario = fleetsim.load_scenario()
    say("simulating")
    readings, faults = fleetsim.generate(scenario, devices, seed, start_ms, hours, interval_s)
    step_ms = int(interval_s * 1000)
    n_steps = int(hours * 3600 // interval_s)
    grid = build_grid(readings, start_ms, step_ms, n_steps, fleet_capacity(scenario, devices, seed))
    say("scoring")
    alerts = detect(grid, replace(params, utc_offset_h=utc_offset_h), pass_samples)
    labels = fleetsim.label_rows(faults)
    kinds = {name: set(spec["kinds"]) for name, spec in scenario["faults"].items()}
    rows = match(alerts, labels, kinds, dict(zip(grid.devices, grid.kinds, strict=True)), step_ms,
                 count_from_ms=start_ms + int(warmup_hours * 3_600_000))
    return Evaluation(rows, alerts, labels, len(grid.devices), n_steps, step_ms)
