"""Ingest throughput, memory and latency: the project's worker against a lean
batched worker and against influxd alone, on the same messages, in one run.

Starts its own influxd (Debian's) and, per run, a fresh Mosquitto and database,
all on loopback. DEVICES water devices (registered, each with its broker
account) publish QoS 1 messages of R readings; a reading is one timestamped
sample of 4 values (flow, pressure, level, turbidity) and becomes one point.

Throughput, at 1, 10 and 100 readings a message, "drained from a queued
backlog": the consumer connects and subscribes, is frozen (SIGSTOP), the whole
backlog is published and confirmed by the broker, then the consumer is
thawed and timed until the last point is written. Consumers:

  worker  `python -m ingest`: validation, registry, dead letters, sequence
          tracking, and the MQTT ack only after InfluxDB accepted the batch
  lean    the ceiling for Python without the guarantee: paho (MQTT 3.1.1,
          auto-ack on receipt), orjson, f-string line protocol, 5,000-line POSTs
  influxd the same points as pre-built 5,000-line POSTs from one client: the
          database's own limit on this machine

Each run starts with another consumer (worker, lean, influxd; then lean, influxd, worker; ...)
and every drain waits until influxd is idle (it compacts what the previous drain wrote).

Printed per run: messages/s, samples per message, values per sample, points/s,
CPU microseconds per point in the consumer and in influxd, the consumer's peak
RSS; medians of --runs runs, and the medians of each run's ratios to the lean worker and to
influxd alone; the load average at the start and the end; whether issue 16's targets were reached.

Then (optional) peak RSS of one worker over a long stream (--rss-messages), and
publish-to-queryable latency at --rate msg/s (one reading a message) with a probe
reading every 100 ms.

    python bench/bench_ingest.py [--runs 3] [--readings 1,10,100] [--rss-messages 1000000] [--rate 2000]
"""

import argparse
import multiprocessing
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from edge import contract  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.influx import InfluxQL  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402
from telemetry_shared.servers import Influxd, Mosquitto, free_port  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

DEVICES = 1000
SECRET = "bench-secret-0123456789"
PROBE = "probe-01"
DISTRICTS = get_settings().city.slugs  # the configured city profile (CITY_PROFILE)
METRICS4 = ("flow_lps", "pressure_bar", "level_m", "turbidity_ntu")
LEAN_USER = "svc-ingest-7"  # the lean worker's account (the project worker is svc-ingest-0)
TICK_S = os.sysconf("SC_CLK_TCK")


def device_ids(n: int = DEVICES) -> list[str]:
    return [f"wtr-{i:04d}" for i in range(n)]


# ------------------------------------------------------------------ messages


def messages(count: int, readings: int, base_ms: int, devices: int = DEVICES) -> list[tuple[str, bytes]]:
    """(device, payload) in publish order: round-robin over the devices, seq counting per device."""
    out = []
    ids = device_ids(devices)
    for n in range(count):
        device, seq = ids[n % devices], n // devices
        t0 = base_ms + seq * readings * 1000
        rows = [(t0 + j * 1000, {"flow_lps": float(seq % 997) + 0.5, "pressure_bar": 3.25, "level_m": 4.5,
                                 "turbidity_ntu": 0.75}) for j in range(readings)]
        out.append((device, contract.encode_telemetry(seq, rows, "bench")))
    return out


def line_protocol(msgs: list[tuple[str, bytes]], districts: dict[str, str]) -> list[str]:
    """The points of `msgs` as the lean worker writes them (for influxd alone)."""
    import orjson

    lines = []
    for device, payload in msgs:
        body = orjson.loads(payload)
        head = f"water,device={device},district={districts[device]} "
        for t, values in (row[:2] for row in body["r"]):
            lines.append(head + ",".join(f"{k}={v}" for k, v in values.items()) + f",seq={body['seq']}i {t}")
    return lines


# ------------------------------------------------------------------ a raw MQTT 3.1.1 publisher (fast, many devices)


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    n, head = len(body), bytearray([first])
    while True:
        n, byte = divmod(n, 128)
        head.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(head) + body


