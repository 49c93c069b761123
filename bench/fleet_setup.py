"""What the city-scale benches share: the bench fleet (planned by the simulator, one password for all, split
between processes), the run options of a duty-cycled or persistent fleet, and /proc readings of a process.

Used by bench_fleet_scale.py (the simulator against Mosquitto alone) and bench_city_scale.py (the whole city).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "firmware-sim")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import fleetsim  # noqa: E402
from fleetsim.runner import RunOptions  # noqa: E402

from telemetry_shared import broker  # noqa: E402

INTERVAL_S = 60.0  # one reading a minute per device


def plan_bench_fleet(devices: int, seed: int = 1) -> tuple[dict, list[dict], str, str]:
    """(scenario, device specs, the shared password, its hash). The bench devices share one password (hashing
    100,000 PBKDF2 secrets takes a minute here); each still logs in under its own username, and the broker
    checks the password on every connect."""
    scenario = fleetsim.load_scenario()
    specs = fleetsim.plan_fleet(scenario, devices, seed)
    password = broker.new_secret()
    return scenario, specs, password, broker.hash_password(password)


def split_fleet(specs: list[dict], password: str, port: int, processes: int) -> list[dict]:
    """The fleet files of `processes` fleet processes, each with every processes-th device."""
    return [{"devices": [s | {"password": password} for s in specs[i::processes]],
             "broker": {"host": "127.0.0.1", "port": port}} for i in range(processes)]


def run_options(duty_cycle: int, duration_s: float | None = None) -> RunOptions:
    """duty_cycle: 0 = persistent connections, K = wake every K readings (K readings a message). Devices start
    spread over the first minute, each at its own phase of the K."""
    return RunOptions(seed=1, interval_s=INTERVAL_S, connect_spread_s=INTERVAL_S, verbose=False,
                      duty_cycle=duty_cycle > 0, readings_per_wake=max(duty_cycle, 1), duration_s=duration_s)


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory in MB (field VmHWM: the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
