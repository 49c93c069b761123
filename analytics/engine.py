"""The streaming engine: validated telemetry in, one alert per incident out.

Telemetry messages are decoded with the wire contract (the device's kind and
district come from the registry), their readings appended to a ring buffer
per (device, metric), and every series that received data is scored with
the vectorised rules (analytics.rules), all series of a metric at once,
through the hysteresis that turns scores into incident states. Beside the
metrics: each device's clock (analytics.clock), its silence, the water
meters' minimum night flow (analytics.nightflow) and each meter against its
district (analytics.peercheck). Every scorer hands its findings to the
incident lifecycle (analytics.incidents): one alert per fault, opened,
updated while it lasts and cleared, sent to MQTT and InfluxDB. Backfilled
history (`hist`) feeds the buffers but never opens or updates a live alert.

What the engine learnt lives in one `LearntState` (analytics.learnt), which
analytics.state saves and loads whole.
"""

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import orjson

from analytics import clock, nightflow, peercheck
from analytics.buffers import CoarseHistory, SeriesBlock, row_blocks
from analytics.config import PASS_BLOCK_ROWS, PEER_METRICS, EngineParams
from analytics.detectors import Anchor, Baseline, History, silence_score
from analytics.detectors.stream import Tiers
from analytics.explain import explain
from analytics.incidents import AlertOutput, Detail, Finding, Incident, IncidentLifecycle, changes, finite, newest
from analytics.learnt import LearntState, new_history
from analytics.rules import SKIP_STATISTICAL, STATISTICAL_RULES, MetricScores, score_metric_new
from analytics.statecopy import ARRIVALS, CopyOnWrite
from edge import contract
from telemetry_shared.detector_tuning import DetectorTuningStore, TuningCache
from telemetry_shared.influx import LineWriter
from telemetry_shared.registry import Registry, RegistryCache


