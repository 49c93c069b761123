"""Device provisioning: credentials, registry entry, the broker's entry for the
device, and cutting a retired or rotated device's live session.

The broker's device entries live in Mosquitto's dynamic-security plugin. A
change is a control command sent as the device-admin account (svc-api-N) over
MQTT (`$CONTROL/dynamic-security/v1`): create the device's client and role, set
its password, delete it. The plugin applies it at once and disconnects a
client whose password changed or that it deleted (about 2 ms on a small
broker). The plugin reads its file only when Mosquitto starts, so that file is
rebuilt from the registry before every start (`broker_entries`, used by
deploy/broker_files.py --init and `city up`): a restored registry is a working
broker. After a change we also *take over the device's client id* with a
credential only we hold (the new password on a rotation, a one-time password
on a retirement): it proves the change is live, and lets us say, as the
device, what is true now (a rotated device is "offline"; a retired one has no
retained status at all).
"""

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from edge import contract
from edge.mqtt import MQTTClient, MQTTException
from telemetry_shared import broker
from telemetry_shared.device_link import DeviceLink, LinkError, admin_link
from telemetry_shared.registry import Device, DeviceExists, DeviceNew, DeviceNotFound, Registry
from telemetry_shared.settings import Settings

log = logging.getLogger(__name__)
CUT_DEADLINE_S = 4.0  # the takeover must land well inside the 5 s promise
DEFAULT_INTERVAL_MS = 10000
KIND_PREFIX = {"water": "wtr", "power": "pwr", "building": "bld", "traffic": "trf"}

