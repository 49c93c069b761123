"""Sensor-fault alerts from what ingest rejected.

Ingest already records every rejected reading or message in its dead-letter
store (ingest/deadletter.py: reason, device, the rejected metric and value).
This watcher reads the new rows every CITY_API_SENSOR_FAULT_CHECK_S, and when
one registered device has CITY_API_SENSOR_FAULT_REJECTS of them within
CITY_API_SENSOR_FAULT_WINDOW_S it raises one `sensor_fault` alert for that
device, naming the reasons and listing the rejected values. While rejections
go on the same alert is updated; a window without any clears it. Ingest does
no extra work for this, and the alert goes through the alert store like any
other (board, stream, escalation, notifications).

Only what says the device itself is at fault is counted: not InfluxDB's
refusals, not unknown or retired devices, not repeated sequence numbers.
"""

import json
import logging
import sqlite3
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.db import ApiDb
from edge import contract
from telemetry_shared.registry import Registry

log = logging.getLogger("api.sensorfault")

RULE = "sensor_fault"
NOT_THE_DEVICE = {"influx_rejected", "influx_too_large", "spool_corrupt", "unknown_device", "retired_device",
                  "repeated_seq", "bad_topic", "bad_device_id"}
SHOWN_VALUES = 10  # rejected values quoted in the explanation
KEPT_PER_DEVICE = 1000  # rejections remembered per device within the window
READ_BATCH = 5000


@dataclass
class Rejection:
    received_ms: int
    reason: str
    metric: str
    value: Any


def _rejection(row: sqlite3.Row) -> Rejection:
    """A dead letter's reason, and its metric and value when it is one reading (detail is then JSON)."""
    metric, value = "", None
    try:
        detail = json.loads(row["detail"])
        if isinstance(detail, dict):
            metric, value = str(detail.get("metric", ""))[:32], detail.get("value")
    except ValueError:
        pass  # a whole message refused: its detail is a sentence, not one value
    return Rejection(row["received_ms"], row["reason"], metric, value)


def _unit_and_bounds(kind: str, metric: str) -> str:
    spec = contract.KINDS.get(kind, {}).get(metric)
    if not spec:
        return ""
    unit, lower, upper = spec
    return f"; its bounds are {lower:g} to {upper:g}{' ' + unit if unit else ''}"


def explain(device: str, kind: str, rejections: list[Rejection], window_s: float) -> str:
    """'6 readings from pwr-0001 rejected within 10 min: out of bounds ×6. Rejected voltage_v: 600, ...'"""
    reasons = Counter(r.reason for r in rejections)
    named = ", ".join(f"{reason.replace('_', ' ')} ×{n}" for reason, n in reasons.most_common())
    text = (f"{len(rejections)} readings or messages from {device} rejected within {window_s / 60:g} min: "
            f"{named}.")
    by_metric: dict[str, list[str]] = {}
    for r in rejections[-SHOWN_VALUES:]:
        if r.metric:
            by_metric.setdefault(r.metric, []).append(repr(r.value) if isinstance(r.value, str) else f"{r.value}")
    for metric, values in by_metric.items():
        text += f" Rejected {metric}: {', '.join(values)}{_unit_and_bounds(kind, metric)}."
    if not by_metric:
        text += " Whole messages were refused (see `city deadletter list --device " + device + "`)."
    return text[:1000]


def fault_message(device: str, kind: str, rejections: list[Rejection], window_s: float) -> dict[str, Any]:
    """The explanation as a catalogue message (edge/contract.py), for readers of other languages: the
    counts per reason and the most rejected metric with its last values and physical bounds."""
    params: dict[str, Any] = {"device": device, "window_min": window_s / 60}
    if not rejections:
        return {"key": "explain.sensor_fault_none", "params": params}
    reasons = Counter(r.reason for r in rejections).most_common(contract.MAX_METRICS_PER_SAMPLE)
    params |= {"n": len(rejections), "reasons": [f"{reason}:{n}" for reason, n in reasons]}
    metrics = Counter(r.metric for r in rejections if r.metric)
    if not metrics:
        return {"key": "explain.sensor_fault_messages", "params": params}
    metric = metrics.most_common(1)[0][0]
    values = [r.value for r in rejections[-SHOWN_VALUES:] if r.metric == metric]
    params |= {"metric": metric, "values": ", ".join(repr(v) if isinstance(v, str) else f"{v}" for v in values)[:200]}
    spec = contract.KINDS.get(kind, {}).get(metric)
    if spec:
        params |= {"low": spec[1], "high": spec[2]}
        return {"key": "explain.sensor_fault_bounds", "params": params}
    return {"key": "explain.sensor_fault", "params": params}


