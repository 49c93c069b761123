"""The streaming engine: validated telemetry in, one alert per incident out.

Telemetry messages are decoded with the wire contract (the device's kind and
district come from the registry), their readings appended to a ring buffer
per (device, metric), and every series that received data is scored with
the vectorised rules, all series of a metric at once. Incidents come from
the hysteresis in analytics.rules: an alert opens once, is updated while it
lasts (severity changes, and at most every `update_every_s` with its
current score), and is cleared when the series is normal again. Backfilled
history (`hist`) feeds the buffers but never opens or updates a live alert.

Each alert message (contract.encode_alert) goes to the MQTT alert topic
(QoS 1; the API stores it and the control room shows it) and to InfluxDB as
measurement `alerts` (tags device, district, kind, metric, rule, severity;
fields state, score, explanation, id), for Grafana annotations.
"""

import logging
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from analytics import peers
from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.config import DOMAIN_LIMITS, PEER_METRICS, DetectorParams, EngineParams
from analytics.detectors import Anchor, History, median_interval_ms, night_flow_score, silence_score
from analytics.rules import STATISTICAL_RULES, Hysteresis, clock_offset_score, grade, score_metric
from edge import contract
from telemetry_shared.influx import InfluxError, LineWriter
from telemetry_shared.lineproto import line
from telemetry_shared.registry import Registry, RegistryCache

log = logging.getLogger("analytics")

CLOCK = "clock_lag_ms"  # the per-device series of arrival delay, scored for clock jumps
INFLUX_RETRY_S = 30  # after a failed annotation write, alerts go to MQTT only for this long


@dataclass
class Incident:
    id: str
    device: str
    kind: str
    district: str
    metric: str
    rule: str
    severity: str
    started_ms: int
    published_ms: int
    score: float
    metrics: set[str] = field(default_factory=set)  # the metrics currently anomalous in this incident
    opened_by: str = ""  # the member of `metrics` that opened it (its numbers explain the incident)


def local_time(t_ms: int, utc_offset_h: int) -> str:
    moment = datetime.fromtimestamp(t_ms / 1000, UTC) + timedelta(hours=utc_offset_h)
    return moment.strftime("%Y-%m-%d %H:%M") + f" (UTC{utc_offset_h:+d})"


def explain(metric: str, rule: str, observed: float | None, expected: float | None, scale: float | None,
            z: float | None, started_ms: int, utc_offset_h: int) -> str:
    """A sentence an operator can act on: what, observed against expected, how unusual, since when."""
    since = local_time(started_ms, utc_offset_h)
    if rule == "silent":
        return f"No data from this device since {since}, past {DetectorParams().silence_factor:g} intervals."
    if rule == "night_flow_rise":
        usual = f"{expected:.3g} L/s" if expected is not None else "unknown"
        return f"Minimum night flow {observed:.3g} L/s against a usual {usual} on earlier nights " \
               f"(02:00-04:00 local): a new leak? Night ending {since}."
    if rule == "clock_offset":
        return f"The device's clock jumped: its readings arrive {observed / 60000:.1f} min off their usual delay " \
               f"(since {since})."
    unit = contract.METRICS.get(metric, ("", "", 0, 0))[1]
    if observed is None:
        return f"{metric} back to normal or unusual on another metric; since {since}."
    if rule == peers.RULE:  # expected: the district's median; scale: the meter's usual departure from it
        return _explain_peer(metric, unit, observed, expected, scale, since)
    observed_text = f"{metric} {observed:.4g} {unit}".strip()
    for limit in DOMAIN_LIMITS.get(metric, []):
        if limit.rule == rule:
            bound = f"below the minimum {limit.low:g}" if limit.low is not None and observed < limit.low else \
                f"above the maximum {limit.high:g}"
            return f"{observed_text} is {bound} {unit} ({limit.source}); since {since}."
    words = {"unusual_value": "unusual against its recent level and daily profile",
             "level_shift": "shifted away from its usual level",
             "off_daily_profile": "off its usual daily profile",
             "stuck_sensor": "stuck: the same reading over and over",
             "drift": "drifting away from its usual daily profile"}.get(rule, rule)
    if expected is None or scale is None or z is None:
        return f"{observed_text}: {words}; since {since}."
    return f"{observed_text}, expected {expected:.4g} ± {scale:.2g}: {words} ({abs(z):.1f} sigma); since {since}."


