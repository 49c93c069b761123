"""Device provisioning: credentials, registry entry, broker password file, reload,
and cutting a retired or rotated device's live session.

How a live session is cut, measured on Debian's Mosquitto 2.0.11 (tests/security,
bench/provisioning_cut.py): on SIGHUP the broker re-reads the password file and
re-checks every connected client (`mosquitto_security_apply_default`), dropping
those whose credentials no longer match within about 100 ms; clients whose
credentials did not change stay connected. We do not rely on that alone: an
auth plugin or another broker may not re-check. After the reload we *take over
the device's client id*: with `use_username_as_clientid true` the client id is
the device id, and a new connection with that id makes any broker drop the old
one. We connect with a credential only we hold (the new password on a
rotation, a one-time password on a retirement, removed right after), so this
works with the plain password file here, on `city up` and in docker, with no
plugin; its success also proves the broker has re-read the file.

The ACL is pattern-based (`pattern write city/v1/dev/%u/...`), so adding a
device changes the password file only; the ACL file never changes.
"""

import fcntl
import json
import os
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from edge import contract
from edge.mqtt import MQTTClient, MQTTException
from telemetry_shared import broker
from telemetry_shared.registry import SERVICE_PREFIX, Device, DeviceExists, DeviceNew, DeviceNotFound, Registry
from telemetry_shared.settings import Settings

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


# ---------------------------------------------------------------- broker files


