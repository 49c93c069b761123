"""The city that `city up` runs on this machine, as other commands find it.

`city up` writes `<data_dir>/city.json` (ports, the broker's pid, file paths);
`LocalStack.load` reads it so that `city simulate` and friends can add devices
to the running city: a registry entry, and the device's entry in the broker
(dynamic-security commands sent as LOCAL_ADMIN).
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from telemetry_shared import broker
from telemetry_shared.registry import DeviceExists, DeviceNew, Registry
from telemetry_shared.settings import Settings

STATE_FILE = "city.json"
# The local city's own admin connection: the last api instance, so it never takes the
# client id of the API's alert subscriber (svc-api-0) or device link (svc-api-1).
LOCAL_ADMIN = broker.service_user("api", broker.MAX_SERVICE_INSTANCES - 1)
DEVICES_PER_MESSAGE = 25  # four commands a device: well inside the broker's message size limit


def register_devices(registry_path: Path, specs: list[dict]) -> dict[str, str]:
    """Register devices (id, kind, district, lat, lon) with a new password each, in the registry
    only. Returns {device id: password}; devices that already exist get a new password."""
    registry = Registry(registry_path)
    secrets: dict[str, str] = {}
    try:
        for spec in specs:
            new = DeviceNew(**{k: spec[k] for k in ("id", "kind", "district", "lat", "lon") if k in spec})
            secret = broker.new_secret()
            hashed = broker.hash_password(secret)
            try:
                registry.add(new, credential_hash=hashed)
            except DeviceExists:
                registry.update(new.id, credential_hash=hashed)
            secrets[new.id] = secret
    finally:
        registry.close()
    return secrets


class StackNotRunning(RuntimeError):
    pass


@dataclass
class LocalStack:
    data_dir: str
    mqtt_port: int
    influx_port: int
    api_port: int
    mosquitto_pid: int
    service_password: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def influx_url(self) -> str:
        return f"http://127.0.0.1:{self.influx_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def save(self) -> None:
        path = self.root / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, settings: Settings) -> "LocalStack":
        path = Path(settings.data_dir) / STATE_FILE
        try:
            stack = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise StackNotRunning(f"no city is running from {settings.data_dir} (start one with `city up`)") from exc
        try:
            os.kill(stack.mosquitto_pid, 0)
        except OSError as exc:
            raise StackNotRunning(f"the city in {settings.data_dir} has stopped (start it with `city up`)") from exc
        return stack

    def service_env(self, service: str, instance: int = 0) -> dict[str, str]:
        """CITY_* variables for one service process of this city."""
        return {
            "CITY_DATA_DIR": str(self.root),
            "CITY_MQTT_PORT": str(self.mqtt_port),
            "CITY_MQTT_USER": broker.service_user(service, instance),
            "CITY_MQTT_PASSWORD": self.service_password,
            "CITY_INFLUX_URL": self.influx_url,
            "CITY_API_PORT": str(self.api_port),
            "CITY_INGEST_WORKER_ID": f"ingest-{instance}",
        }

    def add_devices(self, specs: list[dict]) -> dict[str, str]:
        """Register devices and give each its broker entry in the running broker.

        Returns {device id: password}. Devices that already exist get a new password.
        The plugin saves its whole file after every command, so this takes about
        25 ms a device once a thousand are registered: `city up` registers its own
        fleet before the broker starts instead.
        """
        from telemetry_shared.device_link import DeviceLink
        from telemetry_shared.provisioning import check_responses

        secrets = register_devices(self.root / "registry.sqlite3", specs)
        link = DeviceLink("127.0.0.1", self.mqtt_port, LOCAL_ADMIN, self.service_password).start()
        try:
            ids = list(secrets)
            for start in range(0, len(ids), DEVICES_PER_MESSAGE):
                commands = [command for device_id in ids[start:start + DEVICES_PER_MESSAGE]
                            for command in broker.add_device_commands(device_id, secrets[device_id])]
                check_responses(commands, link.control(commands, timeout_s=60))
        finally:
            link.stop()
        return secrets
