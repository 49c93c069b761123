"""Run the deployed Mosquitto config on loopback in a temp folder, and MQTT helpers."""

import os
import pwd
import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy import broker_files
from telemetry_shared import broker
from telemetry_shared.local_ca import ensure_local_ca
from telemetry_shared.servers import Mosquitto, free_port

DEPLOY = Path(broker_files.__file__).resolve().parent


def localised(text: str, root: Path, port: int, tls_port: int | None = None) -> str:
    """The deployed text with its container paths under `root` and its listeners on loopback.

    The only other change: `user <us>`, because these tests run as root and Mosquitto
    started as root drops to the `mosquitto` user, while in the container it starts as
    the app user and stays so."""
    text = text.replace(broker_files.IMAGE_PLUGIN, broker.DYNSEC_PLUGIN)  # the image's path -> Debian's
    text = text.replace("/mosquitto/", f"{root}/mosquitto/")
    text = text.replace(f"listener {broker_files.MQTT_PORT}\n", f"listener {port} 127.0.0.1\n")
    if tls_port:
        text = text.replace(f"listener {broker_files.TLS_PORT}\n", f"listener {tls_port} 127.0.0.1\n")
    return text


class DeployedMosquitto(Mosquitto):
    """Mosquitto with deploy/mosquitto/mosquitto.conf as committed (paths moved to a temp root), on the
    dynamic-security file broker-init wrote in <root>/mosquitto/auth."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.root = root
        self.tls_port = free_port()
        for sub in ("config", "auth/listeners", "data"):
            (root / "mosquitto" / sub).mkdir(parents=True, exist_ok=True)
        self.dynsec = root / "mosquitto" / "auth" / broker_files.DYNSEC_FILE

    def prepare(self) -> None:
        conf = localised((DEPLOY / "mosquitto" / "mosquitto.conf").read_text(), self.root, self.port)
        user = pwd.getpwuid(os.getuid()).pw_name
        first, rest = conf.split("\n", 1)
        self.conf.write_text(f"{first}\nuser {user}\n{rest}")
        tls = self.root / "mosquitto" / "auth" / "listeners" / "tls.conf"
        if tls.exists():
            tls.write_text(localised(tls.read_text(), self.root, self.port, self.tls_port))


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """deploy/certs as an operator fills it: server.crt and server.key for localhost and
    127.0.0.1, and ca.crt, the CA that signed them (EC P-256, telemetry_shared.local_ca)."""
    if not shutil.which("openssl"):
        pytest.fail("`openssl` is not installed: apt-get install openssl", pytrace=False)
    files = ensure_local_ca(folder, ["localhost", "127.0.0.1"])
    return files.server_crt, files.server_key


def connect(port: int, user: str | None, password: str | None, client_id: str = "", ca: Path | None = None,
            timeout_s: float = 5) -> tuple[mqtt.Client, int]:
    """Connect and wait for the CONNACK; returns (client, reason code value: 0 is accepted)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or (user or "anon"),
                         protocol=mqtt.MQTTv311)
    if user is not None:
        client.username_pw_set(user, password)
    if ca:
        client.tls_set(ca_certs=str(ca))
    result: dict[str, int] = {}
    done = threading.Event()

    def on_connect(c, userdata, flags, reason_code, properties):
        result["rc"] = reason_code.value
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *a: done.set()
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return client, -1
    client.loop_start()
    done.wait(timeout_s)
    return client, result.get("rc", -1)


def collect(client: mqtt.Client, topic: str) -> list[tuple[str, bytes]]:
    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client.on_message = lambda c, u, m: received.append((m.topic, m.payload))
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe(topic, qos=1)
    subscribed.wait(5)
    return received


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def stop(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()
