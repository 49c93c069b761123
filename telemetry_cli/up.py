"""`city up`: the whole city on this machine, no Docker needed.

Mosquitto and influxd run as child processes with their data under the data
folder (var/ by default); then the ingest worker, analytics, the API with the
control-room page, and a simulated fleet (plus one real MicroPython agent per
kind). A live status line shows readings flowing; a service that exits on its
own is restarted with backoff (telemetry_cli/supervisor.py) and the status line
says so; Ctrl-C stops everything, services first so they drain, servers last.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edge import contract
from telemetry_cli.common import number, say
from telemetry_cli.supervisor import Supervisor
from telemetry_shared import broker
from telemetry_shared.influx import InfluxError, InfluxQL
from telemetry_shared.local_ca import ensure_local_ca
from telemetry_shared.localstack import LocalStack, register_devices
from telemetry_shared.provisioning import broker_entries
from telemetry_shared.registry import Registry
from telemetry_shared.servers import Influxd, MissingBinary, Mosquitto, find_binary, free_port
from telemetry_shared.settings import get_settings

console = Console(stderr=True)
ROOT = Path(__file__).resolve().parent.parent


def _port_or_free(preferred: int) -> int:
    """The configured port if it is free, else any free loopback port (said aloud)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            port = free_port()
    console.print(f"[yellow]{say('up.port_busy', preferred=preferred, port=port)}[/]")
    return port


def plan_fleet(devices: int, seed: int) -> list[dict]:
    """Device specs (id, kind, district, position) from the simulator's scenario and the city profile."""
    import fleetsim

    return fleetsim.plan_fleet(fleetsim.load_scenario(fleetsim.DEFAULT_SCENARIO), devices, seed)


def plan_networks(now_ms: int):
    """The scenario's DMAs and feeders (fleetsim/networks.py) and their models' start, or (None, None)."""
    import fleetsim
    from fleetsim.networks import anchor_ms
    from fleetsim.networks import plan_networks as plan

    scenario = fleetsim.load_scenario(fleetsim.DEFAULT_SCENARIO)
    networks = plan(scenario)
    if networks is None:
        return None, None
    return networks, anchor_ms(scenario, now_ms, networks.config["history_days"])


def register_networks(registry_path: Path, networks: list[dict]) -> None:
    """Each DMA and feeder set as an engineer sets it (Registry.set_network: the API's and CLI's path, checked
    whole; a city restarted on its data folder replaces them with the same)."""
    from telemetry_shared.network import NetworkSpec

    registry = Registry(registry_path)
    try:
        for network in networks:
            registry.set_network(NetworkSpec(**network))
    finally:
        registry.close()