class AnalyticsEngine:
    """The engine without the network: feed messages with ingest(), call process() and the checks, get the
    alert messages sent (also published through `publish` and written through `writer`).

    registry: where a device's kind and district come from (cached);
    writer: InfluxDB, for the alert annotations (None: none written);
    publish(topic, payload): the MQTT publisher of alert messages (None: not published);
    params: buffers and pacing (EngineParams, with its detector parameters);
    utc_offset_h, time_zone: local time for the daily profile, the night window and the explanations (the
    zone, daylight saving included, when given; else the fixed offset).
    Not thread-safe: one thread feeds it, scores it and saves its state.
    """

    def __init__(self, registry: Registry, writer: LineWriter | None = None,
                 publish: Callable[[str, bytes], None] | None = None, params: EngineParams | None = None,
                 utc_offset_h: int = 7, time_zone: str = ""):
        self.params = params or EngineParams()
        self.detector = replace(self.params.params, utc_offset_h=utc_offset_h, time_zone=time_zone)
        self.devices = RegistryCache(registry)
        self.learnt = LearntState.empty(self.params, self.detector)
        self.clock = clock.ClockScorer(self.params, self.detector)
        self.pending: dict[str, list] = defaultdict(list)  # metric -> [(row, samples added, live)] since the pass
        self.rebuild_budget = self.params.rebuilds_per_pass  # rebuilds left in this pass (_defer_rebuilds)
        self.block_rows = PASS_BLOCK_ROWS  # series of a metric scored at once in a pass (0: all at once)
        self.counters: Counter[str] = Counter()
        self.peer_pool: ThreadPoolExecutor | None = None  # check_peers_beside's thread, made on first use
        self.peer_running: tuple[peercheck.PeerJob, Future] | None = None
        # a checkpoint's view of the state being saved (analytics.statecopy): rows are copied before they change
        self.copying: CopyOnWrite | None = None
        # engineers' approved changes (from operators' dismissals), in the registry file beside the devices
        self.tuning = TuningCache(DetectorTuningStore(registry.path))
        self.held_series: set[tuple] = set()  # (incident key, member) held by a calendar exception until quiet
        self.lifecycle = IncidentLifecycle(self.params, self.detector, AlertOutput(writer, publish, self.counters),
                                           self.counters)

    def begin_copy(self) -> CopyOnWrite:
        """Begin a copy of the learnt state as it is now, for a checkpoint saved beside the stream (between passes):
        the save reads its per-series arrays later, and what the engine changes of a row is kept first (ingest:
        the samples an append shifts out of the buffer, the history's buckets it changes; a pass: the row of the
        detectors' state), until end_copy()."""
        self.copying = CopyOnWrite(self.learnt)
        return self.copying

    def end_copy(self) -> None:
        """The checkpoint's save is over: its kept rows are dropped."""
        if self.copying is not None:
            self.copying.close()
            self.copying = None

    def restore(self, learnt: LearntState) -> None:
        """Go on from a saved state (analytics.state.load_state); only before the first ingest()."""
        if self.pending or self.clock.pending:
            raise ValueError("restore() replaces what the engine learnt: call it before the first ingest()")
        self.learnt = learnt

    # ------------------------------------------------------------ input

    def ingest(self, device_id: str, payload: bytes, received_ms: int) -> int | None:
        """One telemetry message of `device_id`, arrived at `received_ms` (Unix ms): its readings are buffered
        for the next process(). Bad messages and unknown devices are counted and dropped (ingest
        dead-letters them). Returns the newest reading's time of a live message (None: backfill, or dropped),
        for the engine's lag."""
        self.counters["messages"] += 1
        device = self.devices.get(device_id)
        if device is None or device.state == "retired":
            self.counters["unknown_device"] += 1
            return None
        try:
            batch = contract.decode_telemetry(payload, device.kind, received_ms, loads=orjson.loads)
        except contract.ContractError as exc:
            self.counters[f"rejected_{exc.reason}"] += 1
            return None
        if not batch.samples:
            return None
        learnt = self.learnt
        learnt.info[device_id] = (device.kind, device.district)
        learnt.last_seen_ms[device_id] = received_ms
        by_metric: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for t_ms, values, _quality in batch.samples:
            for metric, value in values.items():
                by_metric[metric][0].append(t_ms)
                by_metric[metric][1].append(value)
        for metric, (times, values) in by_metric.items():
            block = learnt.block(metric, self.params.buffer_samples)
            row = block.row((device_id,))
            if self.copying is None:
                added = self._append(metric, block, row, times, values)
            else:  # a checkpoint reads the state: what this append changes is kept first (analytics.statecopy)
                with self.copying.appending(metric, row, len(times)):
                    added = self._append(metric, block, row, times, values)
            if added:
                self.pending[metric].append((row, added, not batch.hist))
        self.counters["readings"] += sum(len(v) for _, v in by_metric.values())
        if batch.hist:  # backfill arrives late on purpose: no evidence about the clock, nor about the engine's lag
            return None
        newest_ms = max(t for t, _, _ in batch.samples)
        if self.copying is not None and (device_id,) in learnt.arrivals.row_of:
            with self.copying.appending(ARRIVALS, learnt.arrivals.row_of[(device_id,)], 1):
                self.clock.observe(learnt.arrivals, device_id, received_ms, newest_ms)
        else:
            self.clock.observe(learnt.arrivals, device_id, received_ms, newest_ms)
        return newest_ms

    def _append(self, metric: str, block: SeriesBlock, row: int, times: list[int], values: list[float]) -> int:
        """Readings of one series into its ring buffer and coarse history; returns how many were appended."""
        added = block.append(row, np.array(times), np.array(values))
        if added and self.params.profile_days > 0:
            self._coarse(metric).add(row, block.times[row, -added:], block.values[row, -added:])
        return added

    def _coarse(self, metric: str) -> CoarseHistory:
        history = self.learnt.history.get(metric)
        if history is None:
            history = self.learnt.history[metric] = new_history(self.params)
        return history

    # ------------------------------------------------------------ scoring

    def process(self, now_ms: int | None = None) -> list[dict]:
        """Score every series that received data since the last pass, and the clocks of the devices that sent
        live messages; returns the alert messages sent. now_ms: the engine's clock (default: now)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        sent: list[dict] = []
        pending, self.pending = self.pending, defaultdict(list)
        self.rebuild_budget = self.params.rebuilds_per_pass
        for metric, items in pending.items():
            sent += self._apply(self._score(metric, items), now_ms)
        return sent + self._apply(self.clock.score(self.learnt.arrivals), now_ms)

    def _score(self, metric: str, items: list) -> list[Finding]:
        """One metric's findings: its rows with new samples scored at once, the live ones fed to the hysteresis."""
        block = self.learnt.blocks[metric]
        new_count: dict[int, int] = defaultdict(int)
        live: dict[int, bool] = {}
        for row, added, is_live in items:
            new_count[row] = min(new_count[row] + added, block.capacity)  # older ones already left the buffer
            live[row] = live.get(row, False) or is_live
        self._defer_rebuilds(metric, new_count, live)
        if not new_count:
            return []
        rows = np.array(sorted(new_count))
        width = max(new_count.values())
        self.learnt.stream(metric, self.detector).resize(int(rows.max()) + 1)
        self.learnt.states[metric].resize(int(rows.max()) + 1)
        findings = []
        copying = self.copying  # a checkpoint's copy, begun and ended between passes (service.py)
        for part in row_blocks(rows.size, self.block_rows):  # every row is scored on its own: blocks bound memory
            scored = rows[part].tolist()
            if copying is not None:
                # a checkpoint reads the state: the detectors' state of these rows changes now, copied first (only
                # it; their error rings whole until the block is scored, then only the samples the pass shifted
                # out of them: a block's rows at a time, so a pass over every series holds a block's whole rings
                # at most)
                for row in scored:
                    copying.keep(metric, row)
            findings += self._score_rows(metric, rows[part], new_count, live, width)
            if copying is not None:
                copying.settle(metric, scored, [new_count[row] for row in scored])
        return findings

    def _score_rows(self, metric: str, rows: np.ndarray, new_count: dict[int, int], live: dict[int, bool],
                    width: int) -> list[Finding]:
        """_score for one block of its rows (sorted), `width` the pass's most new samples of a row."""
        block = self.learnt.blocks[metric]
        values, times = block.values[rows], block.times[rows]
        scored = self._score_new(metric, rows, np.array([new_count[row] for row in rows]), width)
        score, rule, severity, anchor = scored.score, scored.rule, scored.severity, scored.anchor
        expected, scale, z = scored.baseline.expected, scored.baseline.scale, scored.baseline.z
        # Only the new samples of live batches feed the incidents; history fills the buffer only.
        fed = np.array([new_count[row] if live[row] else 0 for row in rows])
        feed, fed_values = newest(score, fed, width), newest(values, fed, width)
        fed_anchor = None if anchor is None else \
            Anchor(*(newest(part, fed, width) for part in (anchor.profile, anchor.bias, anchor.scale)))
        state = self.learnt.states[metric]
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
                findings.append(Finding(block.keys[row][0], metric, bool(flags[j]),
                                        float(score[i, at]), str(rule[i, at]), str(severity[i, at]),
                                        int(times[i, at]), detail))
        return findings

    def _defer_rebuilds(self, metric: str, new_count: dict[int, int], live: dict[int, bool]) -> None:
        """Keep this pass's rebuilds (rows without a detector state, scored over their whole buffer at ~10 ms
        each) within the pass's budget: the rows past it leave `new_count` and go back to the pending readings
        with their count and liveness, so the next pass that builds them scores every reading they buffered
        meanwhile and feeds the live ones to the hysteresis (their alerts come late, none is lost). Lowest rows
        first: a block's rows are in order of arrival, so the longest waiting are built first."""
        stream = self.learnt.stream(metric, self.detector)
        scored = stream.arrays["scored"]
        fresh = [row for row in sorted(new_count) if row >= scored.shape[0] or scored[row] == 0]
        waiting = fresh[max(self.rebuild_budget, 0):]
        self.rebuild_budget -= len(fresh) - len(waiting)
        self.counters["rebuilds"] += len(fresh) - len(waiting)
        for row in waiting:
            self.pending[metric].append((row, new_count.pop(row), live.pop(row)))
        self.counters["rebuilds_waiting"] = sum(len(items) for items in self.pending.values())

    def _score_new(self, metric: str, rows: np.ndarray, counts: np.ndarray, width: int = 0) -> MetricScores:
        """The rules over each row's newest counts[i] samples, right-aligned in `width` columns (default
        max(counts); NaN, '' on the left): the detectors go on from their state (detectors.stream), so a pass
        costs the new samples. A row without a state yet (new, or loaded from a file without one) is first scored
        over its whole buffer."""
        block = self.learnt.blocks[metric]
        stream = self.learnt.stream(metric, self.detector)
        stream.resize(int(rows.max()) + 1)
        fresh = stream.arrays["scored"][rows] == 0
        held = (block.times[rows] > 0).sum(axis=1)
        columns = np.where(fresh, np.maximum(held, counts), counts)
        width = width or int(counts.max())
        shape = (rows.size, width)
        out = MetricScores(np.full(shape, np.nan), np.full(shape, "", dtype=object), np.full(shape, "", dtype=object),
                           Baseline(*(np.full(shape, np.nan) for _ in range(3))),
                           Anchor(*(np.full(shape, np.nan) for _ in range(3))))
        for n in np.unique(columns):
            same = np.flatnonzero(columns == n)
            # at most 16 x block_rows samples at once: a row rebuilt over its whole buffer (n its samples) has
            # ~330 KB of temporaries at 720 samples
            rows_at_once = max(1, self.block_rows * 16 // int(n)) if self.block_rows > 0 else 0
            for part in row_blocks(same.size, rows_at_once):
                picked = same[part]
                group = rows[picked]
                part = score_metric_new(metric, stream, group, block.values[group], block.times[group], int(n),
                                        self.detector, history=self._tiers(metric, group))
                keep = min(int(n), width)
                target = (picked, slice(width - keep, width))
                out.score[target], out.rule[target], out.severity[target] = \
                    part.score[:, -keep:], part.rule[:, -keep:], part.severity[:, -keep:]
                for mine, theirs in ((out.baseline, part.baseline), (out.anchor, part.anchor)):
                    if theirs is None:
                        continue
                    for name in ("expected", "scale", "z") if mine is out.baseline else ("profile", "bias", "scale"):
                        getattr(mine, name)[target] = getattr(theirs, name)[:, -keep:]
        if metric in SKIP_STATISTICAL:
            out.anchor = None
        return out

    def _tiers(self, metric: str, rows: np.ndarray) -> Tiers | None:
        history = self.learnt.history.get(metric)
        return None if history is None else Tiers(history, rows)

    def _history(self, metric: str, rows: np.ndarray) -> History | None:
        history = self.learnt.history.get(metric)
        if history is None:
            return None
        values, times, tolerance = history.window(rows)
        return History(values, times, tolerance_ms=tolerance)

    # ------------------------------------------------------------ periodic checks

    def check_night_flow(self, now_ms: int | None = None) -> list[dict]:
        """Once a night window has closed: each water meter's minimum night flow against its earlier nights
        (analytics.nightflow); returns the alert messages sent."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return self._apply(nightflow.check_night_flow(self.learnt, self.detector, now_ms), now_ms)

    def check_peers(self, now_ms: int | None = None) -> list[dict]:
        """Each meter of PEER_METRICS against the other meters of its district, on the minute buckets closed
        since the last check (analytics.peercheck); returns the alert messages sent."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        sent: list[dict] = []
        for metric in PEER_METRICS:
            sent += self._apply(peercheck.check_peers_of(self.learnt, metric, self.params, self.detector), now_ms)
        return sent

    def check_peers_beside(self, now_ms: int | None = None) -> list[dict]:
        """check_peers without holding up the stream: the district comparison (seconds at thousands of meters)
        runs on a thread of its own over a copy of the meters' grid, while the engine's thread goes on scoring
        readings. Each call hands the findings of a finished comparison to the incident lifecycle (returns the
        alert messages sent) and lays out the next one if a bucket has closed since; one at a time."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        running = self.peer_running
        if running is not None and not running[1].done():
            return []
        sent: list[dict] = []
        if running is not None:
            self.peer_running = None
            job, future = running
            started = time.monotonic()
            sent = self._apply(peercheck.apply_peer_scores(self.learnt, job, future.result(), self.detector), now_ms)
            self.counters["peer_apply_ms"] = round((time.monotonic() - started) * 1000)
        for metric in PEER_METRICS:
            started = time.monotonic()
            job = peercheck.peer_job(self.learnt, metric, self.params)
            if job is not None:
                self.counters["peer_layout_ms"] = round((time.monotonic() - started) * 1000)  # the stream's pause
                self.peer_running = (job, self._peer_pool().submit(job.score, self.detector))
                break  # one comparison at a time; the next metric's when this one is done
        return sent

    def _peer_pool(self) -> ThreadPoolExecutor:
        if self.peer_pool is None:
            self.peer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-peers")
        return self.peer_pool

    def check_silence(self, now_ms: int | None = None) -> list[dict]:
        """Devices past `silence_factor` of their own intervals without a message open a 'silent' incident;
        returns the alert messages sent."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        learnt = self.learnt
        devices = sorted(learnt.last_seen_ms)
        if not devices:
            return []
        for device in devices:
            learnt.silence_rows.setdefault(device, len(learnt.silence_rows))
        rows = np.array([learnt.silence_rows[d] for d in devices])
        interval = clock.pace_ms(learnt.arrivals, devices, self.params.default_interval_ms)
        last = np.array([learnt.last_seen_ms[d] for d in devices], dtype=np.float64)
        score = silence_score(last, now_ms, interval, self.detector)
        after = learnt.silence.step(score[:, None], self.detector, rows)[:, 0]
        gaps = (now_ms - last) / 1000
        return self._apply([Finding(device, "", bool(after[i]), float(score[i]), "silent", "warning", int(last[i]),
                                    Detail(float(gaps[i]))) for i, device in enumerate(devices)], now_ms)

    def _apply(self, findings: list[Finding], now_ms: int) -> list[dict]:
        """Hand findings to the incident lifecycle, in order; returns the alert messages sent. A finding that
        would open an alert is held when an approved tuning says so (telemetry_shared.detector_tuning); the
        series is asked again at its next reading."""
        sent: list[dict] = []
        for finding in findings:
            if self._held(finding):
                self.counters["tuning_held"] += 1
                continue
            sent += self.lifecycle.apply(self.learnt, finding, now_ms)
        return sent

    def _held(self, finding: Finding) -> bool:
        """Whether an approved tuning keeps this finding from opening an alert. A series held by a calendar
        exception stays held until it is quiet again (work that ends at 10:40 still has its series anomalous
        after the slot); one held by a score cut-off or a limit is asked again at each reading."""
        series = (finding.key, finding.name)
        if not finding.active:
            self.held_series.discard(series)
            return False
        if finding.key in self.learnt.incidents:
            return False
        if series in self.held_series:
            return True
        change = self.tuning.holding(finding.device, finding.metric, finding.rule, finding.score,
                                     finding.detail.observed, finding.t_ms, self.detector.time_zone,
                                     self.detector.utc_offset_h)
        if change is not None and change.change == "calendar":
            self.held_series.add(series)
        return change is not None


__all__ = ["STATISTICAL_RULES", "AnalyticsEngine", "Incident", "explain"]

