"""How fast a rotated or retired device is cut off, on a real Mosquitto.

Prints medians side by side with the baseline in the same run:
  baseline  : rewrite the password file + SIGHUP only (Mosquitto 2.0.11 re-checks
              connected clients on reload), time until the old session drops
  rotate    : Provisioner.rotate (registry, password file, reload, client-id takeover)
  retire    : Provisioner.retire (same, with a one-time takeover password)
  add       : Provisioner.add with N devices already registered (password file rewrite)
and how long a reload stalls the broker with C connected devices (the re-check
hashes every connected client's password).

    python3 bench/provisioning_cut.py [--rounds 15] [--devices 2000] [--connected 300]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.mqtt import MQTTClient  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.provisioning import Provisioner, reload_broker  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402
from telemetry_shared.servers import Mosquitto  # noqa: E402
from telemetry_shared.settings import Settings  # noqa: E402
from tests.security.support import Recorder  # noqa: E402

SERVICE_PASSWORD = "bench-service-secret"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def wait_drop(device: Recorder, started: float, timeout_s: float = 10) -> float:
    deadline = time.monotonic() + timeout_s
    while device.disconnected_at is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the old session was not cut")
        time.sleep(0.001)
    return device.disconnected_at - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--connected", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    users = {broker.service_user("api", 1): broker.hash_password(SERVICE_PASSWORD)}
    mosquitto = Mosquitto(work / "mosquitto", users=users).start()
    pid_file = work / "mosquitto.pid"
    pid_file.write_text(str(mosquitto.proc.pid))
    settings = Settings(environment="test", data_dir=work / "var", mqtt_port=mosquitto.port,
                        broker_passwd_file=mosquitto.passwd, broker_pid_file=pid_file)
    registry = Registry(work / "registry.sqlite3")
    provisioner = Provisioner(settings, registry)
    try:
        results = {}
        results["baseline: file + SIGHUP only"] = [reload_only(provisioner, registry, mosquitto, i)
                                                   for i in range(args.rounds)]
        rotate, rotate_call = zip(*[rotation(provisioner, mosquitto, i) for i in range(args.rounds)], strict=True)
        results["rotate: old session dropped"] = list(rotate)
        results["rotate: whole call"] = list(rotate_call)
        results["retire: old session dropped"] = [retirement(provisioner, mosquitto, i) for i in range(args.rounds)]
        base = median_ms(results["baseline: file + SIGHUP only"])
        print(f"Mosquitto {mosquitto.port}, {args.rounds} rounds each, medians (ms)")
        print(f"{'what':34} {'median':>9} {'max':>9} {'vs baseline':>12}")
        for name, values in results.items():
            print(f"{name:34} {median_ms(values):9.1f} {max(values) * 1000:9.1f} {median_ms(values) / base:11.3f}x")
        fleet_add(provisioner, registry, args.devices, args.rounds)
        reload_stall(provisioner, mosquitto, settings, args.connected)
    finally:
        registry.close()
        mosquitto.stop()


def connected_device(provisioner: Provisioner, mosquitto: Mosquitto, device_id: str) -> Recorder:
    issued = provisioner.add(DeviceNew(id=device_id, kind="water", district="bukit-bestari"))
    device = Recorder(mosquitto.port, device_id, issued.password).start()
    assert device.accepted, device.connack
    return device


def reload_only(provisioner: Provisioner, registry: Registry, mosquitto: Mosquitto, i: int) -> float:
    device = connected_device(provisioner, mosquitto, f"base-{i:04d}")
    started = time.monotonic()
    registry.update(device.client._client_id.decode(), state="retired", credential_hash="")
    provisioner.sync_broker()
    return wait_drop(device, started)


def rotation(provisioner: Provisioner, mosquitto: Mosquitto, i: int) -> tuple[float, float]:
    device = connected_device(provisioner, mosquitto, f"rot-{i:04d}")
    started = time.monotonic()
    provisioner.rotate(f"rot-{i:04d}")
    call = time.monotonic() - started
    return wait_drop(device, started), call


def retirement(provisioner: Provisioner, mosquitto: Mosquitto, i: int) -> float:
    device = connected_device(provisioner, mosquitto, f"ret-{i:04d}")
    started = time.monotonic()
    provisioner.retire(f"ret-{i:04d}")
    return wait_drop(device, started)


def fleet_add(provisioner: Provisioner, registry: Registry, devices: int, rounds: int) -> None:
    """`add` cost with a small registry (baseline) and a fleet-sized one."""
    def timed_adds(prefix: str) -> float:
        times = []
        for i in range(rounds):
            started = time.monotonic()
            provisioner.add(DeviceNew(id=f"{prefix}-{i:04d}", kind="power", district="bukit-bestari"))
            times.append(time.monotonic() - started)
        return median_ms(times)

    small = timed_adds("small")
    hashed = broker.hash_password("fleet")  # one hash for all: we measure the file rewrite, not PBKDF2
    for i in range(devices):
        registry.add(DeviceNew(id=f"fleet-{i:05d}", kind="traffic", district="bukit-bestari"), credential_hash=hashed)
    large = timed_adds("large")
    print(f"add, {registry.list(limit=1)[1] - devices - rounds:>6} devices registered: {small:8.1f} ms (baseline)")
    print(f"add, {registry.list(limit=1)[1] - rounds:>6} devices registered: {large:8.1f} ms ({large / small:.1f}x)")


def reload_stall(provisioner: Provisioner, mosquitto: Mosquitto, settings: Settings, connected: int) -> None:
    """A reload re-checks every connected client's password: how long is the broker busy?"""
    clients = []
    for i in range(connected):
        issued = provisioner.add(DeviceNew(id=f"conn-{i:05d}", kind="water", district="bukit-bestari"))
        client = MQTTClient(f"conn-{i:05d}", "127.0.0.1", mosquitto.port, f"conn-{i:05d}", issued.password,
                            keepalive_s=600)
        client.connect()
        clients.append(client)
    probe = MQTTClient(broker.service_user("api", 1), "127.0.0.1", mosquitto.port, broker.service_user("api", 1),
                       SERVICE_PASSWORD, keepalive_s=600)
    probe.connect()

    def ping_ms() -> float:
        started = time.monotonic()
        probe.ping()
        header, _ = probe._read_packet()
        assert header == 0xD0
        return (time.monotonic() - started) * 1000

    idle = statistics.median(ping_ms() for _ in range(20))
    stalls = []
    for _ in range(5):
        reload_broker(settings)
        time.sleep(0.001)
        stalls.append(ping_ms())
        time.sleep(0.3)
    print(f"broker ping idle: {idle:.2f} ms; right after a reload with {connected} devices connected: "
          f"median {statistics.median(stalls):.1f} ms, max {max(stalls):.1f} ms")
    for client in clients:
        client.close()
    probe.close()


if __name__ == "__main__":
    main()