def _connect(port: int, device: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    body = _str("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60) + _str(device) + _str(device) + _str(SECRET)
    sock.sendall(_packet(0x10, body))
    connack = sock.recv(4)
    if len(connack) != 4 or connack[3] != 0:
        raise RuntimeError(f"{device}: broker refused the connection: {connack!r}")
    return sock


def publish(port: int, msgs: list[tuple[str, bytes]], rate: float = 0) -> None:
    """Publish at QoS 1 (flat out, or paced at `rate` msg/s) and wait for every PUBACK."""
    socks: dict[str, socket.socket] = {}
    sent: dict[str, int] = {}
    started = time.monotonic()
    for n, (device, payload) in enumerate(msgs):
        sock = socks.get(device) or socks.setdefault(device, _connect(port, device))
        sent[device] = sent.get(device, 0) + 1
        mid = sent[device] % 65535 + 1
        sock.sendall(_packet(0x32, _str(contract.telemetry_topic(device)) + struct.pack("!H", mid) + payload))
        if rate and n % 20 == 19:
            delay = started + (n + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    for device, sock in socks.items():  # every PUBACK (4 bytes): the broker has them all
        want, got = 4 * sent[device], 0
        sock.settimeout(120)
        while got < want:
            chunk = sock.recv(want - got)
            if not chunk:
                raise RuntimeError(f"{device}: broker closed before confirming")
            got += len(chunk)
        sock.sendall(b"\xe0\x00")
        sock.close()


def publish_process(port: int, msgs: list[tuple[str, bytes]], rate: float = 0) -> multiprocessing.Process:
    proc = multiprocessing.Process(target=publish, args=(port, msgs, rate), daemon=True)
    proc.start()
    return proc


# ------------------------------------------------------------------ the lean worker


def lean_main(port: int, influx_url: str, db: str, registry_file: str) -> None:
    """paho + orjson + f-strings + 5,000-line POSTs; acks on receipt (no guarantee). Prints
    `written N` after each POST and `ready` once subscribed."""
    import queue

    import orjson
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    districts = {d.id: d.district for d in Registry(registry_file).list(limit=1_000_000)[0]}
    http = httpx.Client(base_url=influx_url, timeout=30)
    batches: queue.SimpleQueue = queue.SimpleQueue()
    buf: list[str] = []
    last_flush = [time.monotonic()]

    def writer() -> None:
        written = 0
        while True:
            lines = batches.get()
            http.post("/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
            written += len(lines)
            print(f"written {written}", flush=True)

    def flush() -> None:
        nonlocal buf
        if buf:
            batches.put(buf)
            buf = []
        last_flush[0] = time.monotonic()

    def on_message(client, userdata, message) -> None:
        device = message.topic.split("/")[3]
        body = orjson.loads(message.payload)
        head = f"water,device={device},district={districts[device]} "
        seq = body["seq"]
        for row in body["r"]:
            buf.append(head + ",".join(f"{k}={v}" for k, v in row[1].items()) + f",seq={seq}i {row[0]}")
        if len(buf) >= 5000:
            flush()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=LEAN_USER, clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(LEAN_USER, SECRET)
    client.on_message = on_message
    client.on_subscribe = lambda *a: print("ready", flush=True)
    client.connect("127.0.0.1", port)
    client.subscribe(contract.TELEMETRY_SUB, qos=1)
    threading.Thread(target=writer, daemon=True).start()
    while True:
        client.loop(0.05)
        if time.monotonic() - last_flush[0] > 0.2:
            flush()


# ------------------------------------------------------------------ consumers as processes


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Consumer:
    """A worker or the lean worker as a child process, with a way to read how many points it wrote."""

    def __init__(self, kind: str, city: "City", influxd: Influxd):
        self.kind = kind
        self.written = 0
        log = open(city.dir / f"{kind}.log", "ab")  # noqa: SIM115 (the child keeps it)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if kind == "lean":
            self.proc = subprocess.Popen([sys.executable, __file__, "--run-lean", str(city.mosquitto.port),
                                          influxd.url, city.influx.db, str(city.registry_file)],
                                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
            self.ready = threading.Event()
            threading.Thread(target=self._read_lean, daemon=True).start()
            if not self.ready.wait(30):
                raise RuntimeError(f"lean worker did not subscribe: {(city.dir / 'lean.log').read_text()[-1500:]}")
            return
        self.metrics_port = free_port()
        env |= {"CITY_ENVIRONMENT": "test", "CITY_DATA_DIR": str(city.dir / "var"),
                "CITY_REGISTRY_PATH": str(city.registry_file), "CITY_MQTT_PORT": str(city.mosquitto.port),
                "CITY_MQTT_USER": "svc-ingest-0", "CITY_MQTT_PASSWORD": SECRET, "CITY_INFLUX_URL": influxd.url,
                "CITY_INFLUX_DB": city.influx.db, "CITY_INGEST_METRICS_PORT": str(self.metrics_port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while self.metric("ingest_mqtt_connects_total") < 1:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"worker did not connect: {(city.dir / 'worker.log').read_text()[-1500:]}")
            time.sleep(0.1)
        time.sleep(0.5)  # SUBACK

    def _read_lean(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.startswith("written "):
                self.written = int(line.split()[1])

    def metric(self, name: str) -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return 0
        for line in text.splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0

    def points_written(self) -> int:
        if self.kind == "lean":
            return self.written
        return int(self.metric("ingest_points_written_total"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM if self.kind == "worker" else signal.SIGKILL)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# ------------------------------------------------------------------ one scenario


class City:
    """A fresh broker and database, and the registry, for one run."""

    def __init__(self, workdir: Path, influxd: Influxd, name: str, devices: int = DEVICES,
                 max_queued: int = 1_000_000):
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        hashed = broker.hash_password(SECRET)
        users = {broker.service_user("ingest", i): hashed for i in range(8)}
        users |= {d: hashed for d in [*device_ids(devices), PROBE]}
        self.mosquitto = Mosquitto(self.dir / "mosquitto", users=users, max_queued_messages=max_queued).start()
        self.influx = InfluxQL(influxd.url, name)
        self.influx.create_database()
        self.registry_file = self.dir / "registry.sqlite3"
        registry = Registry(self.registry_file)
        self.districts = {}
        for i, device in enumerate([*device_ids(devices), PROBE]):
            registry.add(DeviceNew(id=device, kind="water", district=DISTRICTS[i % len(DISTRICTS)]))
            self.districts[device] = DISTRICTS[i % len(DISTRICTS)]
        registry.close()

    def close(self) -> None:
        self.mosquitto.stop()


def drain(kind: str, workdir: Path, influxd: Influxd, msgs: list[tuple[str, bytes]], readings: int,
          name: str) -> dict:
    """Backlog first (consumer frozen), then time the consumer until every point is written."""
    city = City(workdir, influxd, name)
    points = len(msgs) * readings
    try:
        consumer = Consumer(kind, city, influxd)
        consumer.proc.send_signal(signal.SIGSTOP)
        publish(city.mosquitto.port, msgs)
        cpu0, influx0 = cpu_s(consumer.proc.pid), cpu_s(influxd.proc.pid)
        started = time.monotonic()
        consumer.proc.send_signal(signal.SIGCONT)
        deadline = started + 600
        while consumer.points_written() < points:
            if time.monotonic() > deadline or consumer.proc.poll() is not None:
                raise RuntimeError(f"{kind}: {consumer.points_written()} of {points} points after 600 s")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        cpu, influx_cpu = cpu_s(consumer.proc.pid) - cpu0, cpu_s(influxd.proc.pid) - influx0
        rss = peak_rss_mb(consumer.proc.pid)
        consumer.stop()
        stored = city.influx.rows('SELECT count("flow_lps") FROM "water"')
        if not stored or stored[0]["count"] != points:
            raise RuntimeError(f"{kind}: InfluxDB holds {stored} points, expected {points}")
        return {"consumer": kind, "readings": readings, "messages": len(msgs), "seconds": seconds,
                "msg_s": len(msgs) / seconds, "points_s": points / seconds, "cpu_us": cpu / points * 1e6,
                "influx_us": influx_cpu / points * 1e6, "rss_mb": rss}
    finally:
        city.close()


def influxd_alone(workdir: Path, influxd: Influxd, msgs: list[tuple[str, bytes]], readings: int, name: str) -> dict:
    city = City(workdir, influxd, name, devices=1)
    try:
        districts = {d: DISTRICTS[i % len(DISTRICTS)] for i, d in enumerate(device_ids())}
        lines = line_protocol(msgs, districts)
        bodies = [("\n".join(lines[i:i + 5000]) + "\n").encode() for i in range(0, len(lines), 5000)]
        http = httpx.Client(base_url=influxd.url, timeout=60)
        influx0 = cpu_s(influxd.proc.pid)
        started = time.monotonic()
        for body in bodies:
            http.post("/write", params={"db": city.influx.db, "precision": "ms"}, content=body).raise_for_status()
        seconds = time.monotonic() - started
        influx_cpu = cpu_s(influxd.proc.pid) - influx0
        return {"consumer": "influxd", "readings": readings, "messages": len(msgs), "seconds": seconds,
                "msg_s": len(msgs) / seconds, "points_s": len(lines) / seconds, "cpu_us": float("nan"),
                "influx_us": influx_cpu / len(lines) * 1e6, "rss_mb": float("nan")}
    finally:
        city.close()


# ------------------------------------------------------------------ memory over a long stream


def rss_run(workdir: Path, influxd: Influxd, total: int) -> list[tuple[int, float, float]]:
    """One worker, `total` one-reading messages streamed in; (messages written, RSS MB, peak MB) samples."""
    city = City(workdir, influxd, "rss", max_queued=total + 1000)
    samples = []
    try:
        consumer = Consumer("worker", city, influxd)
        base_ms = int(time.time() * 1000) - 30 * 24 * 3600 * 1000
        chunk = 100_000
        for start in range(0, total, chunk):
            msgs = messages(min(chunk, total - start), 1, base_ms + start // DEVICES * 1000)
            msgs = [(d, p) for d, p in msgs]  # seqs restart per chunk: give each chunk its own seq range
            proc = publish_process(city.mosquitto.port, _reseq(msgs, start // DEVICES))
            proc.join(600)
            while consumer.points_written() < start + len(msgs) - 5000:
                time.sleep(0.2)
            status = Path(f"/proc/{consumer.proc.pid}/status").read_text()
            rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024
            samples.append((consumer.points_written(), rss, peak_rss_mb(consumer.proc.pid)))
            print(f"  rss: {samples[-1][0]:,} points, RSS {rss:.0f} MB, peak {samples[-1][2]:.0f} MB",
                  file=sys.stderr, flush=True)
        while consumer.points_written() < total:
            time.sleep(0.2)
        samples.append((consumer.points_written(), samples[-1][1], peak_rss_mb(consumer.proc.pid)))
        consumer.stop()
        return samples
    finally:
        city.close()


def _reseq(msgs: list[tuple[str, bytes]], offset: int) -> list[tuple[str, bytes]]:
    import orjson

    out = []
    for device, payload in msgs:
        body = orjson.loads(payload)
        body["seq"] += offset
        out.append((device, orjson.dumps(body)))
    return out


# ------------------------------------------------------------------ latency


def latency(workdir: Path, influxd: Influxd, rate: float, seconds: float) -> list[float]:
    """Steady `rate` msg/s of one reading each, and a probe reading every 100 ms polled until queryable."""
    city = City(workdir, influxd, "latency")
    try:
        consumer = Consumer("worker", city, influxd)
        base_ms = int(time.time() * 1000) - 3_600_000
        proc = publish_process(city.mosquitto.port, messages(int(rate * seconds), 1, base_ms), rate)
        time.sleep(1.0)  # into the steady state
        probe = _connect(city.mosquitto.port, PROBE)
        waits = []
        end = time.monotonic() + seconds - 2
        seq = 0
        while time.monotonic() < end:
            t_ms = int(time.time() * 1000)
            payload = contract.encode_telemetry(seq, [(t_ms, {"flow_lps": 1.0})], "bench")
            published = time.monotonic()
            probe.sendall(_packet(0x32, _str(contract.telemetry_topic(PROBE)) + struct.pack("!H", seq % 65535 + 1)
                                  + payload))
            q = f"SELECT count(\"flow_lps\") FROM \"water\" WHERE \"device\" = '{PROBE}' AND time = {t_ms}ms"
            while time.monotonic() - published < 30 and not city.influx.rows(q):
                time.sleep(0.005)
            waits.append(time.monotonic() - published)
            seq += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - published)))
        proc.join(120)
        consumer.stop()
        return waits
    finally:
        city.close()


def settle(influxd: Influxd, idle_share: float = 0.05, longest_s: float = 20.0) -> None:
    """Wait until influxd used under `idle_share` of a core for a second (or `longest_s` passed)."""
    deadline = time.monotonic() + longest_s
    while time.monotonic() < deadline:
        before = cpu_s(influxd.proc.pid)
        time.sleep(1.0)
        if cpu_s(influxd.proc.pid) - before < idle_share:
            return


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (medians are printed)")
    parser.add_argument("--readings", default="1,10,100", help="readings a message, comma-separated")
    parser.add_argument("--points", type=int, default=100_000, help="points per throughput run (at least 1 "
                        "message per device)")
    parser.add_argument("--consumers", default="worker,lean,influxd", help="comma-separated")
    parser.add_argument("--rss-messages", type=int, default=0, help="one-reading messages for the memory run")
    parser.add_argument("--rate", type=float, default=2000, help="msg/s of the latency run (0: none)")
    parser.add_argument("--latency-s", type=float, default=20, help="length of the latency run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print it")
    args = parser.parse_args()
    args.load_start = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if args.keep:
        print(f"work folder (logs): {workdir}", file=sys.stderr)
    influxd = Influxd(workdir / "influxd").start()
    rows, rss, waits = [], [], []
    try:
        base_ms = int(time.time() * 1000) - 20 * 24 * 3600 * 1000
        for readings in (int(r) for r in args.readings.split(",")):
            msgs = messages(max(DEVICES, args.points // readings), readings, base_ms)
            kinds = args.consumers.split(",")
            for run in range(args.runs):
                # Each run starts with another consumer, and each drain waits for influxd to settle (it
                # compacts what the previous one wrote): no consumer always follows the bulk write.
                for kind in kinds[run % len(kinds):] + kinds[:run % len(kinds)]:
                    settle(influxd)
                    name = f"r{readings}_{kind}_{run}"
                    row = (influxd_alone(workdir, influxd, msgs, readings, name) if kind == "influxd"
                           else drain(kind, workdir, influxd, msgs, readings, name))
                    row["run"] = run
                    rows.append(row)
                    print(f"  {readings}/msg run {run} {kind}: {row['points_s']:,.0f} points/s, "
                          f"{row['msg_s']:,.0f} msg/s", file=sys.stderr, flush=True)
        if args.rss_messages:
            rss = rss_run(workdir, influxd, args.rss_messages)
        if args.rate:
            waits = latency(workdir, influxd, args.rate, args.latency_s)
    finally:
        influxd.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    report(rows, rss, waits, args)


TARGETS = {1: 20_000, 10: 100_000}  # issue 16: readings/s of one worker at 1 and at 10 readings a message


def _ratio(mine: list[dict], base: dict[int, float]) -> str:
    """Median over runs of this consumer's points/s over the baseline's in the same run."""
    ratios = [r["points_s"] / base[r["run"]] for r in mine if r["run"] in base]
    return f"{statistics.median(ratios):.2f}" if ratios else "-"


def report(rows: list[dict], rss: list, waits: list[float], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nIngest, drained from a queued backlog: {DEVICES} devices, QoS 1, loopback, {os.cpu_count()} cores, "
          f"load average {args.load_start:.1f} at the start, {load[0]:.1f} at the end. Medians of {args.runs} runs; "
          f"a reading = one sample of {len(METRICS4)} values = one point; ratios are medians of the ratios within "
          "each run.")
    print(f"{'readings/msg':>12} {'consumer':<8}{'messages':>9}{'msg/s':>9}{'smp/msg':>8}{'val/smp':>8}"
          f"{'points/s':>10}{'µs/pt':>7}{'influx µs/pt':>13}{'peak RSS MB':>12}{'x lean':>8}{'x influxd':>10}")
    verdicts = []
    for readings in sorted({r["readings"] for r in rows}):
        def by_run(kind: str, readings: int = readings) -> dict[int, float]:
            return {r["run"]: r["points_s"] for r in rows if r["readings"] == readings and r["consumer"] == kind}

        lean, influxd = by_run("lean"), by_run("influxd")
        for kind in args.consumers.split(","):
            mine = [r for r in rows if r["readings"] == readings and r["consumer"] == kind]
            if not mine:
                continue

            def med(key: str, mine: list = mine) -> float:
                return statistics.median(r[key] for r in mine)

            print(f"{readings:>12} {kind:<8}{mine[0]['messages']:>9,}{med('msg_s'):>9,.0f}{readings:>8}"
                  f"{len(METRICS4):>8}{med('points_s'):>10,.0f}{med('cpu_us'):>7.1f}{med('influx_us'):>13.1f}"
                  f"{med('rss_mb'):>12.0f}{_ratio(mine, lean):>8}{_ratio(mine, influxd):>10}")
            if kind == "worker" and readings in TARGETS:
                target, got = TARGETS[readings], med("points_s")
                verdicts.append(f"  {readings} reading(s) a message: {got:,.0f} readings/s, target {target:,}: "
                                f"{'reached' if got >= target else 'NOT reached'}")
    if verdicts:
        print("\nTargets of issue 16 (one worker, medians):")
        print("\n".join(verdicts))
    if rss:
        print(f"\nMemory of one worker over {args.rss_messages:,} one-reading messages (streamed):")
        for written, now_mb, peak_mb in rss:
            print(f"  {written:>10,} points written: RSS {now_mb:.0f} MB, peak {peak_mb:.0f} MB")
    if waits:
        print(f"\nPublish to queryable at {args.rate:,.0f} msg/s (one reading each), a probe reading every 100 ms: "
              f"{len(waits)} probes, p50 {statistics.median(waits) * 1000:.0f} ms, "
              f"p99 {percentile(waits, 99) * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run-lean":
        lean_main(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        main()
