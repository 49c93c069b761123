"""Requests per second and p99 latency of the API's hot read routes under load.

Starts its own influxd and Mosquitto, seeds DEVICES devices with a day of
one-minute readings and ALERTS open alerts, runs the API as `python -m api`
(one uvicorn process), and loads it from this process (a second process) on
loopback: CONCURRENCY keep-alive connections, each sending requests back to
back for SECONDS, ROUNDS times per route.

Side by side, in the same run:
  GET /health                  the framework's floor (auth-free, no I/O)
  GET /readings/latest         InfluxDB (one `ORDER BY time DESC LIMIT 1` per kind) behind the API
  the same InfluxQL sent straight to influxd   what the API adds on top of InfluxDB
  GET /alerts?resolved=false   SQLite behind the API, one page of 100 alerts

    python bench/bench_api.py [--devices 100] [--alerts 500] [--seconds 3] [--rounds 3] [--concurrency 8]
"""

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.alerts.store import AlertStore  # noqa: E402
from api.auth import KeyStore  # noqa: E402
from api.db import ApiDb  # noqa: E402
from edge import contract  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.influx import InfluxQL, V1Writer  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402
from telemetry_shared.servers import Influxd, Mosquitto, free_port  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

DISTRICTS = get_settings().city.slugs  # the configured city profile (CITY_PROFILE)
MINUTE_MS = 60_000
SERVICE_PASSWORD = "bench-service-secret"


def seed_readings(url: str, registry: Registry, devices_per_kind: int, now_ms: int) -> int:
    writer = V1Writer(url, "city")
    points = 0
    for kind, metrics in contract.KINDS.items():
        for n in range(devices_per_kind):
            device, district = f"{kind[:3]}-{n:04d}", DISTRICTS[n % len(DISTRICTS)]
            registry.add(DeviceNew(id=device, kind=kind, district=district))
            fields = ",".join(f"{m}={(lo + hi) / 2:.3f}" for m, (_, lo, hi) in metrics.items())
            lines = [f"{kind},device={device},district={district} {fields},seq={i}i {now_ms - (1440 - i) * MINUTE_MS}"
                     for i in range(1440)]
            writer.write(lines)
            points += len(lines)
    writer.close()
    return points


def seed_alerts(store: AlertStore, count: int, now_ms: int) -> None:
    for n in range(count):
        store.apply({"id": f"bench-{n}", "device": f"wat-{n % 100:04d}", "kind": "water",
                     "district": DISTRICTS[n % len(DISTRICTS)], "metric": "pressure_bar", "rule": "pressure_low",
                     "state": "active",
                     "severity": contract.SEVERITIES[n % 3], "score": 0.8, "observed": 1.0, "expected": 3.0,
                     "started_ms": now_ms - n * 1000, "updated_ms": now_ms, "explanation": "bench"})


def load(host: str, port: int, path: str, headers: dict[str, str], seconds: float, concurrency: int,
         method: str = "GET", expect: int = 200) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms and errors (answers other than `expect`) of `concurrency` keep-alive
    connections for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    deadline = time.monotonic() + seconds

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine = latencies[slot]
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != expect:
                errors[slot] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    every = sorted(x for slot in latencies for x in slot)
    p50 = every[len(every) // 2] * 1000
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))] * 1000
    return len(every) / elapsed, p50, p99, sum(errors)


def wait_ready(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the API did not start")


def route_medians(port: int, path: str, headers: dict[str, str], seconds: float, rounds: int,
                  concurrency: int, expect: int = 200) -> tuple[float, float, float, int]:
    """One route loaded after a warm-up: medians over the rounds of req/s, p50 ms, p99 ms, and all errors."""
    load("127.0.0.1", port, path, headers, 0.5, concurrency, expect=expect)
    runs = [load("127.0.0.1", port, path, headers, seconds, concurrency, expect=expect) for _ in range(rounds)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs), sum(r[3] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100, help="devices per kind")
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp_path = Path(tmp)
        influxd = Influxd(tmp_path / "influxd").start()
        users = {broker.service_user("api", 0): broker.hash_password(SERVICE_PASSWORD)}
        mosquitto = Mosquitto(tmp_path / "mosquitto", users=users).start()
        api_proc = None
        try:
            InfluxQL(influxd.url, "city").create_database()
            now_ms = int(time.time() * 1000)
            registry = Registry(tmp_path / "var" / "registry.sqlite3")
            print(f"seeding {args.devices} devices per kind x 1,440 readings ...", flush=True)
            points = seed_readings(influxd.url, registry, args.devices, now_ms)
            registry.close()
            db = ApiDb(tmp_path / "var" / "api.sqlite3")
            seed_alerts(AlertStore(db), args.alerts, now_ms)
            key = KeyStore(db).create("bench", "operator").key
            db.close()

            port = free_port()
            env = dict(os.environ, CITY_ENVIRONMENT="test", CITY_DATA_DIR=str(tmp_path / "var"),
                       CITY_INFLUX_URL=influxd.url, CITY_MQTT_PORT=str(mosquitto.port),
                       CITY_MQTT_PASSWORD=SERVICE_PASSWORD, CITY_API_PORT=str(port))
            api_proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(port)
            auth = {"Authorization": f"Bearer {key}"}
            influx_port = urllib.parse.urlsplit(influxd.url).port
            since = now_ms - 86_400_000
            direct_q = ";".join(f'SELECT * FROM "{kind}" WHERE time >= {since}ms GROUP BY "device", "district" '
                                f"ORDER BY time DESC LIMIT 1" for kind in contract.KINDS)
            direct = "/query?" + urllib.parse.urlencode({"db": "city", "q": direct_q, "epoch": "ms"})
            cases = [
                ("GET /health (floor)", port, "/health", {}),
                ("GET /readings/latest", port, "/readings/latest?limit=1000", auth),
                ("  same InfluxQL straight to influxd", influx_port, direct, {}),
                ("GET /alerts?resolved=false", port, "/alerts?resolved=false&limit=100", auth),
            ]
            print(f"{points:,} readings, {args.devices * 4} devices, {args.alerts} open alerts; "
                  f"{args.concurrency} connections, {args.rounds} x {args.seconds:g} s per route; medians of rounds")
            print(f"{'route':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs /health':>10}")
            floor = None
            for name, target_port, path, headers in cases:
                rps, p50, p99, errors = route_medians(target_port, path, headers, args.seconds, args.rounds,
                                                      args.concurrency)
                floor = floor or rps
                print(f"{name:40} {rps:8.0f} {p50:8.2f} {p99:8.2f} {errors:6d} {rps / floor:9.2f}x", flush=True)
        finally:
            if api_proc:
                api_proc.terminate()
                api_proc.wait(15)
            mosquitto.stop()
            influxd.stop()


if __name__ == "__main__":
    main()
