"""No secret in any log, page or answer: the city's processes (ingest,
analytics, the API, the rollup job and the CLI) run as they do in production,
against an influxd with authentication on and a Mosquitto with passwords,
with every secret set to a string containing MARKER. Readings (good, out of
bounds, malformed) and alerts flow, notifications go to a webhook whose URL
carries a token (one that answers, one that is down) and to an SMTP relay;
then every log file, every page and API answer, every notification and
influxd's own access log are searched: 0 occurrences. The InfluxDB
credentials travel as HTTP basic auth, never in a request URL."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from telemetry_shared import broker
from telemetry_shared.influx import InfluxQL, InfluxRejected, V1Writer
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.servers import Influxd, Mosquitto, free_port
from tests.conftest import wait_for
from tests.helpers.far_ends import SmtpInbox, WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
MARKER = "SeCrEtMaRkEr"
SECRETS = {name: f"{MARKER}-{name}-7f3a9c" for name in
           ("mqtt", "influx", "influx-admin", "api-token", "grafana-token", "grafana-password", "hook-token",
            "hook-secret", "device", "citizen-contact-key-long-enough")}
DEVICE = "wtr-0001"


def _admin(influxd: Influxd) -> InfluxQL:
    """The first admin user (influxd lets that one in without credentials), a database and a writer."""
    InfluxQL(influxd.url, "city").raw(f"CREATE USER admin WITH PASSWORD '{SECRETS['influx-admin']}' "
                                      "WITH ALL PRIVILEGES", method="POST")
    admin = InfluxQL(influxd.url, "city", user="admin", password=SECRETS["influx-admin"])
    admin.create_database()
    # an admin, as `city rollup retention` creates retention policies
    admin.raw(f"CREATE USER \"city-writer\" WITH PASSWORD '{SECRETS['influx']}' WITH ALL PRIVILEGES", method="POST")
    return admin


def test_influx_credentials_go_as_basic_auth_never_in_the_url(tmp_path, caplog):
    influxd = Influxd(tmp_path / "influxd", auth=True).start()
    try:
        _admin(influxd)
        caplog.set_level("DEBUG")  # httpx and httpcore at their most talkative: every URL is logged
        writer = V1Writer(influxd.url, "city", "city-writer", SECRETS["influx"])
        writer.write(["probe v=1 1000"])
        reader = InfluxQL(influxd.url, "city", user="city-writer", password=SECRETS["influx"])
        assert reader.rows('SELECT "v" FROM "probe"')[0]["v"] == 1
        assert "/write?db=city" in caplog.text and "/query?db=city" in caplog.text  # the URLs were logged ...
        assert MARKER not in caplog.text and "u=city-writer" not in caplog.text  # ... with no credential
        with pytest.raises(InfluxRejected) as refused:
            InfluxQL(influxd.url, "city", user="city-writer", password="wrong").rows('SELECT * FROM "probe"')
        assert refused.value.status == 401
        writer.close()
    finally:
        influxd.stop()


class City:
    """The servers, the far ends of notifications and the city's processes, all on loopback."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.data = tmp_path / "var"
        self.data.mkdir()
        self.procs: list[subprocess.Popen] = []
        self.outputs: dict[str, str] = {}
        self.influxd = Influxd(tmp_path / "influxd", auth=True, http_log=True).start()
        self.admin = _admin(self.influxd)
        service_hash = broker.hash_password(SECRETS["mqtt"])
        users = {broker.service_user(s, i): service_hash for s in broker.SERVICES
                 for i in range(broker.MAX_SERVICE_INSTANCES)}
        device_hash = broker.hash_password(SECRETS["device"])
        self.mosquitto = Mosquitto(tmp_path / "mosquitto", users=users | {DEVICE: device_hash}).start()
        registry = Registry(self.data / "registry.sqlite3")
        registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari"), credential_hash=device_hash)
        registry.close()
        self.hook = WebhookReceiver().up()
        self.inbox = SmtpInbox().start()
        self.api_url = f"http://127.0.0.1:{free_port()}"

    def env(self, service: str) -> dict[str, str]:
        hook = self.hook.url(f"/hook?token={SECRETS['hook-token']}")
        down = f"http://127.0.0.1:{free_port()}/down?token={SECRETS['hook-token']}"
        rules = [{"role": "operator", "min_severity": "info", "webhook": hook, "secret": SECRETS["hook-secret"]},
                 {"role": "engineer", "min_severity": "info", "webhook": down, "secret": SECRETS["hook-secret"]},
                 {"role": "engineer", "min_severity": "info", "email": "water-eng@tanjungpinang.example"}]
        return {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(self.dir)),
            "CITY_ENVIRONMENT": "production", "CITY_DATA_DIR": str(self.data),
            "CITY_MQTT_PORT": str(self.mosquitto.port), "CITY_MQTT_USER": broker.service_user(service, 0),
            "CITY_MQTT_PASSWORD": SECRETS["mqtt"], "CITY_INFLUX_URL": self.influxd.url,
            "CITY_INFLUX_USER": "city-writer", "CITY_INFLUX_PASSWORD": SECRETS["influx"],
            "CITY_API_PORT": self.api_url.rsplit(":", 1)[1], "CITY_API_URL": self.api_url,
            "CITY_API_TOKEN": SECRETS["api-token"], "CITY_GRAFANA_TOKEN": SECRETS["grafana-token"],
            "CITY_GRAFANA_PASSWORD": SECRETS["grafana-password"], "CITY_API_NOTIFY_RULES": json.dumps(rules),
            "CITY_API_CITIZEN_CONTACT_KEY": SECRETS["citizen-contact-key-long-enough"],
            "CITY_API_NOTIFY_RETRY_FIRST_S": "0.2", "CITY_API_NOTIFY_RETRY_MAX_S": "1",
            "CITY_SMTP_HOST": "127.0.0.1", "CITY_SMTP_PORT": str(self.inbox.port),
            "CITY_INGEST_METRICS_PORT": str(free_port()), "CITY_INGEST_STATS_INTERVAL_S": "1",
        }

    def spawn(self, name: str, service: str, *argv: str) -> None:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.procs.append(subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=self.env(service), stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "telemetry_cli.main", *args], cwd=ROOT, env=self.env("ingest"),
                              capture_output=True, text=True, timeout=120)
        self.outputs[" ".join(args)] = done.stdout + done.stderr
        return done.stdout + done.stderr

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.hook.down()
        self.inbox.stop()
        self.mosquitto.stop()
        self.influxd.stop()