class City:
    """The processes of one local city, started in order and stopped in reverse."""

    def __init__(self, data_dir: Path, devices: int, micropython_agents: bool):
        self.data_dir = data_dir
        self.devices = devices
        self.micropython_agents = micropython_agents
        self.supervisor = Supervisor(data_dir)
        self.mosquitto: Mosquitto | None = None
        self.influxd: Influxd | None = None
        self.stack: LocalStack | None = None
        self.networks_from_ms: int | None = None

    # ------------------------------------------------------------ start

    def start(self) -> None:
        settings = get_settings()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        service_password = self._service_password()
        service_hash = broker.hash_password(service_password)
        users = {broker.service_user(s, i): service_hash for s in broker.SERVICES
                 for i in range(broker.MAX_SERVICE_INSTANCES)}
        fleet_specs = plan_fleet(self.devices, seed=7)
        agent_specs = self._agent_specs()
        # the water and electricity networks: their meters are fleet devices, the DMAs and feeders set on them
        networks, self.networks_from_ms = plan_networks(int(time.time() * 1000))
        fleet_specs += networks.devices if networks else []
        passwords = register_devices(self.data_dir / "registry.sqlite3", fleet_specs + agent_specs)
        if networks:
            register_networks(self.data_dir / "registry.sqlite3", networks.networks)
        # The broker's device entries are rebuilt from the registry at every start, so a city
        # whose registry came back from a backup admits its devices at once.
        registry = Registry(self.data_dir / "registry.sqlite3")
        try:
            users |= broker_entries(registry)
        finally:
            registry.close()
        console.print(say("up.starting"))
        self.tls = ensure_local_ca(self.data_dir / "tls")  # made on first start, kept after
        self.mosquitto = Mosquitto(self.data_dir / "mosquitto", _port_or_free(settings.mqtt_port), users=users,
                                   tls=(self.tls.server_crt, self.tls.server_key),
                                   tls_port=_port_or_free(settings.mqtt_tls_port),
                                   analytics_group=settings.analytics_share_group)
        self.mosquitto.start()
        self.influxd = Influxd(self.data_dir / "influxd", _port_or_free(_port_of(settings.influx_url)))
        self.influxd.start()
        InfluxQL(self.influxd.url, settings.influx_db).create_database()
        self.stack = LocalStack(str(self.data_dir), self.mosquitto.port, self.influxd.port,
                                _port_or_free(settings.api_port), self.mosquitto.proc.pid, service_password)
        self.stack.save()
        fleet = self._fleet_file(fleet_specs, passwords)
        self._start_services()
        self._start_fleet(fleet, agent_specs, passwords)

    def operator_key(self) -> str:
        """An admin API key for the person running the city, made once and kept in the data folder."""
        path = self.data_dir / "admin-key"
        if not path.exists():
            from api.auth import KeyStore
            from api.db import ApiDb

            # not for people: the key's name in the audit trail
            created = KeyStore(ApiDb(get_settings().api_db_file)).create("local admin", "admin")
            path.write_text(created.key)
            os.chmod(path, 0o600)
        return path.read_text().strip()

    def _service_password(self) -> str:
        path = self.data_dir / "service-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            os.chmod(path, 0o600)
        return path.read_text().strip()

    def _fleet_file(self, specs: list[dict], passwords: dict[str, str]) -> Path:
        fleet_file = self.data_dir / "fleet.json"
        fleet = {"devices": [spec | {"password": passwords[spec["id"]]} for spec in specs],
                 "broker": {"host": "127.0.0.1", "port": self.stack.mqtt_port, "tls_port": self.mosquitto.tls_port,
                            "ca_file": str(self.tls.ca_crt)}}
        if self.networks_from_ms is not None:
            fleet["networks_from_ms"] = self.networks_from_ms
        fleet_file.write_text(json.dumps(fleet, indent=1))
        os.chmod(fleet_file, 0o600)
        return fleet_file

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.supervisor.spawn(name, argv, env, cwd)

    def supervise(self) -> None:
        """Restart what crashed (with backoff); say so in the log above the status line."""
        for event in self.supervisor.check():
            console.print(f"[yellow]{event}[/]")

    def _start_services(self) -> None:
        py = sys.executable
        env = self.stack.service_env("ingest")
        retention = subprocess.run([py, "-m", "telemetry_cli.main", "rollup", "retention"], env=os.environ | env,
                                   cwd=ROOT, capture_output=True, text=True, timeout=60)
        if retention.returncode != 0:
            output = retention.stdout + retention.stderr
            console.print(f"[yellow]{escape(say('up.no_retention', output=output))}[/]")
        # One ingest worker per core (up to 4) sharing the subscription, unless CITY_INGEST_WORKERS says.
        workers = int(os.environ.get("CITY_INGEST_WORKERS") or min(4, os.cpu_count() or 1))
        self.metrics_ports = []
        for i in range(workers):
            self.metrics_ports.append(_port_or_free(9108 + i))
            ingest_env = self.stack.service_env("ingest", i) | {
                "CITY_INGEST_WORKERS": str(workers), "CITY_INGEST_METRICS_PORT": str(self.metrics_ports[-1])}
            self._spawn(f"ingest-{i}", [py, "-m", "ingest"], ingest_env)
        self._spawn("analytics", [py, "-m", "analytics"], self.stack.service_env("analytics"))
        self._spawn("api", [py, "-m", "api"], self.stack.service_env("api"))
        self._spawn("rollup", [py, "-m", "telemetry_cli.main", "rollup", "run", "--every-s", "3600"], env)

    def _wait_for_ingest(self, timeout_s: float = 30.0) -> None:
        """Until every ingest worker has connected to the broker (its metrics say so), at most timeout_s.

        On a fresh city no session holds the shared subscription yet: what devices send before the workers
        subscribe is lost, and the network meters upload weeks of history in their first seconds."""
        import httpx

        deadline = time.monotonic() + timeout_s
        waiting = list(self.metrics_ports)
        while waiting and time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{waiting[0]}/metrics", timeout=2).text
                if any(line.startswith("ingest_mqtt_connects_total") and not line.endswith(" 0")
                       for line in text.splitlines()):
                    waiting.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        time.sleep(1.0)  # the subscription follows the connection at once
        if waiting:
            console.print(f"[yellow]{say('up.ingest_not_ready', seconds=round(timeout_s))}[/]")

    def _start_fleet(self, fleet_file: Path, agent_specs: list[dict], passwords: dict[str, str]) -> None:
        py = sys.executable
        self._wait_for_ingest()
        self._spawn("fleet", [py, "-m", "fleetsim", "--fleet", str(fleet_file)], {})
        if agent_specs:
            self._start_micropython_agents(agent_specs, passwords)

    def _agent_specs(self) -> list[dict]:
        """One real MicroPython agent per kind, when wanted and installed."""
        if not self.micropython_agents:
            return []
        try:
            find_binary("micropython")
        except MissingBinary as exc:
            console.print(f"[yellow]{escape(say('up.no_micropython', error=exc))}[/]")
            return []
        city = get_settings().city
        specs = []
        for i, kind in enumerate(contract.KINDS):
            district = city.districts[i % len(city.districts)]
            spot = district.geometry.representative_point()
            specs.append({"id": f"mpy-{kind}", "kind": kind, "district": district.slug, "lat": spot.y, "lon": spot.x})
        return specs

    def _start_micropython_agents(self, specs: list[dict], passwords: dict[str, str]) -> None:
        """For fidelity: the firmware as it runs on a board."""
        micropython = find_binary("micropython")
        flash = self.data_dir / "micropython"
        shutil.rmtree(flash, ignore_errors=True)
        shutil.copytree(ROOT / "edge", flash / "edge", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copyfile(self.tls.ca_der, flash / "ca.der")
        from fleetsim.mpy import synthetic_city

        for spec in specs:
            config = {"device_id": spec["id"], "kind": spec["kind"], "server": "127.0.0.1",
                      "port": self.mosquitto.tls_port, "ca_path": "ca.der", "server_hostname": "localhost",
                      "password": passwords[spec["id"]], "interval_ms": 5000, "batch_size": 2, **synthetic_city()}
            path = flash / f"{spec['id']}.json"
            path.write_text(json.dumps(config))
            self._spawn(spec["id"], [micropython, "-m", "edge.main", path.name],
                        {"MICROPYPATH": f"{flash}:.frozen"}, flash)  # .frozen: MicroPython's own ssl module

    # ------------------------------------------------------------ status and stop

    def status_table(self, influx: InfluxQL) -> Group:
        table = Table(title=say("up.last_minute", city=get_settings().city_name), expand=False)
        for column in ("kind", "per_min", "devices"):
            table.add_column(say(f"up.col.{column}"))
        try:
            for kind in contract.KINDS:
                # not for people: InfluxQL
                rows = influx.rows(f'SELECT count("seq") AS n FROM "{kind}" WHERE time > now() - 1m')
                # not for people: InfluxQL
                devices = influx.series(f'SHOW TAG VALUES FROM "{kind}" WITH KEY = "device"')
                n_devices = len(devices[0]["values"]) if devices else 0
                table.add_row(kind, number(rows[0]["n"] if rows else 0, 0), number(n_devices, 0))
        except InfluxError as exc:
            table.add_row("InfluxDB", f"[red]{exc}[/]", "")
        lines = [say("up.where", control_room=f"{self.stack.api_url}/control-room", mqtt=self.stack.mqtt_port,
                     influx=self.stack.influx_url), say("up.logs", path=f"{self.data_dir}/*.log")]
        lines += [f"[yellow]{line}[/]" for line in self.supervisor.status()]
        return Group(table, *(Text.from_markup(line) for line in lines))

    def stop(self) -> None:
        for name in self.supervisor.stop_all(signal.SIGTERM, timeout_s=20):
            console.print(f"[yellow]{say('up.killed', name=name)}[/]")
        for server in (self.influxd, self.mosquitto):
            if server:
                server.stop()
        state = self.data_dir / "city.json"
        state.unlink(missing_ok=True)


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def up(
    devices: int = typer.Option(40, min=1, max=20000, help=say("up.help1")),
    duration: float = typer.Option(0, min=0, help=say("up.help2")),
    micropython: bool = typer.Option(True, help=say("up.help3")),
) -> None:
    settings = get_settings()
    city = City(Path(settings.data_dir).resolve(), devices, micropython)
    stopping = {"now": False}

    def request_stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        city.start()
        influx = InfluxQL(city.stack.influx_url, settings.influx_db)
        console.print(f"[green]{say('up.is_up')}[/]: "
                      + say("up.control_room_at", url=f"{city.stack.api_url}/control-room"))
        console.print(say("up.sign_in", path=f"{city.data_dir}/admin-key", key=city.operator_key()))
        started = time.monotonic()
        with Live(city.status_table(influx), console=console, refresh_per_second=1,
                  transient=not sys.stderr.isatty()) as live:
            while not stopping["now"] and not (duration and time.monotonic() - started > duration):
                time.sleep(0.5)
                city.supervise()
                live.update(city.status_table(influx))
        console.print(city.status_table(influx))
    except (MissingBinary, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        console.print(say("up.stopping"))
        city.stop()
    console.print(say("up.stopped"))
