"""How fast a rotated or retired device is cut off, on a real Mosquitto.

Prints medians side by side with the baseline in the same run:
  baseline  : one dynamic-security setClientPassword command alone (the plugin
              disconnects the client), time until the old session drops
  rotate    : Provisioner.rotate (registry, the plugin's command, client-id takeover)
  retire    : Provisioner.retire (same with a one-time password, then the entry deleted)
  add       : Provisioner.add with N devices already registered (the plugin saves
              its whole file after every command, so this grows with the fleet)
then rotate and retire again with the N devices registered, and how long a
change stalls the broker with C devices connected.

    python3 bench/provisioning_cut.py [--rounds 15] [--devices 2000] [--connected 300]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.mqtt import MQTTClient  # noqa: E402
from telemetry_shared import broker, provisioning  # noqa: E402
from telemetry_shared.device_link import DeviceLink  # noqa: E402
from telemetry_shared.provisioning import Provisioner  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402
from telemetry_shared.servers import Mosquitto  # noqa: E402
from telemetry_shared.settings import Settings, get_settings  # noqa: E402
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
    users = {broker.service_user("api", n): broker.hash_password(SERVICE_PASSWORD) for n in (1, 2)}
    mosquitto = Mosquitto(work / "mosquitto", users=users).start()
    settings = Settings(environment="test", data_dir=work / "var", mqtt_port=mosquitto.port,
                        mqtt_password=SERVICE_PASSWORD)
    registry = Registry(work / "registry.sqlite3")
    provisioner = Provisioner(settings, registry)
    try:
        cut_table(provisioner, registry, mosquitto, args.rounds, "small registry")
        fleet_add(provisioner, registry, mosquitto, args.devices, args.rounds)
        cut_table(provisioner, registry, mosquitto, args.rounds, f"{args.devices} more devices registered")
        change_stall(provisioner, mosquitto, args.connected)
    finally:
        provisioner.close()
        registry.close()
        mosquitto.stop()


def cut_table(provisioner: Provisioner, registry: Registry, mosquitto: Mosquitto, rounds: int, label: str) -> None:
    tag = f"{registry.list(limit=1)[1]:05d}"  # unique ids per table
    results = {"baseline: the plugin's kick alone": [kick_only(provisioner, mosquitto, f"b{tag}-{i}")
                                                     for i in range(rounds)]}
    rotate, rotate_call = zip(*[rotation(provisioner, mosquitto, f"r{tag}-{i}") for i in range(rounds)], strict=True)
    results["rotate: old session dropped"] = list(rotate)
    results["rotate: whole call"] = list(rotate_call)
    results["retire: old session dropped"] = [retirement(provisioner, mosquitto, f"t{tag}-{i}")
                                              for i in range(rounds)]
    base = median_ms(results["baseline: the plugin's kick alone"])
    print(f"{label}: Mosquitto {mosquitto.port}, {rounds} rounds each, medians (ms)")
    print(f"{'what':34} {'median':>9} {'max':>9} {'vs baseline':>12}")
    for name, values in results.items():
        print(f"{name:34} {median_ms(values):9.1f} {max(values) * 1000:9.1f} {median_ms(values) / base:11.2f}x")


def connected_device(provisioner: Provisioner, mosquitto: Mosquitto, device_id: str) -> Recorder:
    issued = provisioner.add(DeviceNew(id=device_id, kind="water", district=get_settings().city.slugs[0]))
    device = Recorder(mosquitto.port, device_id, issued.password).start()
    assert device.accepted, device.connack
    return device


def kick_only(provisioner: Provisioner, mosquitto: Mosquitto, device_id: str) -> float:
    device = connected_device(provisioner, mosquitto, device_id)
    started = time.monotonic()
    provisioner._command([broker.password_command(device_id, broker.new_secret())])
    return wait_drop(device, started)


def rotation(provisioner: Provisioner, mosquitto: Mosquitto, device_id: str) -> tuple[float, float]:
    device = connected_device(provisioner, mosquitto, device_id)
    started = time.monotonic()
    provisioner.rotate(device_id)
    call = time.monotonic() - started
    return wait_drop(device, started), call


def retirement(provisioner: Provisioner, mosquitto: Mosquitto, device_id: str) -> float:
    device = connected_device(provisioner, mosquitto, device_id)
    started = time.monotonic()
    provisioner.retire(device_id)
    return wait_drop(device, started)


def fleet_add(provisioner: Provisioner, registry: Registry, mosquitto: Mosquitto, devices: int, rounds: int) -> None:
    """`add` cost with a small registry (baseline) and a fleet-sized one."""
    def timed_adds(prefix: str) -> float:
        times = []
        for i in range(rounds):
            started = time.monotonic()
            provisioner.add(DeviceNew(id=f"{prefix}-{i:04d}", kind="power", district=get_settings().city.slugs[0]))
            times.append(time.monotonic() - started)
        return median_ms(times)

    small = timed_adds("small")
    hashed = broker.hash_password("fleet")  # one hash for all: we measure the broker's side, not PBKDF2
    for i in range(devices):
        registry.add(DeviceNew(id=f"fleet-{i:05d}", kind="traffic", district=get_settings().city.slugs[0]),
                     credential_hash=hashed)
    # The fleet into the broker as `city up` does it: the plugin's file rebuilt from the registry, then a restart.
    mosquitto.stop()
    mosquitto.users |= provisioning.broker_entries(registry)
    mosquitto.write_credentials()
    mosquitto.start()
    provisioner._own_link().control_ready.wait(15)  # the link reconnects by itself
    large = timed_adds("large")
    print(f"add, {registry.list(limit=1)[1] - devices - rounds:>6} devices registered: {small:8.1f} ms (baseline)")
    print(f"add, {registry.list(limit=1)[1] - rounds:>6} devices registered: {large:8.1f} ms ({large / small:.1f}x)")


def change_stall(provisioner: Provisioner, mosquitto: Mosquitto, connected: int) -> None:
    """A change makes the plugin save its whole file: how long is the broker busy for the others?"""
    clients = []
    for i in range(connected):
        issued = provisioner.add(DeviceNew(id=f"conn-{i:05d}", kind="water", district=get_settings().city.slugs[0]))
        client = MQTTClient(f"conn-{i:05d}", "127.0.0.1", mosquitto.port, f"conn-{i:05d}", issued.password,
                            keepalive_s=600)
        client.connect()
        clients.append(client)
    probe = MQTTClient(broker.service_user("api", 2), "127.0.0.1", mosquitto.port, broker.service_user("api", 2),
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
    for i in range(5):
        link: DeviceLink = provisioner._own_link()
        link.client.publish(broker.CONTROL_TOPIC, json.dumps({"commands": [
            broker.password_command(f"conn-{i:05d}", broker.new_secret())]}), qos=1)
        time.sleep(0.001)
        stalls.append(ping_ms())
        time.sleep(0.3)
    print(f"broker ping idle: {idle:.2f} ms; right after a change with {connected} devices connected: "
          f"median {statistics.median(stalls):.1f} ms, max {max(stalls):.1f} ms")
    for client in clients:
        client.close()
    probe.close()


if __name__ == "__main__":
    main()
