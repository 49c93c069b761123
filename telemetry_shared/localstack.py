"""The city that `city up` runs on this machine, as other commands find it.

`city up` writes `<data_dir>/city.json` (ports, the broker's pid, file paths);
`LocalStack.load` reads it so that `city simulate` and friends can add devices
to the running city: a registry entry, a broker password, and a broker reload.
"""

import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from telemetry_shared import broker
from telemetry_shared.registry import DeviceExists, DeviceNew, Registry
from telemetry_shared.settings import Settings

STATE_FILE = "city.json"


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
    def passwd_file(self) -> Path:
        return self.root / "mosquitto" / "passwd"

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
        """Register devices (id, kind, district, lat, lon) and give each a broker password.

        Returns {device id: password}. Devices that already exist get a new password.
        """
        registry = Registry(self.root / "registry.sqlite3")
        secrets: dict[str, str] = {}
        hashes: dict[str, str] = {}
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
                hashes[new.id] = hashed
        finally:
            registry.close()
        self._write_broker_users(hashes)
        return secrets

    def _write_broker_users(self, hashes: dict[str, str]) -> None:
        from telemetry_shared.provisioning import passwd_lock, read_passwd, write_passwd

        with passwd_lock(self.passwd_file):  # the API's provisioning rewrites this file too
            write_passwd(self.passwd_file, read_passwd(self.passwd_file) | hashes)
            os.kill(self.mosquitto_pid, signal.SIGHUP)  # Mosquitto re-reads its password file on SIGHUP