def _explain_peer(metric: str, unit: str, observed: float, median: float | None, usual: float | None,
                  since: str) -> str:
    observed_text = f"{metric} {observed:.4g} {unit}".strip()
    if median is None or median == 0:
        return f"{observed_text}, away from the median of its district's meters: tampering or a failing meter? " \
               f"Since {since}."
    departure = (observed - median) / abs(median)
    side = "below" if departure < 0 else "above"
    usual_text = f" (usual: {usual * 100:+.0f} %)" if usual is not None else ""
    return f"{observed_text}, {abs(departure) * 100:.0f} % {side} the median of its district's meters " \
           f"{median:.4g} {unit}{usual_text}: tampering or a failing meter? Since {since}."


class AnalyticsEngine:
    """The engine without the network: feed messages, call process(), get alert messages."""

    def __init__(self, registry: Registry, writer: LineWriter | None = None,
                 publish: Callable[[str, bytes], None] | None = None, params: EngineParams | None = None,
                 utc_offset_h: int = 7):
        self.params = params or EngineParams()
        self.detector = replace(self.params.params, utc_offset_h=utc_offset_h)
        self.utc_offset_h = utc_offset_h
        self.devices = RegistryCache(registry)
        self.writer = writer
        self.publish = publish
        self.blocks: dict[str, SeriesBlock] = {}
        self.history: dict[str, CoarseHistory] = {}  # metric -> bucket means, same rows as its block
        self.states: dict[str, Hysteresis] = defaultdict(Hysteresis)
        self.incidents: dict[tuple[str, str], Incident] = {}  # (device, metric or device rule) -> open incident
        self.live_from: dict[tuple[str, str], int] = {}  # buffer index per series: samples to feed the hysteresis
        self.last_seen_ms: dict[str, int] = {}
        self.info: dict[str, tuple[str, str]] = {}
        self.pending: dict[str, list] = defaultdict(list)  # metric -> [(row, times, values, live)]
        self.silence = Hysteresis()
        self.silence_rows: dict[str, int] = {}
        self.night_history = np.full((0, self.detector.night_history + 1), np.nan)  # per flow row, oldest first
        self.last_night = -1  # the local day number of the last night window scored
        self.peer_scored: dict[str, int] = {}  # metric -> the last bucket number fed to its peer hysteresis
        self.counters: Counter[str] = Counter()
        self.influx_retry_at = 0.0

    # ------------------------------------------------------------ input

    def block(self, metric: str) -> SeriesBlock:
        if metric not in self.blocks:
            self.blocks[metric] = SeriesBlock(self.params.buffer_samples)
        return self.blocks[metric]

    def ingest(self, device_id: str, payload: bytes, received_ms: int) -> None:
        """One telemetry message; bad ones are counted and dropped (ingest dead-letters them)."""
        self.counters["messages"] += 1
        device = self.devices.get(device_id)
        if device is None or device.state == "retired":
            self.counters["unknown_device"] += 1
            return
        kind = device.kind
        try:
            batch = contract.decode_telemetry(payload, kind, received_ms, loads=orjson.loads)
        except contract.ContractError as exc:
            self.counters[f"rejected_{exc.reason}"] += 1
            return
        if not batch.samples:
            return
        self.info[device_id] = (kind, device.district)
        self.last_seen_ms[device_id] = received_ms
        by_metric: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for t_ms, values, _quality in batch.samples:
            for metric, value in values.items():
                by_metric[metric][0].append(t_ms)
                by_metric[metric][1].append(value)
        if not batch.hist:  # backfill arrives late on purpose: no evidence about the clock
            newest = max(t for t, _, _ in batch.samples)
            by_metric[CLOCK] = ([received_ms], [float(received_ms - newest)])
        for metric, (times, values) in by_metric.items():
            block = self.block(metric)
            row = block.row((device_id,))
            added = block.append(row, np.array(times), np.array(values))
            if added and metric != CLOCK and self.params.profile_days > 0:
                history = self.history.get(metric)
                if history is None:
                    capacity = self.params.profile_days * 86_400_000 // self.params.profile_bucket_ms
                    history = self.history[metric] = CoarseHistory(self.params.profile_bucket_ms, capacity)
                history.add(row, block.times[row, -added:], block.values[row, -added:])
            if added:
                self.pending[metric].append((row, added, not batch.hist))
        self.counters["readings"] += sum(len(v) for _, v in by_metric.values())

    # ------------------------------------------------------------ scoring

    def process(self, now_ms: int | None = None) -> list[dict]:
        """Score every series that received data; returns the alert messages sent."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        sent: list[dict] = []
        pending, self.pending = self.pending, defaultdict(list)
        for metric, items in pending.items():
            sent += self._score(metric, items, now_ms)
        return sent

    def _score(self, metric: str, items: list, now_ms: int) -> list[dict]:
        block = self.blocks[metric]
        new_count: dict[int, int] = defaultdict(int)
        live: dict[int, bool] = {}
        for row, added, is_live in items:
            new_count[row] = min(new_count[row] + added, block.capacity)  # older ones already left the buffer
            live[row] = live.get(row, False) or is_live
        rows = np.array(sorted(new_count))
        values, times = block.values[rows], block.times[rows]
        if metric == CLOCK:
            interval = np.nan_to_num(median_interval_ms(times), nan=self.params.default_interval_ms)
            score = clock_offset_score(values, float(np.median(interval)), self.detector)
            rule = np.full(values.shape, "clock_offset", dtype=object)
            severity = np.full(values.shape, "warning", dtype=object)
            expected = scale = z = np.full(values.shape, np.nan)
            anchor = None
        else:
            scored = score_metric(metric, values, times, self.detector, history=self._history(metric, rows))
            score, rule, severity = scored.score, scored.rule, scored.severity
            expected, scale, z = scored.baseline.expected, scored.baseline.scale, scored.baseline.z
            anchor = scored.anchor
        # Only the new samples of live batches feed the incidents; history fills the buffer only.
        width = max(new_count.values())
        fed = np.array([new_count[row] if live[row] else 0 for row in rows])
        feed, fed_values = _newest(score, fed, width), _newest(values, fed, width)
        fed_anchor = None if anchor is None else \
            Anchor(*(_newest(part, fed, width) for part in (anchor.profile, anchor.bias, anchor.scale)))
        state = self.states[metric]
        state.resize(int(rows.max()) + 1)
        was_active = state.active[rows].copy()
        after_flags = state.step(feed, self.detector, rows, values=fed_values, anchor=fed_anchor)
        sent = []
        for i, row in enumerate(rows):
            if not live[row]:
                continue
            n = new_count[row]
            flags = after_flags[i, :n]
            previous = np.concatenate([[was_active[i]], flags[:-1]])
            changes = list(np.flatnonzero(flags != previous))
            # Every opening and clearing inside the batch is sent, in order (a short
            # incident may open and clear within one batch); otherwise the newest
            # sample may update an open incident.
            for j in changes or [n - 1]:
                at = j - n  # buffer position, from the end
                detail = (float(values[i, at]), _finite(expected[i, at]), _finite(scale[i, at]), _finite(z[i, at]))
                sent += self._transition(block.keys[row][0], "" if metric == CLOCK else metric, bool(flags[j]),
                                         float(score[i, at]), str(rule[i, at]), str(severity[i, at]),
                                         int(times[i, at]), detail, now_ms)
        return sent

    def _history(self, metric: str, rows: np.ndarray) -> History | None:
        history = self.history.get(metric)
        if history is None:
            return None
        values, times = history.window(rows)
        return History(values, times, tolerance_ms=float(history.bucket_ms))

    def check_night_flow(self, now_ms: int | None = None) -> list[dict]:
        """Once a night window has closed: each water meter's minimum night flow against its previous nights.

        The minimum of the window is taken from the ring buffers (all meters
        at once); a rise of `night_rise_rel` over the median of earlier
        nights opens a `night_flow_rise` incident, the next normal night
        clears it. Minimum night flow is the IWA indicator of leakage.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        block = self.blocks.get("flow_lps")
        p = self.detector
        day_ms, hour_ms = 86_400_000, 3_600_000
        local_now = now_ms + self.utc_offset_h * hour_ms
        night = local_now // day_ms if (local_now % day_ms) >= p.night_end_h * hour_ms else local_now // day_ms - 1
        if block is None or night <= self.last_night:
            return []
        self.last_night = night
        n_rows = len(block.keys)
        if self.night_history.shape[0] < n_rows:
            grow = np.full((n_rows - self.night_history.shape[0], self.night_history.shape[1]), np.nan)
            self.night_history = np.vstack([self.night_history, grow])
        values, times = block.values[:n_rows], block.times[:n_rows]
        local = times + self.utc_offset_h * hour_ms
        in_window = (local // day_ms == night) & (local % day_ms >= p.night_start_h * hour_ms) & \
            (local % day_ms < p.night_end_h * hour_ms)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a meter with no reading that night
            minima = np.nanmin(np.where(in_window, values, np.nan), axis=1)
        history = np.roll(self.night_history[:n_rows], -1, axis=1)
        history[:, -1] = minima
        self.night_history[:n_rows] = history
        score = night_flow_score(history, p)[:, -1]
        score = np.where(np.isnan(minima), np.nan, score)
        sent = []
        for row in np.flatnonzero(~np.isnan(score)):
            device = block.keys[row][0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                usual = float(np.nanmedian(history[row, :-1])) if np.isfinite(history[row, :-1]).any() else None
            detail = (float(minima[row]), usual, None, None)
            window_end = (night * day_ms + p.night_end_h * hour_ms) - self.utc_offset_h * hour_ms
            # Hysteresis by the night: opens at open_score, clears on a night below clear_score.
            is_open = (device, "night_flow") in self.incidents
            active = score[row] >= (p.clear_score if is_open else p.open_score)
            sent += self._transition(device, "flow_lps", bool(active), float(score[row]),
                                     "night_flow_rise", "warning", int(window_end), detail, now_ms,
                                     group="night_flow")
        return sent

    def check_peers(self, now_ms: int | None = None) -> list[dict]:
        """Each meter against the other meters of its district (PEER_METRICS): tampering or a failing meter.

        The coarse history's per-minute bucket means of every row are laid on
        one bucket grid (the last `peer_window` buckets, up to the newest one
        every row has had the time to close) and scored as in the evaluation
        (analytics.peers); only the buckets newer than those scored before
        feed the hysteresis. A finding joins the device's one `readings`
        incident as "<metric> against its district".
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        sent: list[dict] = []
        for metric in PEER_METRICS:
            sent += self._check_peers_of(metric, now_ms)
        return sent

    def _peer_grid(self, metric: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        """(rows with a district, their values (S, peer_window) on the bucket grid, the grid's first bucket),
        or None when no bucket closed since the last check (the usual case: this runs every few seconds)."""
        history, block = self.history.get(metric), self.blocks.get(metric)
        if history is None or block is None:
            return None
        closed = history.closed
        n_rows = len(closed.keys)  # the rows that closed a bucket at least once, in the fine block's order
        newest = closed.times[:n_rows, -1]
        if not (newest > 0).any():
            return None
        # The newest bucket may not have closed yet on every row (a reading of
        # the next minute closes it): the grid ends one bucket earlier.
        last = int(newest.max()) // history.bucket_ms - 1
        if last <= self.peer_scored.get(metric, -1):
            return None
        rows = np.array([r for r in range(n_rows) if self.info.get(block.keys[r][0], ("", ""))[1]], dtype=np.int64)
        if rows.size == 0:
            return None
        width = self.params.peer_window
        # Newest last and at most one closed bucket per column: the window is in the last `width` columns.
        values, times = closed.values[rows, -width:], closed.times[rows, -width:]
        buckets = times // history.bucket_ms
        first = last - width + 1
        r, c = np.nonzero(~np.isnan(values) & (times > 0) & (buckets >= first) & (buckets <= last))
        grid = np.full((rows.size, width), np.nan)
        grid[r, buckets[r, c] - first] = values[r, c]
        return rows, grid, first

    def _check_peers_of(self, metric: str, now_ms: int) -> list[dict]:
        laid = self._peer_grid(metric)
        if laid is None:
            return []
        rows, grid, first = laid
        last = first + grid.shape[1] - 1
        done = self.peer_scored.get(metric, first - 1)
        self.peer_scored[metric] = last
        block, bucket_ms = self.blocks[metric], self.history[metric].bucket_ms
        districts = np.array([self.info[block.keys[r][0]][1] for r in rows], dtype=object)
        warmup = min(peers.warmup_samples(bucket_ms), grid.shape[1] // 2)
        scored = peers.peer_scores(grid, districts, warmup, self.detector)
        new = slice(grid.shape[1] - min(last - done, grid.shape[1]), None)
        state = self.states[f"peer:{metric}"]
        state.resize(int(rows.max()) + 1)
        was_active = state.active[rows].copy()
        anchor = scored.anchor
        flags = state.step(scored.score[:, new], self.detector, rows, values=scored.departure[:, new],
                           anchor=Anchor(anchor.profile[:, new], anchor.bias[:, new], anchor.scale[:, new]))
        columns = np.arange(grid.shape[1])[new]
        sent = []
        for i in np.flatnonzero(flags.any(axis=1) | was_active):
            previous = np.concatenate([[was_active[i]], flags[i, :-1]])
            for j in list(np.flatnonzero(flags[i] != previous)) or [flags.shape[1] - 1]:
                column = columns[j]
                observed, departure = grid[i, column], scored.departure[i, column]
                median = observed / (1 + departure) if np.isfinite(departure) and departure != -1 else np.nan
                detail = (_finite(observed), _finite(median), _finite(scored.usual[i, column]),
                          _finite(scored.z[i, column]))
                sent += self._transition(block.keys[rows[i]][0], metric, bool(flags[i, j]),
                                         float(np.nan_to_num(scored.score[i, column])), peers.RULE, "warning",
                                         int((first + column) * bucket_ms), detail, now_ms,
                                         member=peers.member(metric))
        return sent

    def check_silence(self, now_ms: int | None = None) -> list[dict]:
        """Devices past `silence_factor` intervals without data open a 'silent' incident."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        devices = sorted(self.last_seen_ms)
        if not devices:
            return []
        for device in devices:
            self.silence_rows.setdefault(device, len(self.silence_rows))
        rows = np.array([self.silence_rows[d] for d in devices])
        interval = self._intervals(devices)
        last = np.array([self.last_seen_ms[d] for d in devices], dtype=np.float64)
        score = silence_score(last, now_ms, interval, self.detector)
        after = self.silence.step(score[:, None], self.detector, rows)[:, 0]
        sent = []
        for i, device in enumerate(devices):
            gap = (now_ms - last[i]) / 1000
            sent += self._transition(device, "", bool(after[i]), float(score[i]), "silent", "warning",
                                     int(last[i]), (gap, None, None, None), now_ms)
        return sent

    def _intervals(self, devices: list[str]) -> np.ndarray:
        block = self.blocks.get(CLOCK)
        if block is None:
            return np.full(len(devices), float(self.params.default_interval_ms))
        rows = np.array([block.row_of.get((d,), 0) for d in devices])
        found = np.nan_to_num(median_interval_ms(block.times[rows]), nan=float(self.params.default_interval_ms))
        # A burst of queued messages is not the device's pace: no device reports faster than the contract allows.
        return np.maximum(found, contract.MIN_INTERVAL_MS)

    # ------------------------------------------------------------ incidents

    def _transition(self, device: str, metric: str, is_active: bool, score: float, rule: str,
                    limit_severity: str, t_ms: int, detail: tuple, now_ms: int, group: str = "",
                    member: str = "") -> list[dict]:
        """One series' state changed or was re-scored: open, grow, update or clear its device's incident.

        All metrics of a device share one incident (a failing chiller lifts
        temperature and humidity: one fault, one alert); device-wide rules
        (silent, clock_offset) have their own. `member` (default: the metric)
        is the finding's name in incident.metrics: a second finding on the
        same metric (its departure from the district's meters) joins and
        leaves the incident on its own.
        """
        member = member or metric
        key = (device, group or ("readings" if metric else rule))
        incident = self.incidents.get(key)
        if is_active and incident is None:
            kind, district = self.info.get(device, ("", ""))
            severity = grade(score, limit_severity, self.detector)
            incident = Incident(f"{device}:{key[1]}:{t_ms}", device, kind, district, metric, rule,
                                severity, t_ms, now_ms, score, {member}, member)
            self.incidents[key] = incident
            self.counters["alerts_opened"] += 1
            return [self._send(incident, "active", score, detail, now_ms)]
        if incident is None:
            return []
        if not is_active:
            incident.metrics.discard(member)
            if incident.metrics:
                return []  # another metric of the device is still anomalous
            del self.incidents[key]
            self.counters["alerts_cleared"] += 1
            if member != incident.opened_by:
                detail = (None, None, None, None)  # cleared by another metric: no numbers for this one
            return [self._send(incident, "cleared", score, detail, now_ms)]
        severity = grade(max(score, incident.score), limit_severity, self.detector)
        joined = member not in incident.metrics
        incident.metrics.add(member)
        stale = now_ms - incident.published_ms >= self.params.update_every_s * 1000
        if joined or rank(severity) > rank(incident.severity) or stale:
            incident.severity = max(severity, incident.severity, key=rank)
            incident.score = max(score, incident.score)
            if member != incident.opened_by:  # explained by the finding that moved, numbers left to its own series
                return [self._send(incident, "active", score, (None, None, None, None), now_ms, metric, rule,
                                   detail)]
            return [self._send(incident, "active", score, detail, now_ms)]
        return []

    def _send(self, incident: Incident, state: str, score: float, detail: tuple, now_ms: int,
              metric: str | None = None, rule: str | None = None, metric_detail: tuple | None = None) -> dict:
        observed, expected, scale, z = detail
        if metric is None:
            explanation = explain(incident.metric, incident.rule, observed, expected, scale, z, incident.started_ms,
                                  self.utc_offset_h)
        else:
            explanation = "Also " + explain(metric, rule or "", *metric_detail, incident.started_ms,
                                            self.utc_offset_h)
        if len(incident.metrics) > 1:
            explanation += f" Affected: {', '.join(sorted(incident.metrics))}."
        incident.published_ms = max(now_ms, incident.published_ms + 1)  # each message newer than the last
        message = {
            "id": incident.id, "device": incident.device, "kind": incident.kind, "district": incident.district,
            "metric": incident.metric, "rule": incident.rule, "state": state, "severity": incident.severity,
            "score": round(min(1.0, max(0.0, score)), 4),
            "observed": observed if incident.metric else None, "expected": expected,
            "started_ms": incident.started_ms, "updated_ms": incident.published_ms,
            "explanation": explanation[:1000],
        }
        raw = contract.encode_alert(message)
        if self.publish is not None:
            self.publish(contract.alert_topic(incident.device), raw)
        self._write(message)
        self.counters["alert_messages"] += 1
        return message

    def _write(self, message: dict) -> None:
        if self.writer is None:
            return
        if time.monotonic() < self.influx_retry_at:
            self.counters["influx_skipped"] += 1  # InfluxDB failed a moment ago: do not stall every alert on it
            return
        tags = {k: message[k] for k in ("device", "district", "kind", "metric", "rule", "severity")}
        fields = {"state": message["state"], "score": float(message["score"]), "explanation": message["explanation"],
                  "id": message["id"]}
        try:
            self.writer.write([line("alerts", tags, fields, message["updated_ms"])])
        except InfluxError as exc:  # the MQTT alert went out; the annotation is best effort
            self.counters["influx_errors"] += 1
            self.influx_retry_at = time.monotonic() + INFLUX_RETRY_S
            log.warning("alert not written to InfluxDB (next try in %d s): %s", INFLUX_RETRY_S, exc)


def _newest(array: np.ndarray, counts: np.ndarray, width: int) -> np.ndarray:
    """Each row's newest counts[i] samples, left-aligned in `width` columns, NaN after them."""
    columns = np.arange(width)[None]
    take = np.clip(array.shape[1] - counts[:, None] + columns, 0, array.shape[1] - 1)
    return np.where(columns < counts[:, None], np.take_along_axis(array, take, axis=1), np.nan)


def rank(severity: str) -> int:
    return contract.SEVERITIES.index(severity) if severity in contract.SEVERITIES else -1


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


__all__ = ["STATISTICAL_RULES", "AnalyticsEngine", "explain"]
