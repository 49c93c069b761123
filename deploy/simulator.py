"""The compose `simulator` service: register a simulated fleet through the API,
then run the fleet simulator against the deployed broker.

    python -m deploy.simulator [--devices N] [--seed S] [-- fleetsim options...]

The devices are registered with the API (CITY_API_URL, CITY_API_TOKEN: a key
with the technician or admin role), exactly as a technician's would be, and
log in to the broker with their own passwords. The fleet file (ids and
passwords, mode 600) is kept in the data volume, so a restarted simulator
reuses its devices instead of registering new ones; a device the API already
knows but whose password was lost gets a new one (rotate).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import fleetsim

from telemetry_cli.device_api import ApiError, DeviceApi
from telemetry_shared.settings import Settings, get_settings

ID_TAG = "sim"
MAX_DEVICES = 5000


def fleet_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "simulator" / "fleet.json"


def register(api: DeviceApi, specs: list[dict]) -> dict[str, str]:
    """device id -> password, registering each device (or rotating one the API already has)."""
    passwords = {}
    for spec in specs:
        fields = {key: spec[key] for key in ("id", "kind", "district", "lat", "lon") if key in spec}
        try:
            issued = api.add(fields | {"note": "simulated (deploy/simulator.py)"})
        except ApiError as exc:
            if exc.status != 409:
                raise
            issued = api.rotate(spec["id"])
        passwords[spec["id"]] = issued["password"]
    return passwords


def broker_entry(settings: Settings) -> dict:
    """Where the devices log in: over TLS when the broker's CA is there (compose: always, as the
    production broker refuses device logins on its plain listener), checked for the name in
    the broker's certificate."""
    entry = {"host": settings.mqtt_host, "port": settings.mqtt_port}
    if settings.device_ca_path.is_file():
        entry |= {"tls_port": settings.mqtt_tls_port, "ca_file": str(settings.device_ca_path),
                  "server_hostname": settings.mqtt_tls_server_name or settings.mqtt_host}
    return entry


def _reusable(path: Path, devices: int, broker: dict) -> bool:
    try:
        fleet = json.loads(path.read_text())
        return len(fleet["devices"]) == devices and fleet["broker"] == broker
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prepare(settings: Settings, devices: int, seed: int, api: DeviceApi) -> tuple[Path, bool]:
    """Write (or keep) the fleet file; returns its path and whether devices were registered now."""
    path = fleet_path(settings)
    broker = broker_entry(settings)
    if _reusable(path, devices, broker):
        return path, False
    scenario = fleetsim.load_scenario(fleetsim.DEFAULT_SCENARIO)
    specs = fleetsim.plan_fleet(scenario, devices, seed, tag=ID_TAG)
    passwords = register(api, specs)
    fleet = {"devices": [spec | {"password": passwords[spec["id"]]} for spec in specs],
             "broker": broker}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fleet))
    os.chmod(tmp, 0o600)  # device passwords
    tmp.replace(path)
    return path, True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m deploy.simulator", description="Register and run a fleet.")
    parser.add_argument("--devices", default=os.environ.get("SIMULATOR_DEVICES") or "200",
                        help="how many devices (default SIMULATOR_DEVICES, else 200)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(own)
    if not args.devices.isdigit() or not 1 <= int(args.devices) <= MAX_DEVICES:
        parser.error(f"--devices must be a number from 1 to {MAX_DEVICES}, not {args.devices[:20]!r}")
    args.devices = int(args.devices)
    settings = get_settings()
    try:
        api = DeviceApi.from_settings(settings)
        try:
            path, registered = prepare(settings, args.devices, args.seed, api)
        finally:
            api.close()
    except (ApiError, OSError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    print(f"simulator: {args.devices} devices {'registered' if registered else 'reused'} ({path})",
          file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "fleetsim", "--fleet", str(path), "--seed", str(args.seed), *rest]
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