def _client(port: int, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _pages(city: City, key: str) -> dict[str, str]:
    """Every page and answer a person or a program can get, with and without a key, good and bad requests."""
    paths = ["/health", "/ready", "/metrics", "/openapi.json", "/docs", "/redoc", "/control-room",
             "/static/control-room.js", "/static/control-room.css", "/static/control-room.html", "/alerts",
             "/alerts/inc-marker", "/alerts?limit=oops", "/readings/latest",
             f"/readings/{DEVICE}/history?metric=flow_lps",
             "/readings/aggregates?kind=water&metric=flow_lps", "/fleet/devices", "/fleet/silent", "/public/city",
             "/public/hospitals/beds", "/keys", "/devices", f"/devices/{DEVICE}", "/nowhere"]
    answers = {}
    with httpx.Client(base_url=city.api_url, timeout=20) as c:
        for path in paths:
            for headers in ({}, {"Authorization": f"Bearer {key}"}, {"Authorization": "Bearer city_bad_key"}):
                response = c.get(path, headers=headers)
                answers[f"GET {path} {sorted(headers)}"] = str(response.headers) + response.text
    return answers


def test_every_secret_set_to_a_marker_appears_in_no_log_page_or_answer(tmp_path):
    city = City(tmp_path)
    try:
        assert "rollups" in city.cli("rollup", "retention")
        city.spawn("ingest", "ingest", "-m", "ingest")
        city.spawn("analytics", "analytics", "-m", "analytics")
        city.spawn("api", "api", "-m", "api")
        wait_for(lambda: httpx.get(city.api_url + "/health", timeout=1).status_code == 200 if _up(city) else False,
                 timeout_s=60)

        device = _client(city.mosquitto.port, DEVICE, SECRETS["device"])
        now = int(time.time() * 1000)
        samples = [(now - 600_000 * (20 - i), {"flow_lps": 12.0 + i % 3, "pressure_bar": 3.1}) for i in range(20)]
        device.publish(contract.telemetry_topic(DEVICE), contract.encode_telemetry(1, samples, "1.0.0"), qos=1)
        device.publish(contract.telemetry_topic(DEVICE), contract.encode_telemetry(2, [(now, {"pressure_bar": 600.0})],
                                                                                   "1.0.0"), qos=1)
        device.publish(contract.telemetry_topic(DEVICE), b"{not json", qos=1).wait_for_publish(5)
        analytics = _client(city.mosquitto.port, broker.service_user("analytics", 1), SECRETS["mqtt"])
        analytics.publish(contract.alert_topic(DEVICE), contract.encode_alert({
            "id": "inc-marker", "device": DEVICE, "kind": "water", "district": "bukit-bestari",
            "metric": "pressure_bar", "rule": "pressure_low", "state": "active", "severity": "critical",
            "score": 0.9, "observed": 1.2, "expected": 3.4, "started_ms": now - 60_000, "updated_ms": now,
            "explanation": "pressure 1.2 bar"}), qos=1).wait_for_publish(5)

        wait_for(lambda: city.admin.rows('SELECT count("flow_lps") FROM "water"'), timeout_s=30)
        wait_for(lambda: city.hook.received and city.inbox.messages, timeout_s=30)
        time.sleep(3)  # the dead webhook is retried (and each failure logged) a few times
        assert json.loads(city.cli("rollup", "run", "--json"))["data"][0]["points"] >= 1
        city.cli("deadletter", "list")
        from api.auth import KeyStore
        from api.db import ApiDb

        key = KeyStore(ApiDb(city.data / "api.sqlite3")).create("marker check", "admin").key
        answers = _pages(city, key)
        device.disconnect()
        analytics.disconnect()
    finally:
        city.stop()

    logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
    logs |= {f"influxd/{p.name}": p.read_text(errors="replace") for p in (tmp_path / "influxd").glob("*.log")}
    logs |= {f"mosquitto/{p.name}": p.read_text(errors="replace") for p in (tmp_path / "mosquitto").glob("*.log")}
    assert "notification" in logs["api.log"] and "failed" in logs["api.log"]  # the dead hook was logged, masked
    # what the receiver is sent (its own URL, with its token, it knows already): headers and body
    hooks = {f"webhook {i}": str(post.headers) + post.body.decode() for i, post in enumerate(city.hook.received)}
    found = {name: text.count(MARKER) for name, text in
             {**logs, **city.outputs, **answers, **hooks,
              **{f"mail {i}": t for i, t in enumerate(city.inbox.messages)}}.items() if MARKER in text}
    assert found == {}, f"secrets found in: {found}"
    access = logs["influxd/influxd.log"]
    requests = re.findall(r'"(?:GET|POST) (/(?:write|query)\S*) HTTP', access)
    assert any(r.startswith("/write") for r in requests) and any(r.startswith("/query") for r in requests)
    assert not [r for r in requests if re.search(r"[?&][up]=", r)], "credentials in an InfluxDB request URL"


def _up(city: City) -> bool:
    for proc in city.procs:
        assert proc.poll() is None, f"a city process exited: {proc.args}: " + "".join(
            p.read_text(errors="replace")[-2000:] for p in city.dir.glob("*.log"))
    try:
        httpx.get(city.api_url + "/health", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def test_a_secret_that_reaches_a_log_line_by_any_path_is_masked(tmp_path):
    from telemetry_shared.logs import SecretFilter, secrets_of
    from tests.conftest import make_settings

    hook = f"https://hooks.example/x?token={SECRETS['hook-token']}"
    settings = make_settings(tmp_path, mqtt_password=SECRETS["mqtt"], influx_password=SECRETS["influx"],
                             api_notify_rules=[{"role": "operator", "webhook": hook, "secret": SECRETS["hook-secret"]}])
    secret_filter = SecretFilter(secrets_of(settings))
    try:
        raise RuntimeError(f"connect failed: {hook}")
    except RuntimeError as exc:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "password %s, secret %s", (SECRETS["influx"],
                                   SECRETS["hook-secret"]), (type(exc), exc, exc.__traceback__))
    assert secret_filter.filter(record)
    line = logging.Formatter().format(record)
    assert MARKER not in line and "password ***, secret ***" in line and "connect failed: ***" in line
