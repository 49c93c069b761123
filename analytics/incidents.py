"""The incident lifecycle: scorers' findings in, one alert per fault out (opened, updated, cleared).

Every scorer of the engine (the metrics' rules, the clock, silence, the
night-flow and the peer checks) hands over `Finding`s: one series' state at
one time, as its hysteresis (analytics.rules.Hysteresis) decided it.
`IncidentLifecycle.apply` turns them into incidents:

- all metrics of a device share one incident (a failing chiller lifts
  temperature and humidity: one fault, one alert); device-wide rules
  (silent, clock_offset) and the night-flow check have their own;
- an incident opens on its first active finding, grows when another metric
  joins, is re-published when its severity rises or at most every
  `update_every_s` while it lasts, and clears once none of its members is
  active;
- each message is one `contract.encode_alert` dict, sent through
  `AlertOutput`: the MQTT alert topic (QoS 1; the API stores it) and
  InfluxDB measurement `alerts` (Grafana annotations, best effort).

The open incidents live in the engine's learnt state (analytics.learnt), so
a restart goes on with the same alert ids.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from analytics.config import DetectorParams, EngineParams
from analytics.explain import explain
from analytics.rules import grade
from edge import contract
from telemetry_shared import alert_text
from telemetry_shared.influx import InfluxError, LineWriter
from telemetry_shared.lineproto import alert_line

if TYPE_CHECKING:
    from analytics.learnt import LearntState

log = logging.getLogger("analytics")

INFLUX_RETRY_S = 30  # after a failed annotation write, alerts go to MQTT only for this long


class Detail(NamedTuple):
    """The numbers behind a finding, for the operator's explanation (None: unknown)."""

    observed: float | None = None
    expected: float | None = None
    scale: float | None = None
    z: float | None = None


NO_DETAIL = Detail()


@dataclass(frozen=True)
class Finding:
    """One series' state at one time, as its scorer and hysteresis saw it."""

    device: str
    metric: str  # '' for a device-wide rule (silent, clock_offset)
    active: bool  # the hysteresis holds the series anomalous
    score: float  # in [0, 1]
    rule: str
    severity: str  # a limit's own severity, or '' to grade by score
    t_ms: int  # the reading's time: the incident's start if it opens here
    detail: Detail = NO_DETAIL
    group: str = ""  # the incident it belongs to; default: 'readings' for a metric, the rule for a device-wide one
    member: str = ""  # its name among the incident's metrics; default: the metric

    @property
    def key(self) -> tuple[str, str]:
        """(device, group): the incident this finding opens, grows, updates or clears."""
        return self.device, self.group or ("readings" if self.metric else self.rule)

    @property
    def name(self) -> str:
        return self.member or self.metric


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
    metrics: set[str] = field(default_factory=set)  # the members currently anomalous in this incident
    opened_by: str = ""  # the member of `metrics` that opened it (its numbers explain the incident)


class AlertOutput:
    """Where alert messages go: the MQTT alert topic and, best effort, InfluxDB's `alerts` measurement."""

    def __init__(self, writer: LineWriter | None, publish: Callable[[str, bytes], None] | None,
                 counters: Counter[str]):
        self.writer = writer
        self.publish = publish
        self.counters = counters
        self.influx_retry_at = 0.0

    def send(self, message: dict) -> None:
        """Publish one alert message (QoS 1 through `publish`) and write its annotation; never raises for InfluxDB."""
        if self.publish is not None:
            self.publish(contract.alert_topic(message["device"]), contract.encode_alert(message))
        self._write(message)
        self.counters["alert_messages"] += 1

    def _write(self, message: dict) -> None:
        if self.writer is None:
            return
        if time.monotonic() < self.influx_retry_at:
            self.counters["influx_skipped"] += 1  # InfluxDB failed a moment ago: do not stall every alert on it
            return
        try:
            self.writer.write([alert_line(message)])
        except InfluxError as exc:  # the MQTT alert went out; the annotation is best effort
            self.counters["influx_errors"] += 1
            self.influx_retry_at = time.monotonic() + INFLUX_RETRY_S
            log.warning("alert not written to InfluxDB (next try in %d s): %s", INFLUX_RETRY_S, exc)


