"""Sustained ingest, Mosquitto -> influxd, side by side in one run.

Starts its own Mosquitto and influxd (Debian's) on loopback, registers DEVICES
water devices and publishes MESSAGES QoS 1 messages of SAMPLES samples x 2
metrics as fast as two publisher processes can. Each scenario gets a fresh
broker and database and is timed from the first publish until the last
reading is queryable (or, for the limit, received):

  limit     the broker's delivery to a paho subscriber that does nothing
  naive     paho callback, one InfluxDB write per message, auto-ack (the baseline)
  ingest x1 `python -m ingest`, one worker
  ingest x2 two workers on one shared subscription

Then, for naive and ours, publish-to-queryable latency: a steady RATE msg/s
stream for a few seconds while a probe device publishes one reading every
100 ms and polls InfluxDB until it is there; p50 and p99 of those waits.

    python bench/bench_ingest.py [--messages 30000] [--samples 10] [--rate 500]
"""

import argparse
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge import contract  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.influx import InfluxQL  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402
from telemetry_shared.servers import Influxd, Mosquitto  # noqa: E402

DEVICES = 20
SECRET = "bench-secret-0123456789"
PROBE = "probe-01"
DISTRICTS = ("bukit-bestari", "tanjungpinang-kota", "tanjungpinang-barat", "tanjungpinang-timur")


def device_ids() -> list[str]:
    return [f"wtr-{i:04d}" for i in range(DEVICES)]


def users() -> dict[str, str]:
    hashed = broker.hash_password(SECRET)
    services = {broker.service_user(s, i): hashed for s in broker.SERVICES for i in range(2)}
    return services | {d: hashed for d in [*device_ids(), PROBE]}


# ------------------------------------------------------------------ publishing