def read_passwd(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            user, sep, hashed = line.partition(":")
            if sep and user:
                users[user] = hashed
    return users


def write_passwd(path: Path, users: dict[str, str]) -> None:
    """Atomically replace the password file, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(broker.passwd_text(users))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


@contextmanager
def passwd_lock(path: Path) -> Iterator[None]:
    """Serialise rewrites of the password file between processes (API, `city up`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def reload_broker(settings: Settings) -> None:
    """Make Mosquitto re-read its password file (SIGHUP), by the configured route."""
    if settings.broker_reload_command:
        done = subprocess.run(shlex.split(settings.broker_reload_command), capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise BrokerUnavailable(f"broker reload command failed ({done.returncode}): {done.stderr.strip()[:200]}")
        return
    pid = _broker_pid(settings)
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise BrokerUnavailable(f"cannot signal the broker (pid {pid}): {exc}") from exc


def _broker_pid(settings: Settings) -> int:
    try:
        if settings.broker_pid_file:
            return int(Path(settings.broker_pid_file).read_text().strip())
        return int(json.loads((Path(settings.data_dir) / "city.json").read_text())["mosquitto_pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BrokerUnavailable(
            "cannot find the broker to reload: set CITY_BROKER_PID_FILE or CITY_BROKER_RELOAD_COMMAND "
            f"(or run `city up` with CITY_DATA_DIR={settings.data_dir})") from exc


def cut_session(host: str, port: int, device_id: str, password: str, deadline_s: float = CUT_DEADLINE_S) -> float:
    """Take over `device_id`'s client id with `password`; the broker drops the old session.

    Retries while the broker has not yet re-read its password file. Leaves the
    device's retained status "offline". Returns the milliseconds the takeover
    took; raises BrokerUnavailable when it did not work in time.
    """
    start = time.monotonic()
    last_error = ""
    while time.monotonic() - start < deadline_s:
        client = MQTTClient(device_id, host, port, device_id, password, keepalive_s=10, timeout_s=2)
        try:
            client.connect(clean_session=True)
            cut_ms = (time.monotonic() - start) * 1000
            # A session that the reload's re-check drops loses its last will (Mosquitto 2.0.11
            # discards it on an auth failure; a takeover alone would publish it), which would
            # leave "online" retained; as the device, we say what is true now.
            client.publish(contract.status_topic(device_id), contract.encode_status("offline"), True, 1)
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
    """Adds, rotates and retires devices: registry, broker password file, live sessions.

    `publish_config(device_id, raw)` publishes a retained config (see DeviceLink);
    it is injected so the API shares one broker connection for it.
    """

    def __init__(self, settings: Settings, registry: Registry,
                 publish_config: Callable[[str, bytes], None] | None = None):
        self.settings = settings
        self.registry = registry
        self.publish_config = publish_config
        self.changing = threading.RLock()  # one change at a time: two rotations must not cross
        with registry.lock:
            registry.db.executescript(CONFIG_SCHEMA)

    # ------------------------------------------------------------ queries

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

        All or nothing: if the broker cannot be reloaded or the config not
        published, the device is removed again, so no password is ever lost.
        """
        raw_config = contract.encode_config(interval_ms, batch_size)  # refuse a bad config before anything changes
        password = broker.new_secret()
        try:
            device = self.registry.add(new, credential_hash=broker.hash_password(password))
        except DeviceExists as exc:
            raise Conflict(str(exc)) from exc
        try:
            self.sync_broker()
            self._store_config(device.id, raw_config)
        except Exception:
            self.registry.delete(device.id)
            self._undo_broker()
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

        If the broker cannot be reloaded the old credentials stay (registry and
        file). If the reload worked but the cut cannot be confirmed, the new
        password is still returned (it is the only copy) with cut_ms None.
        """
        device = self._changeable(device_id, "rotate")
        password = broker.new_secret()
        self.registry.update(device.id, credential_hash=broker.hash_password(password))
        try:
            self.sync_broker()
        except BrokerUnavailable:
            self.registry.update(device.id, credential_hash=device.credential_hash)
            self.sync_broker(reload=False)
            raise
        return Issued(self.registry.get(device.id), password, self._cut(device.id, password))

    @_one_at_a_time
    def retire(self, device_id: str) -> tuple[Device, float | None]:
        """Refuse the device from now on and cut its live session. Returns the device and the
        cut time (None when the cut could not be confirmed)."""
        device = self._changeable(device_id, "retire")
        self.registry.update(device.id, state="retired", credential_hash="")
        one_time = broker.new_secret()  # lives in the password file for the takeover only
        try:
            self.sync_broker(extra={device.id: broker.hash_password(one_time)})
        except BrokerUnavailable:
            self.registry.update(device.id, state=device.state, credential_hash=device.credential_hash)
            self.sync_broker(reload=False)
            raise
        try:
            cut_ms = self._cut(device.id, one_time)
        finally:
            self.sync_broker()
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

    def sync_broker(self, extra: dict[str, str] | None = None, reload: bool = True) -> None:
        """Rewrite the password file from the registry and reload the broker.

        Service accounts (svc-*) in the file are kept as they are; device entries
        come from the registry: every device that is not retired, with its hash.
        """
        path = self.settings.passwd_file
        with passwd_lock(path):
            users = {user: hashed for user, hashed in read_passwd(path).items() if user.startswith(SERVICE_PREFIX)}
            users |= self._device_hashes() | (extra or {})
            write_passwd(path, users)
            if reload:
                reload_broker(self.settings)

    # ------------------------------------------------------------ helpers

    def _device_hashes(self) -> dict[str, str]:
        hashes: dict[str, str] = {}
        offset = 0
        while True:
            page, total = self.registry.list(limit=1000, offset=offset)
            for device in page:
                if device.state != "retired" and device.credential_hash:
                    hashes[device.id] = device.credential_hash
            offset += len(page)
            if not page or offset >= total:
                return hashes

    def _cut(self, device_id: str, password: str) -> float | None:
        try:
            return cut_session(self.settings.mqtt_host, self.settings.mqtt_port, device_id, password)
        except BrokerUnavailable:
            return None

    def _undo_broker(self) -> None:
        """Put the password file back in line with the registry after a failed change."""
        try:
            self.sync_broker()
        except BrokerUnavailable:
            self.sync_broker(reload=False)

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
