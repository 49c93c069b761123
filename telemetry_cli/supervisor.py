"""Keeps `city up`'s service processes running: a process that exits on its own
is started again after a backoff (1 s, doubling to 30 s; back to 1 s once it
has run a minute), and the status line says what was restarted and why.

Each process's pid is kept in `<data_dir>/processes.json`, so an operator (or a
test) can find and signal one service.
"""

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from telemetry_cli.common import say

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STABLE_AFTER_S = 60.0  # a run this long resets the backoff


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay_s: float = FIRST_DELAY_S
    restart_at: float | None = None  # when a crashed process is due to start again
    last_exit: int | None = None
    history: list[str] = field(default_factory=list)


def backoff(delay_s: float, ran_s: float) -> float:
    """The next delay: reset after a stable run, else doubled up to MAX_DELAY_S."""
    return FIRST_DELAY_S if ran_s >= STABLE_AFTER_S else min(delay_s * 2, MAX_DELAY_S)


class Supervisor:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.services: dict[str, Service] = {}
        self.stopping = False

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start a service and keep it running until stop_all()."""
        self.services[name] = service = Service(name, argv, env, cwd)
        self._start(service)

    def _start(self, service: Service) -> None:
        log = open(self.data_dir / f"{service.name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        try:
            service.proc = subprocess.Popen(service.argv, env=os.environ | service.env, cwd=service.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        service.started_at = time.monotonic()
        service.restart_at = None
        self._save_pids()

    def check(self) -> list[str]:
        """Notice exits and restart what is due; returns what happened, for the log."""
        events = []
        now = time.monotonic()
        for service in self.services.values():
            if self.stopping or service.proc is None:
                continue
            code = service.proc.poll()
            if code is not None and service.restart_at is None:
                ran_s = now - service.started_at
                service.delay_s = backoff(service.delay_s, ran_s) if service.restarts else FIRST_DELAY_S
                service.restart_at = now + service.delay_s
                service.last_exit = code
                events.append(say("up.exited_after", name=service.name, code=code, ran=f"{ran_s:.0f}",
                                  delay=f"{service.delay_s:.0f}"))
            elif code is not None and now >= service.restart_at:
                service.restarts += 1
                self._start(service)
                events.append(say("up.restarted_n", name=service.name, n=service.restarts))
        return events

    def status(self) -> list[str]:
        """One line per service that was restarted or is waiting to be."""
        lines = []
        now = time.monotonic()
        for s in self.services.values():
            if s.restart_at is not None:
                delay = f"{max(0.0, s.restart_at - now):.0f}"
                lines.append(say("up.exited", name=s.name, code=s.last_exit, delay=delay))
            elif s.restarts:
                lines.append(say("up.restarted_times", name=s.name, n=s.restarts, code=s.last_exit))
        return lines

    def running(self) -> list[subprocess.Popen]:
        return [s.proc for s in self.services.values() if s.proc is not None and s.proc.poll() is None]

    def stop_all(self, signal_number: int, timeout_s: float) -> list[str]:
        """Signal every service (newest first), wait, kill the late; returns the names killed."""
        self.stopping = True
        ordered = list(reversed(self.services.values()))
        for service in ordered:
            if service.proc is not None and service.proc.poll() is None:
                service.proc.send_signal(signal_number)
        deadline = time.monotonic() + timeout_s
        killed = []
        for service in ordered:
            if service.proc is None:
                continue
            try:
                service.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait(10)
                killed.append(service.name)
        (self.data_dir / "processes.json").unlink(missing_ok=True)
        return killed

    def _save_pids(self) -> None:
        pids = {s.name: s.proc.pid for s in self.services.values() if s.proc is not None}
        path = self.data_dir / "processes.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(pids, indent=1))
        tmp.replace(path)