class SensorFaultWatcher:
    """Reads the dead-letter store, keeps each device's recent rejections, raises and clears alerts."""

    def __init__(self, deadletter_file: Path, registry: Registry, db: ApiDb, raise_alert: Callable[[dict], None],
                 threshold: int, window_s: float):
        self.path = Path(deadletter_file)
        self.registry = registry
        self.db = db
        self.raise_alert = raise_alert
        self.threshold = threshold
        self.window_ms = int(window_s * 1000)
        self.window_s = window_s
        self.cursor = 0
        self.recent: dict[str, deque[Rejection]] = {}
        self.conn: sqlite3.Connection | None = None

    def check(self, now: int) -> None:
        """One round: read what is new, then raise, update or clear alerts."""
        fresh = self._read_new(now)
        for rejections in self.recent.values():
            while rejections and rejections[0].received_ms < now - self.window_ms:
                rejections.popleft()
        latest = self._latest_alerts()
        for device in set(fresh) | set(latest):
            self._decide(device, latest.get(device), device in fresh, now)
        self.recent = {device: r for device, r in self.recent.items() if r}

    def _read_new(self, now: int) -> set[str]:
        if self.conn is None:
            if not self.path.exists():
                return set()  # ingest has rejected nothing yet
            self.conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self.conn.row_factory = sqlite3.Row
        fresh: set[str] = set()
        while True:
            try:
                rows = self.conn.execute(
                    "SELECT id, received_ms, reason, device, detail FROM dead_letters WHERE id > ? AND"
                    " received_ms >= ? ORDER BY id LIMIT ?", (self.cursor, now - self.window_ms, READ_BATCH)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return fresh  # ingest is creating the file right now
                raise
            for row in rows:
                self.cursor = row["id"]
                if row["reason"] in NOT_THE_DEVICE or not row["device"]:
                    continue
                self.recent.setdefault(row["device"], deque(maxlen=KEPT_PER_DEVICE)).append(_rejection(row))
                fresh.add(row["device"])
            if len(rows) < READ_BATCH:
                return fresh

    def _latest_alerts(self) -> dict[str, sqlite3.Row]:
        """Each device's newest sensor-fault alert (SQLite takes the bare columns from the max row)."""
        rows = self.db.query("SELECT device, id, state, resolved_ms, updated_ms, started_ms, max(received_ms)"
                             " FROM alerts WHERE rule = ? GROUP BY device", (RULE,))
        return {row["device"]: row for row in rows}

    def _decide(self, device: str, latest: sqlite3.Row | None, fresh: bool, now: int) -> None:
        rejections = list(self.recent.get(device, ()))
        open_alert = latest is not None and latest["state"] == "active" and latest["resolved_ms"] is None
        if open_alert:
            if not rejections:
                self._send(device, latest["id"], "cleared", latest["started_ms"], [], now)
            elif fresh:
                self._send(device, latest["id"], "active", latest["started_ms"], rejections, now)
            return
        if latest is not None:  # only what came after the last one was cleared or resolved counts
            since = max(latest["updated_ms"], latest["resolved_ms"] or 0)
            rejections = [r for r in rejections if r.received_ms > since]
        if fresh and len(rejections) >= self.threshold:
            started = rejections[0].received_ms
            self._send(device, f"sensor-fault-{device}-{started}", "active", started, rejections, now)

    def _send(self, device: str, alert_id: str, state: str, started_ms: int, rejections: list[Rejection],
              now: int) -> None:
        try:
            known = self.registry.get(device)
        except Exception:  # not (or no longer) registered: nothing to show on the board
            return
        metrics = Counter(r.metric for r in rejections if r.metric)
        numbers = [r.value for r in rejections if isinstance(r.value, int | float) and not isinstance(r.value, bool)]
        explanation = (explain(device, known.kind, rejections, self.window_s) if rejections else
                       f"no rejected readings from {device} for {self.window_s / 60:g} min")
        message = {"id": alert_id, "device": device, "kind": known.kind, "district": known.district,
                   "metric": metrics.most_common(1)[0][0] if metrics else "", "rule": RULE, "state": state,
                   "severity": "warning", "score": min(1.0, len(rejections) / (2 * self.threshold)),
                   "observed": float(numbers[-1]) if numbers else None, "expected": None,
                   "explanation": explanation, "started_ms": started_ms, "updated_ms": now,
                   "message": fault_message(device, known.kind, rejections, self.window_s)}
        try:
            contract.decode_alert(contract.encode_alert(message))  # the same checks as an alert from analytics
        except contract.ContractError as exc:
            log.warning("sensor-fault alert for %s not raised: %s", device, exc)
            return
        self.raise_alert(message)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
