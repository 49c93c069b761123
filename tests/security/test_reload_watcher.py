"""The docker deployment's route: the API cannot signal a broker in another
container, so CITY_BROKER_RELOAD_COMMAND is `true` and deploy/mosquitto/run.sh
SIGHUPs Mosquitto when the password file changes (polling every second). Run
here with Debian's Mosquitto: a rotation and a retirement still cut the live
session within 5 s and refuse the old credentials."""

import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from telemetry_shared import broker
from telemetry_shared.device_link import DeviceLink
from telemetry_shared.provisioning import Provisioner
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.servers import find_binary, free_port
from tests.conftest import SERVICE_PASSWORD, make_settings, service_users
from tests.security.support import connect, wait_for

RUN_SH = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "run.sh"


@pytest.fixture
def watched_broker(tmp_path):
    """run.sh supervising Mosquitto, with the platform's config in tmp_path."""
    port = free_port()
    passwd, acl, data = tmp_path / "passwd", tmp_path / "acl", tmp_path / "data"
    data.mkdir()
    passwd.write_text(broker.passwd_text(service_users()))
    os.chmod(passwd, 0o600)
    acl.write_text(broker.acl_text())
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(broker.mosquitto_conf(port, data, passwd, acl, run_as=pwd.getpwuid(os.getuid()).pw_name))
    env = dict(os.environ, MOSQUITTO_CONF=str(conf), MOSQUITTO_PASSWD=str(passwd),
               MOSQUITTO_BIN=find_binary("mosquitto"))
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen(["sh", str(RUN_SH)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(lambda: accepts(port, broker.service_user("api", 2), SERVICE_PASSWORD), timeout_s=10)
        yield port, passwd
    finally:
        proc.terminate()  # run.sh forwards TERM to its Mosquitto and waits for it
        proc.wait(15)


def accepts(port: int, user: str, password: str) -> bool:
    try:
        client = connect(port, user, password)
    except OSError:
        return False
    client.stop()
    return client.accepted


def test_rotation_and_retirement_through_the_file_watcher(watched_broker, tmp_path):
    port, passwd = watched_broker
    settings = make_settings(tmp_path, mqtt_port=port, broker_passwd_file=passwd, broker_reload_command="true",
                             device_admin_mqtt_user=broker.service_user("api", 1))
    registry = Registry(tmp_path / "registry.sqlite3")
    link = DeviceLink("127.0.0.1", port, settings.device_admin_mqtt_user, SERVICE_PASSWORD).start()
    provisioner = Provisioner(settings, registry, link.publish_config)
    try:
        first = provisioner.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari")).password
        device = wait_for(lambda: (d := connect(port, "wtr-0001", first)).accepted and d, timeout_s=5)
        started = time.monotonic()
        issued = provisioner.rotate("wtr-0001")
        wait_for(lambda: device.disconnected_at, timeout_s=5)
        assert device.disconnected_at - started < 5 and issued.cut_ms is not None
        assert not accepts(port, "wtr-0001", first)
        device = connect(port, "wtr-0001", issued.password)
        assert device.accepted
        started = time.monotonic()
        retired, cut_ms = provisioner.retire("wtr-0001")
        wait_for(lambda: device.disconnected_at, timeout_s=5)
        assert device.disconnected_at - started < 5 and cut_ms is not None
        time.sleep(1.5)  # the watcher also picks up the removal of the one-time password
        assert not accepts(port, "wtr-0001", issued.password)
        assert "wtr-0001" not in passwd.read_text()
    finally:
        link.stop()
        registry.close()
