"""Run the detectors over history in InfluxDB: what would have been raised.

Nothing is written and nothing is published: this is for trying a rule or a
threshold against the past before switching it on. The readings come back
with InfluxQL (one series per device), are laid out as the engine's ring
buffers are (one row per device, newest last, padded on the left), scored
with the same rules and turned into incidents by the same hysteresis.

Backfilled history (points stored with `hist=true`: readings a device kept
while offline and sent late) is treated as the live engine treats it: it is
scored as part of its series, in time order, so it feeds the baselines and
the daily profile, but it never opens, confirms, holds or clears an incident
(the live engine raises no alarm on readings that arrive hours late). So the
alerts listed are the ones the control room would have seen. With
`include_hist=True` backfilled readings count like live ones, to find faults
that happened while devices were offline; an alert opened on a backfilled
reading is marked `hist`. Points written before ingest stored `hist` have no
such field and count as live.
"""

import re
from dataclasses import dataclass, fields, replace

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.evaluate import Alert
from analytics.rules import Hysteresis, grade, incidents, score_metric
from edge import contract
from telemetry_shared.influx import InfluxQL, quote_ident, quote_string

DURATION = re.compile(r"^[1-9][0-9]{0,5}[mhdw]$")
MAX_POINTS = 20_000_000


class RescoreError(ValueError):
    """A request that cannot be run; the message says which part."""


@dataclass
class RescoredAlert(Alert):
    hist: bool = False  # opened on a backfilled reading: the live engine would not have raised it


Series = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]


def parse_overrides(pairs: list[str], base: DetectorParams = DEFAULT_PARAMS) -> DetectorParams:
    """`name=value` pairs to a DetectorParams; raises RescoreError naming the bad pair."""
    known = {f.name: f for f in fields(DetectorParams)}
    changes: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise RescoreError(f"--set {pair!r}: expected name=value with a name from {', '.join(sorted(known))}")
        current = getattr(base, name)
        if not isinstance(current, bool | int | float):
            raise RescoreError(f"--set {name}: cannot be changed from the command line")
        try:
            if isinstance(current, bool):
                if text.strip().lower() not in ("true", "false"):
                    raise ValueError
                value: object = text.strip().lower() == "true"
            elif isinstance(current, int):
                value = int(text)
            else:
                value = float(text)
                if not np.isfinite(value):
                    raise ValueError
        except ValueError:
            raise RescoreError(f"--set {pair!r}: {text!r} is not a valid {type(current).__name__}") from None
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise RescoreError(f"--set {pair!r}: must not be negative")
        changes[name] = value
    return replace(base, **changes)


def fetch(client: InfluxQL, kind: str, metrics: list[str], since: str, device: str | None = None) -> dict[str, Series]:
    """metric -> (devices, times (S, T), values (S, T), hist (S, T): backfilled or not, districts) from InfluxDB."""
    where = f"time > now() - {since}"
    if device:
        where += f" AND device = {quote_string(device)}"
    columns = ", ".join(quote_ident(m) for m in [*metrics, "hist"])
    series = client.series(f"SELECT {columns} FROM {quote_ident(kind)} WHERE {where} "
                           f'GROUP BY "device", "district"')
    total = sum(len(s.get("values", [])) for s in series) * len(metrics)
    if total > MAX_POINTS:
        raise RescoreError(f"{total:,} readings are more than {MAX_POINTS:,}: narrow --since, --device or --metric")
    out = {}
    for metric in metrics:
        devices, districts, rows = [], [], []
        for s in series:
            index, flag = s["columns"].index(metric), s["columns"].index("hist")
            samples = [(row[0], row[index], row[flag] is True) for row in s.get("values", []) if row[index] is not None]
            if samples:
                devices.append(s["tags"].get("device", ""))
                districts.append(s["tags"].get("district", ""))
                rows.append(samples)
        if not rows:
            continue
        width = max(len(r) for r in rows)
        times = np.zeros((len(rows), width), dtype=np.int64)
        values = np.full((len(rows), width), np.nan)
        hist = np.zeros((len(rows), width), dtype=bool)
        for i, samples in enumerate(rows):
            times[i, width - len(samples):] = [p[0] for p in samples]
            values[i, width - len(samples):] = [p[1] for p in samples]
            hist[i, width - len(samples):] = [p[2] for p in samples]
        out[metric] = (devices, times, values, hist, districts)
    return out


def rescore(client: InfluxQL, kind: str, since: str = "24h", device: str | None = None,
            metric: str | None = None, params: DetectorParams = DEFAULT_PARAMS,
            include_hist: bool = False) -> list[RescoredAlert]:
    """The incidents the rules would have raised over `since` (an InfluxQL duration like 24h or 7d).

    Backfilled readings feed the baselines but, unless `include_hist`, never move an incident (see above)."""
    if kind not in contract.KINDS:
        raise RescoreError(f"unknown kind {kind!r}; one of {', '.join(contract.KINDS)}")
    if not DURATION.match(since):
        raise RescoreError(f"--since {since!r}: a duration like 30m, 24h, 7d or 2w")
    if device is not None and not contract.valid_device_id(device):
        raise RescoreError(f"--device {device[:40]!r} is not a device id")
    metrics = list(contract.KINDS[kind])
    if metric is not None:
        if metric not in metrics:
            raise RescoreError(f"--metric {metric!r} is not a {kind} metric; one of {', '.join(metrics)}")
        metrics = [metric]
    alerts: list[RescoredAlert] = []
    for name, (devices, times, values, hist, _districts) in fetch(client, kind, metrics, since, device).items():
        scored = score_metric(name, values, times, params)  # every reading, backfill included: the baselines
        score = np.where(np.isnan(values), np.nan, scored.score)
        # What the incidents are fed: as in the live engine, a backfilled reading leaves them as they are
        # (NaN: no reading), so an incident open before an outage stays open until live readings clear it.
        ignored = np.zeros_like(hist) if include_hist else hist
        fed, fed_values = np.where(ignored, np.nan, score), np.where(ignored, np.nan, values)
        # The same hold as the live engine: one incident from a lasting fault's start to its end.
        active = Hysteresis().step(fed, params, values=fed_values, anchor=scored.anchor)
        for row, first, after in incidents(active):
            window = np.nan_to_num(fed[row, first:after])
            peak_at = first + int(window.argmax())
            severity = grade(float(window.max()), str(scored.severity[row, peak_at]), params)
            end_ms = int(times[row, after]) if after < times.shape[1] else int(times[row, -1])
            alerts.append(RescoredAlert(devices[row], name, str(scored.rule[row, peak_at]), int(times[row, first]),
                                        end_ms, float(window.max()), severity, bool(hist[row, first])))
    return sorted(alerts, key=lambda a: (a.start_ms, a.device, a.metric))
