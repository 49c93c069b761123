"""The API under test, for real: uvicorn serving create_app() on a free
loopback port in a thread of the test process, talking to a real Mosquitto
and a real influxd. Keys for every role, and an MQTT client that publishes
alerts as analytics does."""

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from api.app import create_app
from api.auth import ROLES
from api.services import ApiServices
from edge import contract
from telemetry_shared import broker
from telemetry_shared.servers import free_port
from telemetry_shared.settings import Settings
from tests.conftest import SERVICE_PASSWORD, wait_for  # noqa: F401 - re-exported for the API tests

KEY_NAMES = {role: f"{role}-ana" for role in ROLES}


@dataclass
class LiveApi:
    settings: Settings
    url: str
    services: ApiServices
    server: uvicorn.Server
    thread: threading.Thread
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, **({"timeout": 10} | kwargs))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_api(settings: Settings) -> LiveApi:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    live = LiveApi(settings, f"http://127.0.0.1:{port}", app.state.services, server, thread)
    wait_for(lambda: server.started, timeout_s=15)
    subscriber = live.services.alerts.subscriber
    if subscriber is not None:  # an alert published before the broker holds the subscription would be lost
        wait_for(subscriber.connected, timeout_s=15)
    for role in ROLES:
        live.keys[role] = live.services.keys.create(KEY_NAMES[role], role).key
    return live


class AnalyticsPublisher:
    """Publishes alerts over MQTT with the analytics service account."""

    def __init__(self, port: int):
        user = broker.service_user("analytics", 0)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, SERVICE_PASSWORD)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, alert: dict[str, Any] | bytes, device: str = "wtr-0001") -> None:
        payload = alert if isinstance(alert, bytes) else contract.encode_alert(alert)
        self.client.publish(contract.alert_topic(device), payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def alert(incident: str = "inc-1", device: str = "wtr-0001", severity: str = "warning", state: str = "active",
          updated_ms: int | None = None, **extra: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    body = {"id": incident, "device": device, "kind": "water", "district": "bukit-bestari",
            "metric": "pressure_bar", "rule": "pressure_low", "state": state, "severity": severity, "score": 0.9,
            "observed": 1.2, "expected": 3.4, "started_ms": now - 60_000, "updated_ms": updated_ms or now,
            "explanation": "pressure 1.2 bar, 65 % below the usual 3.4 bar for this hour"}
    return body | extra
