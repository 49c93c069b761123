"""The `city device` CLI against the real thing: Mosquitto (the fixture), the
API served by uvicorn on a loopback port, and an API key of a technician."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from api.app import create_app
from telemetry_shared import broker
from telemetry_shared.servers import free_port
from tests.conftest import SERVICE_PASSWORD
from tests.security.support import provisioning_settings


class ApiServer:
    """create_app() served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ApiServer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class City:
    """Runs `city device ...` as a technician would, with the API's URL and a token."""

    def __init__(self, mosquitto, settings, api: ApiServer, token: str, ca_file: Path | None = None):
        self.mosquitto = mosquitto
        self.ca_file = ca_file  # the CA that signed the broker's TLS certificate (PEM)
        self.settings = settings
        self.api = api
        self.token = token
        self.runner = CliRunner()

    def env(self, **extra: str) -> dict[str, str]:
        tls = {"CITY_MQTT_TLS_PORT": str(self.mosquitto.tls_port), "CITY_DEVICE_CA_FILE": str(self.ca_file)} \
            if self.mosquitto.tls_port and self.ca_file else {}
        return {"CITY_API_URL": self.api.url, "CITY_API_TOKEN": self.token,
                "CITY_MQTT_HOST": "127.0.0.1", "CITY_MQTT_PORT": str(self.mosquitto.port)} | tls | extra

    def run(self, *args: str, input: str | None = None, token: str | None = None):
        from telemetry_cli.main import app

        env = self.env(CITY_API_TOKEN=self.token if token is None else token)
        return self.runner.invoke(app, ["device", *args], input=input, env=env, catch_exceptions=False)

    @property
    def registry(self):
        return self.api.app.state.services.registry

    def key(self, role: str) -> str:
        return self.api.app.state.services.keys.create(f"test {role}", role).key


@pytest.fixture
def mosquitto(tls_mosquitto):
    """The technician's broker has a TLS listener for devices besides the plain one."""
    return tls_mosquitto


@pytest.fixture
def make_city(mosquitto, tmp_path: Path, local_ca) -> Iterator:
    """City factories: settings overrides for the API (e.g. a wrong broker password)."""
    servers: list[ApiServer] = []

    def make(**overrides) -> City:
        folder = tmp_path / f"city{len(servers)}"
        folder.mkdir()
        settings = provisioning_settings(folder, mosquitto, **({"api_mqtt_user": broker.service_user("api", 0)}
                                                               | overrides))
        server = ApiServer(create_app(settings)).start()
        servers.append(server)
        return City(mosquitto, settings, server, server.app.state.services.keys.create("tech", "technician").key,
                    local_ca.ca_crt)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def city(make_city) -> City:
    city = make_city()
    assert city.settings.mqtt_password == SERVICE_PASSWORD
    return city
