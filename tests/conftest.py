"""Fixtures that start real servers: Mosquitto and influxd on free loopback
ports with their data in temp dirs. A missing binary is a failure that says
what to install, never a silent skip."""

import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from telemetry_shared import broker
from telemetry_shared.influx import InfluxQL
from telemetry_shared.local_ca import TlsFiles, ensure_local_ca
from telemetry_shared.registry import Registry
from telemetry_shared.servers import Influxd, MissingBinary, Mosquitto, find_binary
from telemetry_shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SERVICE_PASSWORD = "test-service-secret"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's workers start with COLUMNS=80 and LINES=24 in their environment. rich fixes a console's
    # width from COLUMNS when the console is made (the CLI's are made at import), so a test's own COLUMNS
    # would no longer widen them: a worker sees the environment a single process sees.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.pop("COLUMNS", None)
        os.environ.pop("LINES", None)


def _require(name: str) -> str:
    try:
        return find_binary(name)
    except MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(autouse=True)
def _stop_leftover_mqtt_recorders() -> Iterator[None]:
    """A test's MQTT recorders (tests/security/support.py) stop with it: one left running reconnects into
    later tests, and met a test's fake socket there (an exception in its thread)."""
    yield
    support = sys.modules.get("tests.security.support")  # not imported: no recorder ever started
    if support is not None:
        for recorder in list(support.Recorder.running):
            recorder.stop()


@pytest.fixture(scope="session")
def micropython_bin() -> str:
    return _require("micropython")


def service_users() -> dict[str, str]:
    """Every service account, all with the test service password."""
    hashed = broker.hash_password(SERVICE_PASSWORD)
    return {broker.service_user(s, i): hashed for s in broker.SERVICES for i in range(broker.MAX_SERVICE_INSTANCES)}


@pytest.fixture
def make_mosquitto(tmp_path_factory) -> Iterator[Callable[..., Mosquitto]]:
    """Start a Mosquitto of our own (for tests that stop or restart it)."""
    _require("mosquitto")
    started: list[Mosquitto] = []

    def make(**kwargs) -> Mosquitto:
        users = service_users() | kwargs.pop("users", {})
        server = Mosquitto(tmp_path_factory.mktemp("mosquitto"), users=users, **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def mosquitto(make_mosquitto) -> Mosquitto:
    return make_mosquitto()


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory) -> TlsFiles:
    """A local CA and a server certificate for localhost and 127.0.0.1 (EC P-256), made with openssl."""
    _require("openssl")
    return ensure_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_mosquitto(make_mosquitto, local_ca) -> Mosquitto:
    """Mosquitto with the plain listener (services) and a TLS listener (tls_port) for devices."""
    return make_mosquitto(tls=(local_ca.server_crt, local_ca.server_key))


@pytest.fixture
def make_influxd(tmp_path_factory) -> Iterator[Callable[[], Influxd]]:
    _require("influxd")
    started: list[Influxd] = []

    def make() -> Influxd:
        server = Influxd(tmp_path_factory.mktemp("influxd")).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_influxd(tmp_path_factory) -> Iterator[Influxd]:
    """One influxd for the tests that do not stop it; each test gets its own database."""
    _require("influxd")
    server = Influxd(tmp_path_factory.mktemp("influxd-shared")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(shared_influxd: Influxd) -> Iterator[InfluxQL]:
    """A fresh database on the shared influxd, dropped afterwards."""
    name = f"test_{secrets.token_hex(4)}"
    client = InfluxQL(shared_influxd.url, name)
    client.create_database()
    yield client
    client.raw(f'DROP DATABASE "{name}"', method="POST")
    client.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "registry.sqlite3")
    yield reg
    reg.close()


def make_settings(tmp_path: Path, mosquitto: Mosquitto | None = None, influx_url: str = "", influx_db: str = "city",
                  **overrides) -> Settings:
    """Settings pointing at the test servers (instead of environment variables)."""
    values = {
        "environment": "test",
        "data_dir": tmp_path / "var",
        "mqtt_user": broker.service_user("ingest", 0),
        "mqtt_password": SERVICE_PASSWORD,
        "influx_db": influx_db,
    }
    if mosquitto:
        values["mqtt_port"] = mosquitto.port
    if influx_url:
        values["influx_url"] = influx_url
    return Settings(**(values | overrides))


@pytest.fixture
def edge_dir(tmp_path: Path) -> Path:
    """A copy of the firmware as it would sit on a board's flash."""
    target = tmp_path / "flash"
    shutil.copytree(ROOT / "edge", target / "edge", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def wait_for(predicate, timeout_s: float = 10, interval_s: float = 0.05):
    """Poll until predicate() is truthy and return it; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")
