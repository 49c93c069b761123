"""How fast a new event reaches every open stream: alert streams (/alerts/stream)
and live device watchers (/devices/{id}/live), many at once.

Starts its own Mosquitto and the API as `python -m api` (one uvicorn process),
opens STREAMS alert streams and WATCHERS live watchers (spread over DEVICES
devices) from this process with plain asyncio sockets, then ROUNDS times
publishes one alert (as analytics does) and one telemetry message per device
(as the devices do) and times, for every stream, publish -> the event read by
the client. Side by side in the same run:

  direct MQTT subscriber   the floor: the same messages straight from Mosquitto, no API
  1 stream + 1 watcher     the API with nothing else open
  STREAMS + WATCHERS       the API under the load of the issue (500 + 200)

    python bench/bench_streams.py [--streams 500] [--watchers 200] [--devices 50] [--rounds 10]

Bounded: every wait has a timeout; a stream that gets nothing counts as a miss.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from bench_api import wait_ready  # noqa: E402  (the script's own folder is on sys.path)
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from api.auth import KeyStore  # noqa: E402
from api.db import ApiDb  # noqa: E402
from edge import contract  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402
from telemetry_shared.servers import Mosquitto, free_port  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

SERVICE_PASSWORD = "bench-service-secret"
DEVICE_PASSWORD = "bench-device-secret"
EVENT_TIMEOUT_S = 10.0


class Stream:
    """One SSE connection: the time each marker arrived."""

    def __init__(self, port: int, path: str, key: str):
        self.port, self.path, self.key = port, path, key
        self.arrived: dict[str, float] = {}
        self.hello = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        writer.write(f"GET {self.path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.key}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        try:
            while line := await reader.readline():
                if line.startswith(b"event: hello"):
                    self.hello.set()
                elif line.startswith(b"data: ") and b"bench-mark-" in line:
                    now = time.time()
                    start = line.index(b"bench-mark-")
                    mark = line[start:start + 24].split(b'"')[0].decode()
                    self.arrived.setdefault(mark, now)
        finally:
            writer.close()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())


class Publisher:
    """Publishes alerts (as analytics) and telemetry (as the devices), and a direct subscriber as the floor."""

    def __init__(self, port: int, devices: list[str]):
        self.clients = {}
        for user, password in [(broker.service_user("analytics", 0), SERVICE_PASSWORD)] + [
                (d, DEVICE_PASSWORD) for d in devices]:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311)
            client.username_pw_set(user, password)
            client.connect("127.0.0.1", port)
            client.loop_start()
            self.clients[user] = client
        self.direct: dict[str, float] = {}
        self.floor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.service_user("api", 2),
                                 protocol=mqtt.MQTTv311)
        self.floor.username_pw_set(broker.service_user("api", 2), SERVICE_PASSWORD)
        self.floor.on_message = self._floor_message
        self.subscribed = threading.Event()
        self.floor.on_subscribe = lambda *a: self.subscribed.set()
        self.floor.connect("127.0.0.1", port)
        self.floor.subscribe([(contract.ALERTS_SUB, 1), (contract.TELEMETRY_SUB, 1)])
        self.floor.loop_start()
        self.subscribed.wait(5)

    def _floor_message(self, client, userdata, message) -> None:
        text = message.payload.decode(errors="replace")
        if "bench-mark-" in text:
            start = text.index("bench-mark-")
            self.direct.setdefault(text[start:start + 24].split('"')[0] + "@" + message.topic, time.time())

    def alert(self, mark: str) -> float:
        now = int(time.time() * 1000)
        body = {"id": mark, "device": "wtr-0000", "kind": "water", "district": get_settings().city.slugs[0],
                "metric": "pressure_bar", "rule": "pressure_low", "state": "active", "severity": "warning",
                "score": 0.9, "observed": 1.2, "expected": 3.4, "started_ms": now - 1000, "updated_ms": now,
                "explanation": mark}
        sent = time.time()
        self.clients[broker.service_user("analytics", 0)].publish(contract.alert_topic("wtr-0000"),
                                                                  contract.encode_alert(body), qos=1)
        return sent

    def telemetry(self, device: str, mark: str, seq: int) -> float:
        payload = contract.encode_telemetry(seq, [(int(time.time() * 1000), {"flow_lps": 1.0})], mark)
        sent = time.time()
        self.clients[device].publish(contract.telemetry_topic(device), payload, qos=1)
        return sent

    def close(self) -> None:
        for client in [*self.clients.values(), self.floor]:
            client.disconnect()
            client.loop_stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def measure(port: int, key: str, publisher: Publisher, devices: list[str], streams: int, watchers: int,
                  rounds: int, label: str) -> dict:
    alert_streams = [Stream(port, "/alerts/stream", key) for _ in range(streams)]
    watch_streams = [Stream(port, f"/devices/{devices[i % len(devices)]}/live?timeout_s=3600", key)
                     for i in range(watchers)]
    everything = alert_streams + watch_streams
    for stream in everything:
        stream.start()
    await asyncio.wait_for(asyncio.gather(*(s.hello.wait() for s in everything)), 120)
    await asyncio.sleep(1.0)  # the watchers' subscriptions settle
    alert_lat, watch_lat, misses = [], [], 0
    for n in range(rounds):
        mark = f"bench-mark-{label[:3]}{n:04d}"
        sent_alert = publisher.alert(mark)
        sent = {d: publisher.telemetry(d, mark, n) for d in devices[:max(1, min(len(devices), watchers))]}
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while time.monotonic() < deadline and not all(mark in s.arrived for s in everything):
            await asyncio.sleep(0.01)
        for stream in alert_streams:
            if mark in stream.arrived:
                alert_lat.append(stream.arrived[mark] - sent_alert)
            else:
                misses += 1
        for i, stream in enumerate(watch_streams):
            device = devices[i % len(devices)]
            if mark in stream.arrived:
                watch_lat.append(stream.arrived[mark] - sent[device])
            else:
                misses += 1
        await asyncio.sleep(0.2)
    for stream in everything:
        stream.task.cancel()
    await asyncio.gather(*(s.task for s in everything), return_exceptions=True)
    return {"alert": alert_lat, "watch": watch_lat, "misses": misses}


def floor_latencies(publisher: Publisher, devices: list[str], rounds: int) -> list[float]:
    latencies = []
    for n in range(rounds):
        mark = f"bench-mark-flr{n:04d}"
        sent = {contract.alert_topic("wtr-0000"): publisher.alert(mark)}
        for device in devices:
            sent[contract.telemetry_topic(device)] = publisher.telemetry(device, mark, 10_000 + n)
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while time.monotonic() < deadline and len([k for k in publisher.direct if k.startswith(mark)]) < len(sent):
            time.sleep(0.01)
        latencies += [publisher.direct[f"{mark}@{topic}"] - t for topic, t in sent.items()
                      if f"{mark}@{topic}" in publisher.direct]
        time.sleep(0.1)
    return latencies


def line(name: str, values: list[float], misses: int = 0) -> str:
    if not values:
        return f"{name:34} {'-':>8} {'-':>8} {'-':>8} {misses:7d}"
    return (f"{name:34} {len(values):8d} {statistics.median(values) * 1000:8.1f} {pct(values, 0.99) * 1000:8.1f} "
            f"{max(values) * 1000:8.1f} {misses:7d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=500, help="open alert streams")
    parser.add_argument("--watchers", type=int, default=200, help="open live device watchers")
    parser.add_argument("--devices", type=int, default=50, help="devices the watchers are spread over")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    devices = [f"wtr-{n:04d}" for n in range(1, args.devices + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        tmp_path = Path(tmp)
        users = {broker.service_user(s, n): broker.hash_password(SERVICE_PASSWORD)
                 for s, n in (("api", 0), ("api", 1), ("api", 2), ("analytics", 0))}
        users |= {d: broker.hash_password(DEVICE_PASSWORD) for d in devices}
        mosquitto = Mosquitto(tmp_path / "mosquitto", users=users).start()
        api_proc = None
        publisher = None
        try:
            registry = Registry(tmp_path / "var" / "registry.sqlite3")
            for device in ["wtr-0000", *devices]:
                registry.add(DeviceNew(id=device, kind="water", district=get_settings().city.slugs[0]))
            registry.close()
            db = ApiDb(tmp_path / "var" / "api.sqlite3")
            key = KeyStore(db).create("bench", "operator").key
            db.close()
            port = free_port()
            env = dict(os.environ, CITY_ENVIRONMENT="test", CITY_DATA_DIR=str(tmp_path / "var"),
                       CITY_INFLUX_URL=f"http://127.0.0.1:{free_port()}", CITY_MQTT_PORT=str(mosquitto.port),
                       CITY_MQTT_PASSWORD=SERVICE_PASSWORD, CITY_API_PORT=str(port), CITY_API_ESCALATE_AFTER_S="3600")
            api_proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(port)
            publisher = Publisher(mosquitto.port, devices)
            print(f"{args.rounds} rounds: one alert and one telemetry message per device each round; "
                  f"latency = publish to the event read by the client; load {os.getloadavg()[0]:.1f}", flush=True)
            print(f"{'':34} {'events':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'misses':>7}")
            print(line("direct MQTT subscriber (floor)", floor_latencies(publisher, devices, args.rounds)))
            one = asyncio.run(measure(port, key, publisher, devices[:1], 1, 1, args.rounds, "one"))
            print(line("1 alert stream", one["alert"]))
            print(line("1 live watcher", one["watch"]))
            many = asyncio.run(measure(port, key, publisher, devices, args.streams, args.watchers, args.rounds,
                                       "many"))
            print(line(f"{args.streams} alert streams", many["alert"]))
            print(line(f"{args.watchers} live watchers ({args.devices} devices)", many["watch"], many["misses"]))
            every = many["alert"] + many["watch"]
            verdict = "PASS" if every and pct(every, 0.99) < 1.0 and not many["misses"] else "FAIL"
            print(f"p99 over all {len(every)} events under load: {pct(every, 0.99) * 1000:.1f} ms "
                  f"(goal < 1000 ms): {verdict}; load average now {os.getloadavg()[0]:.1f}")
            print(json.dumps({"p99_ms": round(pct(every, 0.99) * 1000, 1), "misses": many["misses"]}))
        finally:
            if publisher:
                publisher.close()
            if api_proc:
                api_proc.terminate()
                api_proc.wait(15)
            mosquitto.stop()


if __name__ == "__main__":
    main()
