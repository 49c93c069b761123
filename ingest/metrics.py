"""Counters, not log lines: what a worker received, wrote, rejected, spooled and
replayed, sequence gaps per device, lag and write latency.

Exposed two ways from one snapshot: Prometheus text on an HTTP port, and
line protocol for the `ingest_stats` measurement that Grafana reads.
"""

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from telemetry_shared.lineproto import escape_key

# Upper bounds of the write-latency histogram, in seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REJECTED_PREFIX = "rejected_"
MAX_GAP_DEVICES = 10_000  # per-device gap series kept; past that they fold into one total
# Written from the first stats line on, as 0 until they move, so a dashboard shows 0 on a healthy city rather
# than "No data". "rejected" is the sum of every rejected_<reason>.
ALWAYS_WRITTEN = ("received", "points_written", "spooled", "replayed", "sequence_gaps", "rejected")


class Metrics:
    """Thread-safe counters and gauges of one worker."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self.lock = threading.Lock()
        self.counters: Counter[str] = Counter(dict.fromkeys(ALWAYS_WRITTEN, 0))
        self.gaps_by_device: Counter[str] = Counter()
        self.gauges: dict[str, float] = {}
        self.latency_counts = [0] * len(LATENCY_BUCKETS_S)
        self.latency_sum_s = 0.0
        self.latency_count = 0
        self.latency_max_s = 0.0

    def inc(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n
            if name.startswith(REJECTED_PREFIX):
                self.counters["rejected"] += n

    def gap(self, device_id: str, missing: int) -> None:
        with self.lock:
            self.counters["sequence_gaps"] += missing
            if device_id in self.gaps_by_device or len(self.gaps_by_device) < MAX_GAP_DEVICES:
                self.gaps_by_device[device_id] += missing

    def set(self, name: str, value: float) -> None:
        with self.lock:
            self.gauges[name] = value

    def observe_write(self, seconds: float) -> None:
        with self.lock:
            self.latency_sum_s += seconds
            self.latency_count += 1
            self.latency_max_s = max(self.latency_max_s, seconds)
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    self.latency_counts[i] += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "counters": dict(self.counters),
                "gaps_by_device": dict(self.gaps_by_device),
                "gauges": dict(self.gauges),
                "latency": (list(self.latency_counts), self.latency_sum_s, self.latency_count, self.latency_max_s),
            }


def prometheus_text(metrics: Metrics) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    snap = metrics.snapshot()
    worker = f'worker="{metrics.worker_id}"'
    out: list[str] = []
    counters = snap["counters"]
    out.append("# TYPE ingest_rejected_total counter")
    for name in sorted(counters):
        if name.startswith(REJECTED_PREFIX):
            out.append(f'ingest_rejected_total{{{worker},reason="{name[len(REJECTED_PREFIX):]}"}} {counters[name]}')
    for name in sorted(counters):
        if not name.startswith(REJECTED_PREFIX) and name != "rejected":  # the reasons above add up to it
            out.append(f"# TYPE ingest_{name}_total counter")
            out.append(f"ingest_{name}_total{{{worker}}} {counters[name]}")
    out.append("# TYPE ingest_device_sequence_gaps_total counter")
    for device, missing in sorted(snap["gaps_by_device"].items()):
        out.append(f'ingest_device_sequence_gaps_total{{{worker},device="{device}"}} {missing}')
    for name, value in sorted(snap["gauges"].items()):
        out.append(f"# TYPE ingest_{name} gauge")
        out.append(f"ingest_{name}{{{worker}}} {value}")
    buckets, total_s, count, max_s = snap["latency"]
    out.append("# TYPE ingest_write_seconds histogram")
    for bound, n in zip(LATENCY_BUCKETS_S, buckets, strict=True):
        out.append(f'ingest_write_seconds_bucket{{{worker},le="{bound}"}} {n}')
    out.append(f'ingest_write_seconds_bucket{{{worker},le="+Inf"}} {count}')
    out.append(f"ingest_write_seconds_sum{{{worker}}} {total_s}")
    out.append(f"ingest_write_seconds_count{{{worker}}} {count}")
    out.append("# TYPE ingest_write_seconds_max gauge")
    out.append(f"ingest_write_seconds_max{{{worker}}} {max_s}")
    return "\n".join(out) + "\n"


def stats_lines(metrics: Metrics, t_ms: int | None = None) -> list[str]:
    """`ingest_stats,worker=...` (all counters and gauges) and one
    `ingest_device_stats,worker=...,device=...` per device with gaps."""
    snap = metrics.snapshot()
    t_ms = t_ms if t_ms is not None else int(time.time() * 1000)
    worker = escape_key(metrics.worker_id)
    fields = [f"{escape_key(k)}={v}i" for k, v in sorted(snap["counters"].items())]
    fields += [f"{escape_key(k)}={float(v)!r}" for k, v in sorted(snap["gauges"].items())]
    _, total_s, count, max_s = snap["latency"]
    fields += [f"writes={count}i", f"write_seconds_sum={float(total_s)!r}", f"write_seconds_max={float(max_s)!r}"]
    lines = [f"ingest_stats,worker={worker} {','.join(fields)} {t_ms}"]
    for device, missing in sorted(snap["gaps_by_device"].items()):
        lines.append(f"ingest_device_stats,device={escape_key(device)},worker={worker} sequence_gaps={missing}i {t_ms}")
    return lines


class MetricsServer:
    """GET /metrics on a port of its own, in a daemon thread."""

    def __init__(self, metrics: Metrics, port: int, host: str = "127.0.0.1"):
        handler = _handler_for(metrics)
        self.http = ThreadingHTTPServer((host, port), handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, name="ingest-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _handler_for(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = prometheus_text(metrics).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # counters, not log lines
            pass

    return Handler
