"""Give a scaled service instance a fixed, durable identity, then run it.

`docker compose up --scale ingest=3` starts three identical containers with
random hostnames, but an ingest worker must come back under the same MQTT
client id (svc-ingest-N) to find its durable session, its queued messages and
its spool. Each instance takes the lowest free slot among
broker.MAX_SERVICE_INSTANCES by an exclusive flock on a file in a volume all
instances share, sets its identity in the environment and execs the service,
which inherits the locked descriptor: the slot is held exactly as long as the
process lives, and a restarted instance gets the lowest free slot again, so
three replicas are always ingest-0, ingest-1 and ingest-2.

    python -m deploy.lease ingest -- python -m ingest
"""

import argparse
import fcntl
import os
import socket
import sys
from pathlib import Path

from telemetry_shared import broker

DEFAULT_DIR = Path(os.environ.get("CITY_DATA_DIR", "/var/lib/city")) / "leases"


class NoFreeSlot(RuntimeError):
    pass


def acquire(lease_dir: Path, service: str, slots: int = broker.MAX_SERVICE_INSTANCES) -> tuple[int, int]:
    """Lock the lowest free slot; returns (slot, file descriptor holding the lock)."""
    lease_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(slots):
        fd = os.open(lease_dir / f"{service}-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())  # who holds it, for an operator
        return slot, fd
    hint = f"set {COUNTED_BY[service]} to the number of replicas" if service in COUNTED_BY else "scale down"
    raise NoFreeSlot(f"all {slots} {service} slots are taken: {hint} (at most {broker.MAX_SERVICE_INSTANCES})")


COUNTED_BY = {"ingest": "CITY_INGEST_WORKERS", "analytics": "CITY_ANALYTICS_SHARDS"}


def slots_for(service: str, environ: dict[str, str]) -> int:
    """Ingest runs as many workers as CITY_INGEST_WORKERS says: a replica beyond them would
    subscribe on its own and take every message again, so it gets no slot. Analytics as many as
    CITY_ANALYTICS_SHARDS: each owns a share of the devices, one share a slot."""
    name = COUNTED_BY.get(service)
    if name is None:
        return broker.MAX_SERVICE_INSTANCES
    raw = environ.get(name, "1")
    try:
        workers = int(raw)
    except ValueError:
        raise NoFreeSlot(f"{name} must be a number from 1 to 8, not {raw[:20]!r}") from None
    if not 1 <= workers <= broker.MAX_SERVICE_INSTANCES:
        raise NoFreeSlot(f"{name} must be from 1 to {broker.MAX_SERVICE_INSTANCES}, not {workers}")
    return workers


def identity(service: str, slot: int) -> dict[str, str]:
    env = {"CITY_MQTT_USER": broker.service_user(service, slot)}
    if service == "ingest":
        env["CITY_INGEST_WORKER_ID"] = f"ingest-{slot}"
    if service == "analytics":
        env["CITY_ANALYTICS_SHARD"] = str(slot)  # the slot is the share: the same after every restart
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, command = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m deploy.lease",
                                     usage="%(prog)s SERVICE [--dir DIR] -- COMMAND [ARGS...]",
                                     description="Run a service instance under the lowest free fixed identity.")
    parser.add_argument("service", choices=broker.SERVICES)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="lease folder shared by all instances")
    args = parser.parse_args(own)
    if not command:
        parser.error("give the command to run after --")
    try:
        slot, fd = acquire(args.dir, args.service, slots_for(args.service, dict(os.environ)))
    except (NoFreeSlot, OSError) as exc:
        print(f"lease: {exc}", file=sys.stderr)
        return 1
    os.set_inheritable(fd, True)  # the lock lives as long as the exec'd service
    env = os.environ | identity(args.service, slot)
    print(f"lease: {args.service} instance {slot} ({env['CITY_MQTT_USER']})", file=sys.stderr, flush=True)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"lease: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
