"""Helpers for the fault tests: a small fleet that streams telemetry at a steady
rate (and records what it published), ingest workers run as real processes
(`python -m ingest`, so they can be killed with -9), and the check that every
(device, seq) published is queryable exactly once."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from telemetry_shared import broker
from telemetry_shared.influx import InfluxQL
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.servers import Mosquitto, free_port
from tests.conftest import ROOT, SERVICE_PASSWORD

SAMPLES_PER_MESSAGE = 5
DEVICE_SECRET = "test-device-secret"


def fleet_users(n: int) -> dict[str, str]:
    hashed = broker.hash_password(DEVICE_SECRET)
    return {f"wtr-{i:04d}": hashed for i in range(n)}


def register(registry: Registry, devices: list[str]) -> None:
    for i, device in enumerate(devices):
        district = ("bukit-bestari", "tanjungpinang-kota", "tanjungpinang-barat", "tanjungpinang-timur")[i % 4]
        registry.add(DeviceNew(id=device, kind="water", district=district))


class Fleet:
    """Devices publishing QoS 1 telemetry at `rate_hz` messages per second each.

    Durable sessions (clean_session=False) and paho's own resend on reconnect,
    as a device's MQTT stack does; whatever is still unconfirmed at the end is
    sent again (a duplicate is harmless: same seq, same timestamps)."""

    def __init__(self, mosquitto: Mosquitto, devices: list[str], rate_hz: float = 10.0):
        self.mosquitto = mosquitto
        self.devices = devices
        self.rate_hz = rate_hz
        self.published: dict[str, int] = {}  # device -> messages published (seq 0..n-1)
        self.infos: list[tuple[mqtt.Client, str, bytes, mqtt.MQTTMessageInfo]] = []
        self.stop_flag = threading.Event()
        self.start_ms = int(time.time() * 1000)
        self.clients = {d: self._client(d) for d in devices}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _client(self, device: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, clean_session=False,
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(device, DEVICE_SECRET)
        client.reconnect_delay_set(0.1, 1)
        client.max_queued_messages_set(0)
        client.connect_async("127.0.0.1", self.mosquitto.port, keepalive=10)
        client.loop_start()
        return client

    def start(self) -> "Fleet":
        self.thread.start()
        return self

    def _run(self) -> None:
        seq = 0
        interval = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            for device, client in self.clients.items():
                t0 = self.start_ms + seq * SAMPLES_PER_MESSAGE
                samples = [(t0 + j, {"flow_lps": float(seq), "pressure_bar": 3.0}) for j in range(SAMPLES_PER_MESSAGE)]
                payload = contract.encode_telemetry(seq, samples, "0.1.0")
                topic = contract.telemetry_topic(device)
                self.infos.append((client, topic, payload, client.publish(topic, payload, qos=1)))
                self.published[device] = seq + 1
            seq += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop(self, confirm_s: float = 30) -> None:
        """Stop publishing and wait until the broker confirmed every message."""
        self.stop_flag.set()
        self.thread.join(10)
        deadline = time.monotonic() + confirm_s
        resent = False
        while time.monotonic() < deadline:
            unconfirmed = [i for i in self.infos if not _confirmed(i[3])]
            if not unconfirmed:
                break
            if not resent and time.monotonic() > deadline - confirm_s / 2:
                self.infos = [i for i in self.infos if _confirmed(i[3])]
                for client, topic, payload, _ in unconfirmed:  # belt and braces: send again
                    self.infos.append((client, topic, payload, client.publish(topic, payload, qos=1)))
                resent = True
            time.sleep(0.2)
        else:
            raise AssertionError(f"{len(unconfirmed)} messages never confirmed by the broker")
        for client in self.clients.values():
            client.disconnect()
            client.loop_stop()

    def expected(self) -> Counter:
        """(device, seq) -> points expected in InfluxDB."""
        return Counter({(d, s): SAMPLES_PER_MESSAGE for d, n in self.published.items() for s in range(n)})


def _confirmed(info: mqtt.MQTTMessageInfo) -> bool:
    # A message published while disconnected keeps rc=NO_CONN even after paho
    # resent it on reconnect and got the PUBACK, so is_published() raises; the
    # flag it sets on the PUBACK is the truth.
    return bool(info._published)


def stored(influx: InfluxQL) -> Counter:
    counts: Counter = Counter()
    for row in influx.rows('SELECT "seq", "flow_lps", "device" FROM "water"'):
        counts[(row["device"], row["seq"])] += 1
    return counts


def wait_until_stored(influx: InfluxQL, fleet: Fleet, timeout_s: float = 30) -> Counter:
    """Every published (device, seq) queryable, each with exactly its points (none twice)."""
    expected = fleet.expected()
    deadline = time.monotonic() + timeout_s
    got: Counter = Counter()
    while time.monotonic() < deadline:
        try:
            got = stored(influx)
        except Exception:  # noqa: BLE001 (influxd may still be starting)
            got = Counter()
        if got == expected:
            return got
        time.sleep(0.5)
    missing = expected - got
    extra = got - expected
    raise AssertionError(f"{sum(expected.values())} points expected; missing {len(missing)} keys "
                         f"(e.g. {sorted(missing)[:5]}), unexpected {len(extra)} (e.g. {sorted(extra)[:5]})")


class WorkerProcess:
    """`python -m ingest` with CITY_* settings, as it runs in production."""

    def __init__(self, tmp_path: Path, mosquitto: Mosquitto, influx_url: str, influx_db: str, registry_file: Path,
                 instance: int = 0, **extra: str):
        self.instance = instance
        self.metrics_port = free_port()
        self.log_path = tmp_path / f"ingest-{instance}.log"
        self.env = dict(os.environ) | {
            "CITY_ENVIRONMENT": "test",
            "CITY_DATA_DIR": str(tmp_path / "var"),
            "CITY_REGISTRY_PATH": str(registry_file),
            "CITY_MQTT_PORT": str(mosquitto.port),
            "CITY_MQTT_USER": broker.service_user("ingest", instance),
            "CITY_MQTT_PASSWORD": SERVICE_PASSWORD,
            "CITY_INFLUX_URL": influx_url,
            "CITY_INFLUX_DB": influx_db,
            "CITY_INFLUX_TIMEOUT_S": "2",
            "CITY_INGEST_SPOOL_AFTER_S": "1",
            "CITY_INGEST_RETRY_MAX_S": "1",
            "CITY_INGEST_WORKER_ID": f"ingest-{instance}",
            "CITY_INGEST_METRICS_PORT": str(self.metrics_port),
            "CITY_INGEST_STATS_INTERVAL_S": "2",
            "PYTHONPATH": str(ROOT),
        } | extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "ingest"], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            if self.metrics() and self.metrics().get("ingest_mqtt_connects_total", 0) >= 1:
                return self
            time.sleep(0.1)
        raise AssertionError(f"worker did not connect: {self.log_path.read_text()[-2000:]}")

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus text, summed per metric name (labels dropped)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                key = name.split("{")[0]
                out[key] = out.get(key, 0.0) + float(value)
                if 'reason="' in name:
                    out[name] = float(value)
        return out

    def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM: the worker drains and exits on its own."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("worker did not drain and exit within 30 s on SIGTERM") from None
        return self.proc.returncode if self.proc else 0