CONFIG_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_configs (
    device_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
"""


class ProvisioningError(Exception):
    """Something a technician can act on; `status` says what kind (HTTP-like)."""

    status = 400


class InvalidRequest(ProvisioningError):
    status = 422


class NotFound(ProvisioningError):
    status = 404


class Conflict(ProvisioningError):
    status = 409


class BrokerUnavailable(ProvisioningError):
    status = 503


@dataclass
class Issued:
    """A device and the password it was just given: shown once, stored nowhere."""

    device: Device
    password: str
    cut_ms: float | None = None  # how long cutting the old session took (rotation)


# ---------------------------------------------------------------- broker entries


def broker_entries(registry: Registry) -> dict[str, str]:
    """Every device the broker must admit (not retired, with a credential): id -> hash.
    What the broker's device entries are rebuilt from at every start."""
    hashes: dict[str, str] = {}
    offset = 0
    while True:
        page, total = registry.list(limit=1000, offset=offset)
        for device in page:
            if device.state != "retired" and device.credential_hash:
                hashes[device.id] = device.credential_hash
        offset += len(page)
        if not page or offset >= total:
            return hashes


def check_responses(commands: list[dict], responses: list[dict]) -> None:
    """Raise BrokerUnavailable for a refused command; a delete of what is not there is fine."""
    for command, response in zip(commands, responses, strict=True):
        error = str(response.get("error", ""))
        if error and not (command["command"].startswith("delete") and error.lower().endswith("not found")):
            raise BrokerUnavailable(f"the broker refused {command['command']}: {error}")


def cut_session(host: str, port: int, device_id: str, password: str, deadline_s: float = CUT_DEADLINE_S,
                clear_status: bool = False) -> float:
    """Take over `device_id`'s client id with `password`; the broker drops any old session.

    Retries while the broker has not yet applied the new password. Leaves the
    device's retained status "offline", or none at all when `clear_status`
    (a retired device). Returns the milliseconds the takeover took; raises
    BrokerUnavailable when it did not work in time.
    """
    start = time.monotonic()
    last_error = ""
    while time.monotonic() - start < deadline_s:
        client = MQTTClient(device_id, host, port, device_id, password, keepalive_s=10, timeout_s=2)
        try:
            client.connect(clean_session=True)
            cut_ms = (time.monotonic() - start) * 1000
            # A session the plugin drops loses its last will (Mosquitto 2.0.11 discards it on an
            # administrative disconnect), which would leave "online" retained; as the device, we
            # say what is true now. A retired device's status is cleared (an empty retained
            # message), so nothing stale is handed to every new subscriber for ever.
            status = b"" if clear_status else contract.encode_status("offline")
            client.publish(contract.status_topic(device_id), status, True, 1)
            client.disconnect()  # clean: no last will of ours, nothing left behind
            return cut_ms
        except (MQTTException, OSError) as exc:
            last_error = str(exc)
            time.sleep(0.05)
    raise BrokerUnavailable(f"could not cut {device_id}'s session within {deadline_s}s: {last_error}")


# ---------------------------------------------------------------- provisioning


def _one_at_a_time(method):
    """Serialise a Provisioner's changes (registry, password file, reload) within the process."""

    @wraps(method)
    def locked(self, *args, **kwargs):
        with self.changing:
            return method(self, *args, **kwargs)

    return locked


class Provisioner:
    """Adds, rotates and retires devices: registry, the broker's entry, live sessions.

    `publish_config(device_id, raw)` publishes a retained config and
    `control(commands)` sends dynamic-security commands (see DeviceLink); both
    are injected so the API shares one broker connection. Without `control`, the
    provisioner opens its own connection as `device_admin_mqtt_user` when needed.
    """

    def __init__(self, settings: Settings, registry: Registry,
                 publish_config: Callable[[str, bytes], None] | None = None,
                 control: Callable[[list[dict]], list[dict]] | None = None):
        self.settings = settings
        self.registry = registry
        self.publish_config = publish_config
        self.control = control
        self._link: DeviceLink | None = None
        self.changing = threading.RLock()  # one change at a time: two rotations must not cross
        with registry.lock:
            registry.db.executescript(CONFIG_SCHEMA)

    def close(self) -> None:
        if self._link is not None:
            self._link.stop()
            self._link = None

    def get(self, device_id: str) -> Device:
        check_device_id(device_id)
        try:
            return self.registry.get(device_id)
        except DeviceNotFound as exc:
            raise NotFound(f"no device {device_id!r}") from exc

    def config(self, device_id: str) -> dict | None:
        with self.registry.lock:
            row = self.registry.db.execute("SELECT config FROM device_configs WHERE device_id = ?",
                                           (device_id,)).fetchone()
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------ changes

    @_one_at_a_time
    def add(self, new: DeviceNew, interval_ms: int = DEFAULT_INTERVAL_MS, batch_size: int = 1) -> Issued:
        """Register a device, give it a password and its first (retained) config.

        All or nothing: if the broker refuses or cannot be reached, or the config
        is not published, the device is removed again, so no password is ever lost.
        """
        raw_config = contract.encode_config(interval_ms, batch_size)  # refuse a bad config before anything changes
        password = broker.new_secret()
        try:
            device = self.registry.add(new, credential_hash=broker.hash_password(password))
        except DeviceExists as exc:
            raise Conflict(str(exc)) from exc
        try:
            self._command(broker.add_device_commands(device.id, password))
            self._store_config(device.id, raw_config)
        except Exception:
            self.registry.delete(device.id)
            self._forget_in_broker(device.id)
            raise
        return Issued(device, password)

    def new_id(self, kind: str) -> str:
        """A fresh id like wtr-3f9a1c, unique in the registry."""
        prefix = KIND_PREFIX.get(kind, kind[:3])
        for _ in range(20):
            candidate = f"{prefix}-{secrets.token_hex(3)}"
            try:
                self.registry.get(candidate)
            except DeviceNotFound:
                return candidate
        raise Conflict("could not find a free device id")  # 16M ids per kind: practically never

    @_one_at_a_time
    def rotate(self, device_id: str) -> Issued:
        """New credentials; the old password is refused and its live session cut at once.

        If the broker cannot be reached the old credentials stay (registry and
        broker). If the change worked but the cut cannot be confirmed, the new
        password is still returned (it is the only copy) with cut_ms None.
        """
        device = self._changeable(device_id, "rotate")
        password = broker.new_secret()
        self.registry.update(device.id, credential_hash=broker.hash_password(password))
        try:
            self._set_password(device.id, password)
        except BrokerUnavailable:
            self.registry.update(device.id, credential_hash=device.credential_hash)
            raise
        return Issued(self.registry.get(device.id), password, self._cut(device.id, password))

    @_one_at_a_time
    def retire(self, device_id: str) -> tuple[Device, float | None]:
        """Refuse the device from now on, cut its live session and clear its retained
        status. Returns the device and the cut time (None when the cut could not be confirmed).

        The registry says retired before the takeover, so ingest takes what the takeover
        publishes (the old session's last will, the cleared status) as a retired device's,
        not as readings or dead letters.
        """
        device = self._changeable(device_id, "retire")
        self.registry.update(device.id, state="retired", credential_hash="")
        one_time = broker.new_secret()  # the broker's only password for the device until it is deleted
        try:
            self._set_password(device.id, one_time)
        except BrokerUnavailable:
            self.registry.update(device.id, state=device.state, credential_hash=device.credential_hash)
            raise
        cut_ms = self._cut(device.id, one_time, clear_status=True)
        try:
            self._command(broker.remove_device_commands(device.id))
        except BrokerUnavailable as exc:
            # Harmless: its broker password is one nobody holds, and the entry is not rebuilt at the next start.
            log.warning("retired %s, but its broker entry stays until the broker restarts: %s", device.id, exc)
        return self.registry.get(device.id), cut_ms

    @_one_at_a_time
    def set_config(self, device_id: str, interval_ms: int, batch_size: int = 1,
                   thresholds: dict[str, list[float]] | None = None) -> dict:
        """Validate and publish a retained config that the device applies; returns it."""
        device = self._changeable(device_id, "configure")
        for metric in thresholds or {}:
            if metric not in contract.KINDS[device.kind]:
                raise InvalidRequest(f"{metric!r} is not a {device.kind} metric; one of "
                                     f"{', '.join(contract.KINDS[device.kind])}")
        try:
            raw = contract.encode_config(interval_ms, batch_size, thresholds)
        except contract.ContractError as exc:
            raise InvalidRequest(f"config refused: {exc}") from exc
        self._store_config(device.id, raw)
        return json.loads(raw)

    # ------------------------------------------------------------ helpers

    def _command(self, commands: list[dict]) -> None:
        """Send dynamic-security commands; BrokerUnavailable when the broker refused or cannot be reached."""
        try:
            responses = (self.control or self._own_link().control)(commands)
        except LinkError as exc:
            raise BrokerUnavailable(f"the broker cannot be reached for device admin: {exc}") from exc
        check_responses(commands, responses)

    def _own_link(self) -> DeviceLink:
        if self._link is None:
            self._link = admin_link(self.settings)
        return self._link

    def _set_password(self, device_id: str, password: str) -> None:
        """Set the device's broker password (the plugin cuts its session); a device the broker
        lost (an old broker file) is created again."""
        command = broker.password_command(device_id, password)
        try:
            responses = (self.control or self._own_link().control)([command])
        except LinkError as exc:
            raise BrokerUnavailable(f"the broker cannot be reached for device admin: {exc}") from exc
        if str(responses[0].get("error", "")).lower().endswith("not found"):
            self._command(broker.add_device_commands(device_id, password))
        else:
            check_responses([command], responses)

    def _cut(self, device_id: str, password: str, clear_status: bool = False) -> float | None:
        try:
            return cut_session(self.settings.mqtt_host, self.settings.mqtt_port, device_id, password,
                               clear_status=clear_status)
        except BrokerUnavailable:
            return None

    def _forget_in_broker(self, device_id: str) -> None:
        """Best effort after a failed add: the device must not stay in the broker."""
        try:
            self._command(broker.remove_device_commands(device_id))
        except BrokerUnavailable as exc:
            log.warning("could not remove %s from the broker after a failed add: %s", device_id, exc)

    def _changeable(self, device_id: str, action: str) -> Device:
        device = self.get(device_id)
        if device.state == "retired":
            raise Conflict(f"device {device_id} is retired and cannot {action}; add a new device instead")
        return device

    def _store_config(self, device_id: str, raw: bytes) -> None:
        if self.publish_config is not None:
            self.publish_config(device_id, raw)
        with self.registry.lock:
            self.registry.db.execute(
                "INSERT INTO device_configs VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET "
                "config = excluded.config, updated_ms = excluded.updated_ms",
                (device_id, raw.decode(), int(time.time() * 1000)))


def check_device_id(device_id: str) -> None:
    if not contract.valid_device_id(device_id):
        raise InvalidRequest(f"bad device id {device_id[:40]!r}: 3 to 32 of a-z, 0-9 and '-', not starting with '-'")
