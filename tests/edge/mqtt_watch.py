"""Helpers for the firmware tests: run the agent under the real `micropython`
binary, and watch what reaches the broker with a durable paho subscriber."""

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from telemetry_shared import broker
from tests.conftest import SERVICE_PASSWORD


@dataclass
class Arrival:
    topic: str
    body: dict
    at: float  # time.monotonic() when it arrived


@dataclass
class Watcher:
    """A persistent-session subscriber (svc-ingest-0) that keeps every message it receives."""

    port: int
    topics: list[str]
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.subscribed = threading.Event()
        user = broker.service_user("ingest", 0)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, clean_session=False)
        self.client.username_pw_set(user, SERVICE_PASSWORD)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.arrivals.append(Arrival(message.topic, json.loads(message.payload), time.monotonic()))

    def start(self) -> "Watcher":
        self.client.connect("127.0.0.1", self.port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber never got its SUBACK"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def telemetry(self) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.topic.endswith("/telemetry")]

    def status(self) -> list[dict]:
        with self.lock:
            return [a.body for a in self.arrivals if a.topic.endswith("/status")]


def run_micropython(micropython_bin: str, flash: Path, args: tuple[str, ...] = (), heap: str = "",
                    log_name: str = "agent.log") -> subprocess.Popen:
    """flash/run.py under micropython, as a board boots it: modules from its flash first, then the frozen ones;
    `heap` like 96k for a small board's heap; the output kept in flash/<log_name>."""
    command = [micropython_bin, *(("-X", f"heapsize={heap}") if heap else ()), "run.py", *args]
    with open(flash / log_name, "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=flash, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, MICROPYPATH=f"{flash}:.frozen"))


def start_agent(micropython_bin: str, flash: Path, config: dict, duration_ms: int,
                script: str = "") -> subprocess.Popen:
    """The agent under micropython with this config.json, for duration_ms (edge.main, or `script` as run.py,
    with `%d` for the duration), its output kept in flash/agent.log."""
    (flash / "config.json").write_text(json.dumps(config))
    run = script % duration_ms if script else f"from edge.main import main\nmain('config.json', None, {duration_ms})\n"
    (flash / "run.py").write_text(run)
    return run_micropython(micropython_bin, flash)


def finish(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """Wait for an agent to end by itself; one still running after timeout_s is killed (and the test's
    assertions on its exit code then fail)."""
    try:
        proc.wait(timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def device_config(device_id: str, kind: str, port: int, password: str, **extra) -> dict:
    """A board's config.json; plain MQTT (said explicitly) unless extra names a ca_path."""
    config = {"device_id": device_id, "kind": kind, "server": "127.0.0.1", "port": port, "password": password,
              "keepalive_s": 5} | extra
    if "ca_path" not in config:
        config.setdefault("tls", False)
    return config


def samples_of(arrivals: list[Arrival]) -> list[tuple[int, bool, dict]]:
    """(t_ms, hist, values) of every sample, in arrival order."""
    out = []
    for arrival in arrivals:
        batch = contract.validate_telemetry(arrival.body, _kind_of(arrival.body), int(time.time() * 1000))
        for t_ms, values, _ in batch.samples:
            out.append((t_ms, batch.hist, values))
    return out


def _kind_of(body: dict) -> str:
    metric = next(iter(body["r"][0][1]))
    return contract.METRICS[metric][0]


def publish_config(port: int, topic: str, payload: bytes) -> None:
    """Publish a retained config as the API service would (svc-api-0 may write config topics)."""
    user = broker.service_user("api", 0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    client.username_pw_set(user, SERVICE_PASSWORD)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
