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

import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import orjson

from analytics import peers
from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.config import PEER_METRICS, EngineParams
from analytics.detectors import Anchor, History, median_interval_ms, night_flow_score, silence_score
from analytics.explain import explain
from analytics.incidents import AlertOutput, Detail, Finding, Incident, IncidentLifecycle, changes, finite
from analytics.rules import STATISTICAL_RULES, Hysteresis, clock_offset_score, score_metric
from edge import contract
from telemetry_shared.influx import LineWriter
from telemetry_shared.registry import Registry, RegistryCache

CLOCK = "clock_lag_ms"  # the per-device series of arrival delay, scored for clock jumps


class AnalyticsEngine:
    """The engine without the network: feed messages, call process(), get alert messages."""

    def __init__(self, registry: Registry, writer: LineWriter | None = None,
                 publish: Callable[[str, bytes], None] | None = None, params: EngineParams | None = None,
                 utc_offset_h: int = 7):
        self.params = params or EngineParams()
        self.detector = replace(self.params.params, utc_offset_h=utc_offset_h)
        self.utc_offset_h = utc_offset_h
        self.devices = RegistryCache(registry)
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
        self.output = AlertOutput(writer, publish, self.counters)
        self.lifecycle = IncidentLifecycle(self.params, self.detector, self.output, self.counters)

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
        findings = []
        for i, row in enumerate(rows):
            if not live[row]:
                continue
            n = new_count[row]
            flags = after_flags[i, :n]
            for j in changes(was_active[i], flags):
                at = j - n  # buffer position, from the end
                detail = Detail(float(values[i, at]), finite(expected[i, at]), finite(scale[i, at]), finite(z[i, at]))
                findings.append(Finding(block.keys[row][0], "" if metric == CLOCK else metric, bool(flags[j]),
                                        float(score[i, at]), str(rule[i, at]), str(severity[i, at]),
                                        int(times[i, at]), detail))
        return self._apply(findings, now_ms)

    def _apply(self, findings: list[Finding], now_ms: int) -> list[dict]:
        """Hand findings to the incident lifecycle, in order; returns the alert messages sent."""
        sent: list[dict] = []
        for finding in findings:
            sent += self.lifecycle.apply(self, finding, now_ms)
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
            window_end = (night * day_ms + p.night_end_h * hour_ms) - self.utc_offset_h * hour_ms
            # Hysteresis by the night: opens at open_score, clears on a night below clear_score.
            is_open = (device, "night_flow") in self.incidents
            active = score[row] >= (p.clear_score if is_open else p.open_score)
            sent += self._apply([Finding(device, "flow_lps", bool(active), float(score[row]), "night_flow_rise",
                                         "warning", int(window_end), Detail(float(minima[row]), usual),
                                         group="night_flow")], now_ms)
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
        findings = []
        for i in np.flatnonzero(flags.any(axis=1) | was_active):
            for j in changes(was_active[i], flags[i]):
                column = columns[j]
                observed, departure = grid[i, column], scored.departure[i, column]
                median = observed / (1 + departure) if np.isfinite(departure) and departure != -1 else np.nan
                detail = Detail(finite(observed), finite(median), finite(scored.usual[i, column]),
                                finite(scored.z[i, column]))
                findings.append(Finding(block.keys[rows[i]][0], metric, bool(flags[i, j]),
                                        float(np.nan_to_num(scored.score[i, column])), peers.RULE, "warning",
                                        int((first + column) * bucket_ms), detail, member=peers.member(metric)))
        return self._apply(findings, now_ms)

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
        gaps = (now_ms - last) / 1000
        return self._apply([Finding(device, "", bool(after[i]), float(score[i]), "silent", "warning", int(last[i]),
                                    Detail(float(gaps[i]))) for i, device in enumerate(devices)], now_ms)

    def _intervals(self, devices: list[str]) -> np.ndarray:
        block = self.blocks.get(CLOCK)
        if block is None:
            return np.full(len(devices), float(self.params.default_interval_ms))
        rows = np.array([block.row_of.get((d,), 0) for d in devices])
        found = np.nan_to_num(median_interval_ms(block.times[rows]), nan=float(self.params.default_interval_ms))
        # A burst of queued messages is not the device's pace: no device reports faster than the contract allows.
        return np.maximum(found, contract.MIN_INTERVAL_MS)

def _newest(array: np.ndarray, counts: np.ndarray, width: int) -> np.ndarray:
    """Each row's newest counts[i] samples, left-aligned in `width` columns, NaN after them."""
    columns = np.arange(width)[None]
    take = np.clip(array.shape[1] - counts[:, None] + columns, 0, array.shape[1] - 1)
    return np.where(columns < counts[:, None], np.take_along_axis(array, take, axis=1), np.nan)


__all__ = ["STATISTICAL_RULES", "AnalyticsEngine", "Incident", "explain"]