def _publisher(port: int, devices: list[str], messages: int, samples: int, rate: float, base_ms: int) -> None:
    """One process: round-robin over its devices, QoS 1, paced at `rate` msg/s (0: flat out)."""
    clients = {}
    for device in devices:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311)
        client.username_pw_set(device, SECRET)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients[device] = client
    infos = []
    started = time.monotonic()
    for n in range(messages):
        device = devices[n % len(devices)]
        seq = n // len(devices)
        t0 = base_ms + seq * samples
        rows = [(t0 + j, {"flow_lps": float(seq % 1000), "pressure_bar": 3.0}) for j in range(samples)]
        infos.append(clients[device].publish(contract.telemetry_topic(device),
                                             contract.encode_telemetry(seq, rows, "bench"), qos=1))
        if rate:
            delay = started + (n + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    for info in infos:
        info.wait_for_publish(120)
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


def publish(port: int, messages: int, samples: int, rate: float = 0) -> list[multiprocessing.Process]:
    """Two publisher processes, each with half the devices and half the messages."""
    base_ms = int(time.time() * 1000) - 3_600_000
    halves = [device_ids()[: DEVICES // 2], device_ids()[DEVICES // 2:]]
    procs = []
    for i, devices in enumerate(halves):
        proc = multiprocessing.Process(target=_publisher, args=(port, devices, messages // 2, samples, rate / 2,
                                                                 base_ms + i))
        proc.start()
        procs.append(proc)
    return procs


# ------------------------------------------------------------------ consumers


class NothingSubscriber:
    """The limit: receive and count (paho acks QoS 1 itself), nothing else."""

    def __init__(self, port: int):
        self.count = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-analytics-0", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("svc-analytics-0", SECRET)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(contract.TELEMETRY_SUB, qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        self.count += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _naive_main(port: int, influx_url: str, db: str, registry_file: str) -> None:
    """The naive route: decode, one POST /write per message from the callback, auto-ack."""
    import orjson

    registry = Registry(registry_file)
    devices = {d.id: d for d in registry.list(limit=100_000)[0]}
    http = httpx.Client(base_url=influx_url, timeout=10)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-ingest-0", protocol=mqtt.MQTTv5)
    client.username_pw_set("svc-ingest-0", SECRET)

    def on_message(c, userdata, message) -> None:
        device_id, _ = contract.parse_topic(message.topic)
        device = devices[device_id]
        batch = contract.decode_telemetry(message.payload, device.kind, int(time.time() * 1000), loads=orjson.loads)
        lines = [f"{device.kind},device={device_id},district={device.district} "
                 + ",".join(f"{k}={v!r}" for k, v in values.items()) + f",seq={batch.seq}i {t}"
                 for t, values, _ in batch.samples]
        http.post("/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(contract.TELEMETRY_SUB, qos=1)
    client.loop_forever()


def start_naive(port: int, influx_url: str, db: str, registry_file: Path) -> multiprocessing.Process:
    proc = multiprocessing.Process(target=_naive_main, args=(port, influx_url, db, str(registry_file)), daemon=True)
    proc.start()
    return proc


def start_worker(instance: int, workers: int, port: int, influx_url: str, db: str, registry_file: Path,
                 data_dir: Path) -> subprocess.Popen:
    env = dict(os.environ) | {
        "CITY_ENVIRONMENT": "test", "CITY_DATA_DIR": str(data_dir), "CITY_REGISTRY_PATH": str(registry_file),
        "CITY_MQTT_PORT": str(port), "CITY_MQTT_USER": broker.service_user("ingest", instance),
        "CITY_MQTT_PASSWORD": SECRET, "CITY_INFLUX_URL": influx_url, "CITY_INFLUX_DB": db,
        "CITY_INGEST_WORKER_ID": f"ingest-{instance}", "CITY_INGEST_WORKERS": str(workers),
        "CITY_INGEST_METRICS_PORT": "0", "PYTHONPATH": str(ROOT),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f"ingest-{instance}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, stdout=log, stderr=log)


# ------------------------------------------------------------------ measuring


def queryable(influx: InfluxQL, device: str | None = None, t_ms: int | None = None) -> int:
    where = ""
    if device:
        where = f" WHERE \"device\" = '{device}'" + (f" AND time = {t_ms}ms" if t_ms is not None else "")
    rows = influx.rows(f'SELECT count("flow_lps") FROM "water"{where}')
    return rows[0]["count"] if rows else 0


def wait_count(read, expected: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if read() >= expected:
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"only {read()} of {expected} after {timeout_s}s")


class Probe(threading.Thread):
    """Every 100 ms: publish one reading from the probe device, poll until queryable."""

    def __init__(self, port: int, influx: InfluxQL, duration_s: float):
        super().__init__(daemon=True)
        self.influx = influx
        self.duration_s = duration_s
        self.waits: list[float] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=PROBE)
        self.client.username_pw_set(PROBE, SECRET)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def run(self) -> None:
        end = time.monotonic() + self.duration_s
        seq = 0
        while time.monotonic() < end:
            t_ms = int(time.time() * 1000)
            published = time.monotonic()
            self.client.publish(contract.telemetry_topic(PROBE), contract.encode_telemetry(
                seq, [(t_ms, {"flow_lps": 1.0})], "bench"), qos=1)
            while time.monotonic() - published < 30 and not queryable(self.influx, PROBE, t_ms):
                time.sleep(0.005)
            self.waits.append(time.monotonic() - published)
            seq += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - published)))
        self.client.disconnect()
        self.client.loop_stop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class City:
    """A fresh broker, a fresh database and the registry for one scenario."""

    def __init__(self, workdir: Path, influxd: Influxd, name: str):
        self.dir = workdir / name
        self.mosquitto = Mosquitto(self.dir / "mosquitto", users=users()).start()
        self.influx = InfluxQL(influxd.url, name)
        self.influx.create_database()
        self.registry_file = self.dir / "registry.sqlite3"
        registry = Registry(self.registry_file)
        for i, device in enumerate([*device_ids(), PROBE]):
            registry.add(DeviceNew(id=device, kind="water", district=DISTRICTS[i % 4]))
        registry.close()

    def close(self) -> None:
        self.mosquitto.stop()


def run_consumer(kind: str, city: City, influxd: Influxd) -> list:
    if kind == "naive":
        return [start_naive(city.mosquitto.port, influxd.url, city.influx.db, city.registry_file)]
    workers = 2 if kind == "ingest x2" else 1
    return [start_worker(i, workers, city.mosquitto.port, influxd.url, city.influx.db, city.registry_file,
                         city.dir / "var") for i in range(workers)]


def stop_consumers(consumers: list) -> None:
    for c in consumers:
        if isinstance(c, subprocess.Popen):
            c.send_signal(signal.SIGTERM)
            c.wait(40)
        else:
            c.terminate()
            c.join(10)


def _check_alive(consumers: list, city: "City") -> None:
    for c in consumers:
        if isinstance(c, subprocess.Popen) and c.poll() is not None:
            logs = "".join(p.read_text()[-1500:] for p in (city.dir / "var").glob("ingest-*.log"))
            raise RuntimeError(f"an ingest worker exited with {c.returncode}: {logs}")


def throughput(kind: str, workdir: Path, influxd: Influxd, messages: int, samples: int) -> dict:
    city = City(workdir, influxd, f"bench_{kind.replace(' ', '_')}")
    try:
        if kind == "limit":
            sub = NothingSubscriber(city.mosquitto.port)
            time.sleep(0.5)
            started = time.monotonic()
            procs = publish(city.mosquitto.port, messages, samples)
            done = wait_count(lambda: sub.count, messages, 300)
            sub.stop()
        else:
            consumers = run_consumer(kind, city, influxd)
            time.sleep(1.5)  # connected and subscribed
            _check_alive(consumers, city)
            started = time.monotonic()
            procs = publish(city.mosquitto.port, messages, samples)
            done = wait_count(lambda: queryable(city.influx), messages * samples, 180)
            stop_consumers(consumers)
        for proc in procs:
            proc.join(60)
        seconds = done - started
        return {"scenario": kind, "messages": messages, "seconds": seconds, "msg_s": messages / seconds,
                "readings_s": messages * samples * 2 / seconds}
    finally:
        city.close()


def latency(kind: str, workdir: Path, influxd: Influxd, rate: float, samples: int, seconds: float) -> list[float]:
    city = City(workdir, influxd, f"lat_{kind.replace(' ', '_')}")
    try:
        consumers = run_consumer(kind, city, influxd)
        time.sleep(1.5)
        procs = publish(city.mosquitto.port, int(rate * seconds), samples, rate)
        time.sleep(1.0)  # into the steady state
        probe = Probe(city.mosquitto.port, city.influx, seconds - 2)
        probe.start()
        probe.join(seconds + 60)
        for proc in procs:
            proc.join(120)
        stop_consumers(consumers)
        return probe.waits
    finally:
        city.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=30_000, help="messages per throughput run")
    parser.add_argument("--naive-messages", type=int, default=4_000, help="fewer for the slow baseline")
    parser.add_argument("--samples", type=int, default=10, help="samples per message (2 readings each)")
    parser.add_argument("--rate", type=float, default=500, help="msg/s of the latency runs")
    parser.add_argument("--scenarios", default="limit,naive,ingest x1,ingest x2", help="comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print it")
    parser.add_argument("--latency-s", type=float, default=10, help="length of each latency run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-")) if args.keep else Path(tmp)
        if args.keep:
            print(f"work folder (logs): {workdir}", file=sys.stderr)
        influxd = Influxd(workdir / "influxd").start()
        try:
            rows = []
            for kind in args.scenarios.split(","):
                n = args.naive_messages if kind == "naive" else args.messages
                rows.append(throughput(kind, workdir, influxd, n, args.samples))
                print(f"  {kind}: {rows[-1]['readings_s']:,.0f} readings/s", file=sys.stderr, flush=True)
            waits = {kind: latency(kind, workdir, influxd, args.rate, args.samples, args.latency_s)
                     for kind in ("naive", "ingest x1") if args.latency_s > 0}
        finally:
            influxd.stop()
    by_name = {r["scenario"]: r["readings_s"] for r in rows}
    limit = by_name.get("limit", float("nan"))
    naive = by_name.get("naive", float("nan"))
    print(f"\nIngest throughput ({args.samples} samples x 2 metrics per message, {DEVICES} devices, QoS 1, loopback)")
    print(f"{'scenario':<12}{'messages':>10}{'seconds':>9}{'msg/s':>10}{'readings/s':>12}{'x naive':>9}"
          f"{'of limit':>10}")
    for r in rows:
        print(f"{r['scenario']:<12}{r['messages']:>10}{r['seconds']:>9.2f}{r['msg_s']:>10,.0f}"
              f"{r['readings_s']:>12,.0f}{r['readings_s'] / naive:>9.1f}{r['readings_s'] / limit:>10.0%}")
    print(f"\nPublish to queryable at {args.rate:.0f} msg/s ({args.rate * args.samples * 2:,.0f} readings/s), "
          f"one probe reading every 100 ms")
    print(f"{'scenario':<12}{'probes':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for kind, w in waits.items():
        print(f"{kind:<12}{len(w):>8}{statistics.median(w) * 1000:>10.0f}{percentile(w, 99) * 1000:>10.0f}"
              f"{max(w) * 1000:>10.0f}")


if __name__ == "__main__":
    main()