class IncidentLifecycle:
    """Opens, grows, updates and clears the incidents of the learnt state from findings."""

    def __init__(self, params: EngineParams, detector: DetectorParams, output: AlertOutput,
                 counters: Counter[str]):
        self.update_every_ms = params.update_every_s * 1000
        self.detector = detector
        self.output = output
        self.counters = counters

    def apply(self, learnt: LearntState, finding: Finding, now_ms: int) -> list[dict]:
        """Apply one finding to its device's incident; returns the alert messages sent (none, one).

        learnt: the engine's state (its open incidents are changed in place;
        a new incident takes the device's kind and district from it).
        now_ms: the engine's clock, for the messages' `updated_ms` and the
        re-publication pace.
        """
        incident = learnt.incidents.get(finding.key)
        if finding.active and incident is None:
            return [self._open(learnt, finding, now_ms)]
        if incident is None:
            return []
        if not finding.active:
            return self._leave(learnt, incident, finding, now_ms)
        return self._update(incident, finding, now_ms)

    def _open(self, learnt: LearntState, finding: Finding, now_ms: int) -> dict:
        kind, district = learnt.info.get(finding.device, ("", ""))
        key = finding.key
        incident = Incident(f"{finding.device}:{key[1]}:{finding.t_ms}", finding.device, kind, district,
                            finding.metric, finding.rule, grade(finding.score, finding.severity, self.detector),
                            finding.t_ms, now_ms, finding.score, {finding.name}, finding.name)
        learnt.incidents[key] = incident
        self.counters["alerts_opened"] += 1
        return self._send(incident, "active", finding.score, finding.detail, now_ms)

    def _leave(self, learnt: LearntState, incident: Incident, finding: Finding, now_ms: int) -> list[dict]:
        incident.metrics.discard(finding.name)
        if incident.metrics:
            return []  # another member of the incident is still anomalous
        del learnt.incidents[finding.key]
        self.counters["alerts_cleared"] += 1
        # Cleared by another member than the one that opened it: no numbers for the opening one.
        detail = finding.detail if finding.name == incident.opened_by else NO_DETAIL
        return [self._send(incident, "cleared", finding.score, detail, now_ms)]

    def _update(self, incident: Incident, finding: Finding, now_ms: int) -> list[dict]:
        severity = grade(max(finding.score, incident.score), finding.severity, self.detector)
        joined = finding.name not in incident.metrics
        incident.metrics.add(finding.name)
        stale = now_ms - incident.published_ms >= self.update_every_ms
        if not (joined or rank(severity) > rank(incident.severity) or stale):
            return []
        incident.severity = max(severity, incident.severity, key=rank)
        incident.score = max(finding.score, incident.score)
        if finding.name != incident.opened_by:  # explained by the finding that moved, numbers left to its own series
            return [self._send(incident, "active", finding.score, NO_DETAIL, now_ms, also=finding)]
        return [self._send(incident, "active", finding.score, finding.detail, now_ms)]

    def _send(self, incident: Incident, state: str, score: float, detail: Detail, now_ms: int,
              also: Finding | None = None) -> dict:
        if also is None:
            text = explain(incident.metric, incident.rule, *detail, incident.started_ms)
        else:
            text = explain(also.metric, also.rule, *also.detail, incident.started_ms)
            text["params"]["also"] = True
        if len(incident.metrics) > 1:
            # members by their metric; a peer finding as "peer:<metric>" (its name is English words)
            affected = [alert_text.PEER + m.removesuffix(alert_text.PEER_MEMBER) if m.endswith(alert_text.PEER_MEMBER)
                        else m for m in sorted(incident.metrics)]
            text["params"]["affected"] = affected[:contract.MAX_METRICS_PER_SAMPLE]
        zone = alert_text.zone_name(self.detector.time_zone, self.detector.utc_offset_h)
        explanation = alert_text.render(text, "en", zone)
        incident.published_ms = max(now_ms, incident.published_ms + 1)  # each message newer than the last
        message = {
            "id": incident.id, "device": incident.device, "kind": incident.kind, "district": incident.district,
            "metric": incident.metric, "rule": incident.rule, "state": state, "severity": incident.severity,
            "score": round(min(1.0, max(0.0, score)), 4),
            "observed": detail.observed if incident.metric else None, "expected": detail.expected,
            "started_ms": incident.started_ms, "updated_ms": incident.published_ms,
            "explanation": explanation[:1000], "message": text,
        }
        self.output.send(message)
        return message


def changes(was_active: bool, flags: np.ndarray) -> list[int]:
    """Where one series' new flags opened or cleared its incident, in order; its newest position when none did.

    was_active: the series' state before these flags; flags (T,): the
    hysteresis' output for its new samples. Every opening and clearing is
    sent (a short incident may open and clear within one batch); otherwise
    the newest sample may update an open incident.
    """
    previous = np.concatenate([[was_active], flags[:-1]])
    return list(np.flatnonzero(flags != previous)) or [flags.size - 1]


def newest(array: np.ndarray, counts: np.ndarray, width: int) -> np.ndarray:
    """Each row's newest counts[i] samples of `array` (S, T), left-aligned in `width` columns, NaN after them:
    what a scorer feeds its hysteresis after a pass (a NaN step is no reading)."""
    columns = np.arange(width)[None]
    take = np.clip(array.shape[1] - counts[:, None] + columns, 0, array.shape[1] - 1)
    return np.where(columns < counts[:, None], np.take_along_axis(array, take, axis=1), np.nan)


def rank(severity: str) -> int:
    """A severity's order in contract.SEVERITIES (-1 for an unknown one)."""
    return contract.SEVERITIES.index(severity) if severity in contract.SEVERITIES else -1


def finite(value: float) -> float | None:
    """A float for a Detail, None when NaN or infinite."""
    return float(value) if np.isfinite(value) else None
