"""InfluxQL for the API. Every identifier and string that reaches a query is
checked against the contract (kinds, metrics, device ids, district slugs)
and then quoted anyway; times are integers. Nothing from a request is pasted
into InfluxQL unchecked."""

import re
import time
from typing import Any

from edge import contract
from telemetry_shared.influx import InfluxQL, quote_ident, quote_string

DURATION = re.compile(r"^([1-9][0-9]{0,9})(ms|s|m|h|d|w)$")  # api.params bounds it further
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
AGGREGATES = ("mean", "min", "max", "median", "last", "count", "sum")
MAX_BUCKETS = 10_000
NICE_BUCKETS_MS = [1000 * s for s in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)]


class QueryError(ValueError):
    """A request that cannot become a query (unknown metric, range too wide, ...)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def duration_ms(text: str) -> int:
    match = DURATION.match(text)
    if not match:
        raise QueryError(f"{text[:20]!r} is not a duration like 30s, 5m, 1h or 1d")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def bucket_for(span_ms: int, points: int) -> int:
    """The smallest round bucket that gives at most `points` buckets over the span."""
    for bucket in NICE_BUCKETS_MS:
        if span_ms / bucket <= points:
            return bucket
    return NICE_BUCKETS_MS[-1]


def check_metric(kind: str, metric: str) -> None:
    if kind not in contract.KINDS:
        raise QueryError(f"unknown kind {kind[:32]!r}; one of {', '.join(contract.KINDS)}")
    if metric not in contract.KINDS[kind]:
        raise QueryError(f"{kind} devices have no metric {metric[:40]!r}; "
                         f"they have {', '.join(contract.KINDS[kind])}")


def _where(start_ms: int, end_ms: int, **tags: str | None) -> str:
    parts = [f"time >= {int(start_ms)}ms", f"time < {int(end_ms)}ms"]
    parts += [f"{quote_ident(tag)} = {quote_string(value)}" for tag, value in tags.items() if value is not None]
    return " AND ".join(parts)


def latest(influx: InfluxQL, kinds: list[str], since_ms: int, device: str | None = None,
           district: str | None = None) -> list[dict[str, Any]]:
    """The newest point of each device: [{device, district, kind, t_ms, values, seq}]."""
    statements = [f"SELECT * FROM {quote_ident(kind)} WHERE {_where(since_ms, now_ms() + 86_400_000, device=device, district=district)}"  # noqa: E501
                  f' GROUP BY "device", "district" ORDER BY time DESC LIMIT 1' for kind in kinds]
    out = []
    for kind, result in zip(kinds, influx.raw(";".join(statements)), strict=True):
        for series in result.get("series", []):
            row = dict(zip(series["columns"], series["values"][0], strict=False))
            values = {m: row[m] for m in contract.KINDS[kind] if row.get(m) is not None}
            out.append({"device": series["tags"]["device"], "district": series["tags"]["district"], "kind": kind,
                        "t_ms": row["time"], "values": values, "seq": row.get("seq")})
    return sorted(out, key=lambda r: r["device"])


def history(influx: InfluxQL, kind: str, device: str, metric: str, start_ms: int, end_ms: int, bucket_ms: int,
            fn: str = "mean") -> list[dict[str, Any]]:
    """One metric of one device, downsampled: [{t_ms, value}] (empty buckets left out)."""
    check_metric(kind, metric)
    if fn not in AGGREGATES:
        raise QueryError(f"fn must be one of {', '.join(AGGREGATES)}")
    q = (f"SELECT {fn}({quote_ident(metric)}) AS value FROM {quote_ident(kind)}"
         f" WHERE {_where(start_ms, end_ms, device=device)} GROUP BY time({int(bucket_ms)}ms) fill(none)")
    return [{"t_ms": r["time"], "value": r["value"]} for r in influx.rows(q)]


def aggregates(influx: InfluxQL, kind: str, metric: str, start_ms: int, end_ms: int,
               district: str | None = None) -> list[dict[str, Any]]:
    """mean, min, max and count of one metric per district."""
    check_metric(kind, metric)
    m = quote_ident(metric)
    q = (f"SELECT mean({m}) AS mean, min({m}) AS min, max({m}) AS max, count({m}) AS count"
         f" FROM {quote_ident(kind)} WHERE {_where(start_ms, end_ms, district=district)} GROUP BY \"district\"")
    rows = influx.rows(q)
    return sorted(({"district": r["district"], "kind": kind, "metric": metric, "mean": r["mean"], "min": r["min"],
                    "max": r["max"], "count": r["count"]} for r in rows), key=lambda r: r["district"])


def per_device_last(influx: InfluxQL, kind: str, metric: str, since_ms: int) -> list[dict[str, Any]]:
    """The last value of one metric for each device: [{device, district, t_ms, value}]."""
    check_metric(kind, metric)
    q = (f"SELECT last({quote_ident(metric)}) AS value FROM {quote_ident(kind)}"
         f" WHERE {_where(since_ms, now_ms() + 86_400_000)} GROUP BY \"device\", \"district\"")
    return [{"device": r["device"], "district": r["district"], "t_ms": r["time"], "value": r["value"]}
            for r in influx.rows(q)]


def integral_per_device(influx: InfluxQL, kind: str, metric: str, start_ms: int, end_ms: int) -> dict[str, float]:
    """The time integral (per second) of one metric per device, e.g. litres from L/s."""
    check_metric(kind, metric)
    q = (f"SELECT integral({quote_ident(metric)}, 1s) AS total FROM {quote_ident(kind)}"
         f" WHERE {_where(start_ms, end_ms)} GROUP BY \"device\"")
    return {r["device"]: r["total"] for r in influx.rows(q)}
