"""The fleet file: which devices to run and the broker they talk to.

    {"devices": [{"id": "wtr-no-0001", "kind": "water", "district": "north",
                  "lat": 0.92, "lon": 104.45, "password": "..."}],
     "broker": {"host": "127.0.0.1", "port": 1883},
     "networks_from_ms": 1767114000000}

networks_from_ms (optional): the scenario's DMA and feeder meters among the devices read the network
models from this time (fleetsim/networks.py); without it they are ordinary devices.

Written by `city up` and `city simulate`; checked here with errors that say
which device and which key is wrong.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import contract

MAX_FLEET_BYTES = 64 * 1024 * 1024
MAX_PASSWORD_LEN = 256


class FleetError(ValueError):
    pass


@dataclass
class Fleet:
    devices: list[dict[str, Any]]
    host: str
    port: int
    tls_port: int | None = None  # with ca_file: devices talk TLS here, trusting only that CA
    ca_file: str | None = None
    server_hostname: str | None = None  # the name checked in the broker's certificate; None: host
    networks_from_ms: int | None = None  # the DMA and feeder models' start (fleetsim/networks.py)


def load_fleet(path: Path | str) -> Fleet:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FLEET_BYTES + 1)  # bounded: a device file or a huge file cannot exhaust memory
        if len(raw) > MAX_FLEET_BYTES:
            raise FleetError(f"fleet file {path} has more than {MAX_FLEET_BYTES} bytes")
        data = json.loads(raw)
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise FleetError(f"fleet file {path} is not valid JSON: {exc}") from exc
    return parse_fleet(data)


def parse_fleet(data: Any) -> Fleet:
    if not isinstance(data, dict):
        raise FleetError("fleet: must be an object with devices and broker")
    broker = data.get("broker")
    if not isinstance(broker, dict):
        raise FleetError("fleet.broker: must be an object {host, port}")
    host, port = broker.get("host", "127.0.0.1"), broker.get("port")
    if not isinstance(host, str) or not 0 < len(host) <= 253:
        raise FleetError("fleet.broker.host: must be a host name")
    if type(port) is not int or not 0 < port < 65536:
        raise FleetError(f"fleet.broker.port: must be 1..65535, not {port!r}")
    tls_port, ca_file = broker.get("tls_port"), broker.get("ca_file")
    if tls_port is not None and (type(tls_port) is not int or not 0 < tls_port < 65536):
        raise FleetError(f"fleet.broker.tls_port: must be 1..65535, not {tls_port!r}")
    if (tls_port is None) != (ca_file is None) or (ca_file is not None and not isinstance(ca_file, str)):
        raise FleetError("fleet.broker: tls_port and ca_file (the CA's certificate file) go together")
    server_hostname = broker.get("server_hostname")
    if server_hostname is not None and (not isinstance(server_hostname, str) or not 0 < len(server_hostname) <= 253
                                        or tls_port is None):
        raise FleetError("fleet.broker.server_hostname: a host name, with tls_port and ca_file")
    networks_from_ms = data.get("networks_from_ms")
    if networks_from_ms is not None and (type(networks_from_ms) is not int or not 0 < networks_from_ms < 2**53):
        raise FleetError("fleet.networks_from_ms: must be a time in Unix ms")
    devices = data.get("devices")
    if not isinstance(devices, list) or not devices:
        raise FleetError("fleet.devices: must be a non-empty list")
    seen = set()
    for i, device in enumerate(devices):
        _check_device(i, device)
        if device["id"] in seen:
            raise FleetError(f"fleet.devices[{i}].id: {device['id']!r} appears twice")
        seen.add(device["id"])
    return Fleet(devices, host, port, tls_port, ca_file, server_hostname, networks_from_ms)


def _check_device(i: int, device: Any) -> None:
    where = f"fleet.devices[{i}]"
    if not isinstance(device, dict):
        raise FleetError(f"{where}: must be an object")
    if not contract.valid_device_id(device.get("id")):
        raise FleetError(f"{where}.id: {str(device.get('id'))[:40]!r} is not a valid device id")
    if device.get("kind") not in contract.KINDS:
        raise FleetError(f"{where}.kind: must be one of {', '.join(contract.KINDS)}")
    if not isinstance(device.get("district"), str):
        raise FleetError(f"{where}.district: must be a district slug")
    password = device.get("password")
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD_LEN:
        raise FleetError(f"{where}.password: must be the device's broker password")
