"""The whole city at scale, end to end: N simulated devices at one reading a minute through Mosquitto, the ingest
workers, InfluxDB and the analytics engine, on this machine, for a bounded time (issue 22's target: 100,000
devices for 30 minutes).

What runs: a real Mosquitto (dynamic security; every device logs in under its own username, the ACL pins it to
its own topics), a real influxd, W ingest workers (`python -m ingest`, sharing the subscription) and one
analytics engine (`python -m analytics`, saving its state every --checkpoint-s), each a child process with its
data in a temporary folder, on 127.0.0.1 only; the devices are registered in the registry in one transaction
(Registry.add_many) and given to the broker at its start. The fleet is the simulator's (fleetsim.FleetRunner:
the real agent logic, the scenario's faults) in P processes, duty-cycled with --duty-cycle K (each device wakes
every K minutes and sends its K readings in one message: firmware-sim/README.md "At city scale" says why one
connection per device cannot reach 100,000 here). The run stops itself after --minutes, then drains; every
child is stopped by its PID on the way out, also on Ctrl-C, SIGTERM, an error or the overall time bound.

What it reports, over the steady window (from --warmup-s after the fleet's start to its stop):
- readings: taken by the fleet, sent (acknowledged by the broker), stored (a count query of every kind's
  measurement in InfluxDB at the end, after waiting up to --drain-s for the count to reach the sent), lost
  (sent - stored; the target is 0), and what ingest rejected (dead-lettered on purpose: the scenario's malformed
  messages and skewed clocks). Counts are over the whole run, not only the window.
- ingest lag (a reading's time -> visible in InfluxDB), p50/p99/max, from probe readings: two probe devices
  publish one reading a second over a persistent connection, and the bench polls InfluxDB for them every 0.5 s
  (so the figure is an upper bound, coarse by the poll's period and its query time); beside it the largest of
  the workers' own `lag_seconds` gauge (their newest stored reading's age, polled each second).
- analytics lag (a reading's time -> scored), p50/p99 from the engine's own histograms (analytics/selfstats.py,
  `analytics_stats` every 5 s: the difference of the points at the window's start and end), of the newest reading
  of each live message (with K > 1 the older readings of a wake were held by the device up to K minutes more, on
  purpose), and of the arrival at the engine -> scored ("wait"). A quantile is the bucket bound it falls in.
  The lag's maximum reads the device's clock: the scenario's clock_skew devices stamp their readings 600-3,600 s
  behind (fleetsim/faults.py), so it is up to an hour; the wait's maximum (the host's clock) is the stream's own.
- analytics resident memory: peak (polled each second, and the kernel's VmHWM) and per series (the series the
  engine holds, from its stats).
- each checkpoint (`analytics_checkpoint`): the snapshot's pause (the stream waits for it), the write's time
  beside the stream, the passes scored meanwhile and the longest of them, against the longest pass of the window.
- CPU of each process in cores (its CPU seconds over the window's wall seconds), and the load average at the
  window's start and end (the machine is shared: read the figures against it).

Usage: python bench/bench_city_scale.py --devices 2000 --minutes 4 [--duty-cycle 10] [--processes 2]
       [--ingest-workers 1] [--warmup-s 60] [--checkpoint-s 120] [--drain-s 180] [--json]
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fleet_setup import ROOT, plan_bench_fleet, proc_cpu_s, proc_rss_mb, quantile, run_options, split_fleet
from fleetsim.fleetfile import parse_fleet
from fleetsim.runner import FleetRunner, raise_fd_limit

from analytics.selfstats import LAG_BUCKETS_S, bucket_name
from edge import contract
from telemetry_shared import broker
from telemetry_shared.influx import InfluxError, InfluxQL
from telemetry_shared.localstack import LocalStack
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.servers import Influxd, Mosquitto, free_port
from telemetry_shared.settings import get_settings

DB = "city"
PROBES = ("probe-0", "probe-1")
PROBE_EVERY_S = 1.0
POLL_EVERY_S = 0.5
STATS_INTERVAL_S = 5
SETUP_BOUND_S = 600  # broker, influxd, registry and workers up within this, or the run gives up
STOP_BOUND_S = 240  # the fleet's goodbyes, the services' drain and their saves at stop


class Bounded(Exception):
    """The overall time bound or a signal: stop everything and report what there is."""


def _raise_bounded(signum, _frame):
    raise Bounded(f"signal {signum}")


# ------------------------------------------------------------------ the fleet, in processes of its own

def fleet_process(fleet: dict, scenario: dict, duty_cycle: int, seconds: float, results) -> None:
    """One fleet process: runs its devices for `seconds` (then their goodbyes: a duty-cycled device sends what it
    holds), puts its summary on `results`. SIGTERM stops it early, the same way."""
    runner = FleetRunner(parse_fleet(fleet), scenario, run_options(duty_cycle, duration_s=seconds))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, runner.request_stop)
        loop.add_signal_handler(signal.SIGINT, runner.request_stop)
        await runner.run()

    asyncio.run(main())
    results.put(runner.summary() | {"pid": os.getpid()})


# ------------------------------------------------------------------ probes: ingest lag end to end

class Probes:
    """Probe devices that publish one power reading a second; a poller that notes when InfluxDB shows each."""

    def __init__(self, port: int, password: str, influx: InfluxQL):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.influx = influx
        self.nominal_v = get_settings().city.grid.nominal_voltage_v  # a probe reads as a healthy meter
        self.sent: dict[tuple[str, int], float] = {}  # (probe, seq) -> reading's time, s
        self.lags: list[tuple[float, float]] = []  # (seen at, lag s)
        self.stop = threading.Event()
        self.clients = []
        for probe in PROBES:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=probe)
            client.username_pw_set(probe, password)
            client.connect("127.0.0.1", port, keepalive=30)
            client.loop_start()
            self.clients.append(client)
        self.threads = [threading.Thread(target=self._publish, daemon=True, name="probes"),
                        threading.Thread(target=self._poll, daemon=True, name="probe-poll")]

    def start(self) -> "Probes":
        for thread in self.threads:
            thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        for client in self.clients:
            client.disconnect()
            client.loop_stop()

    def _publish(self) -> None:
        seq = 0
        while not self.stop.wait(PROBE_EVERY_S):
            seq += 1
            t_ms = int(time.time() * 1000)
            for probe, client in zip(PROBES, self.clients, strict=True):
                self.sent[(probe, seq)] = t_ms / 1000
                reading = {"voltage_v": self.nominal_v + (seq % 7) / 10}
                payload = contract.encode_telemetry(seq, [(t_ms, reading, 0)], "probe")
                client.publish(contract.telemetry_topic(probe), payload, qos=1)

    def _poll(self) -> None:
        seen = dict.fromkeys(PROBES, 0)
        while not self.stop.wait(POLL_EVERY_S):
            try:
                # not for people: InfluxQL
                rows = self.influx.rows('SELECT max("seq") AS seq FROM "power" WHERE time > now() - 2m '
                                        'AND "device" =~ /^probe-/ GROUP BY "device"')
            except InfluxError:
                continue
            now = time.time()
            for row in rows:
                probe, top = row.get("device"), row.get("seq")
                if probe not in seen or top is None:
                    continue
                for seq in range(seen[probe] + 1, int(top) + 1):
                    sent = self.sent.get((probe, seq))
                    if sent is not None:
                        self.lags.append((now, now - sent))
                seen[probe] = max(seen[probe], int(top))


# ------------------------------------------------------------------ the city

class CityUnderTest:
    """Broker, influxd, ingest workers and analytics, as `city up` starts them, in a temporary folder."""

    def __init__(self, data: Path, ingest_workers: int, checkpoint_s: float):
        self.data = data
        self.ingest_workers = ingest_workers
        self.checkpoint_s = checkpoint_s
        self.mosquitto: Mosquitto | None = None
        self.influxd: Influxd | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.metrics_ports: list[int] = []

    def start_servers(self, users: dict[str, str]) -> None:
        self.mosquitto = Mosquitto(self.data / "mosquitto", users=users, max_queued_messages=1_000_000)
        self.mosquitto.start(timeout_s=300)
        self.influxd = Influxd(self.data / "influxd")
        self.influxd.start()
        InfluxQL(self.influxd.url, DB).create_database()

    def start_services(self, service_password: str) -> None:
        stack = LocalStack(str(self.data), self.mosquitto.port, self.influxd.port, free_port(),
                           self.mosquitto.proc.pid, service_password)
        common = {"CITY_ENVIRONMENT": "test", "CITY_INFLUX_DB": DB, "CITY_MQTT_HOST": "127.0.0.1",
                  "CITY_LANGUAGE": os.environ.get("CITY_LANGUAGE", "en")}
        for i in range(self.ingest_workers):
            self.metrics_ports.append(free_port())
            env = stack.service_env("ingest", i) | common | {"CITY_INGEST_WORKERS": str(self.ingest_workers),
                                                               "CITY_INGEST_METRICS_PORT": str(self.metrics_ports[-1])}
            self._spawn(f"ingest-{i}", [sys.executable, "-m", "ingest"], env)
        env = stack.service_env("analytics") | common | {
            "CITY_ANALYTICS_CHECKPOINT_S": str(self.checkpoint_s),
            "CITY_ANALYTICS_STATS_INTERVAL_S": str(STATS_INTERVAL_S),
            "CITY_ANALYTICS_NETWORK_REPORT_S": "0"}  # no DMAs or feeders in the bench fleet
        self._spawn("analytics", [sys.executable, "-m", "analytics"], env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.data / f"{name}.log", "w") as log:  # the child keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=os.environ | env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, name: str, chars: int = 1500) -> str:
        try:
            return (self.data / f"{name}.log").read_text()[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def ingest_metrics(self) -> list[dict[str, float]]:
        """Each worker's Prometheus counters and gauges, {name: value} (the worker label dropped)."""
        import httpx

        out = []
        for port in self.metrics_ports:
            values: dict[str, float] = {}
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                out.append(values)
                continue
            for line in text.splitlines():
                if line.startswith("#") or " " not in line:
                    continue
                name, value = line.rsplit(" ", 1)
                reason = re.search(r'reason="([^"]+)"', name)
                key = name.split("{")[0] + (f":{reason.group(1)}" if reason else "")
                values[key] = values.get(key, 0.0) + float(value)
            out.append(values)
        return out

    def wait_until_ready(self, timeout_s: float = 180) -> None:
        """Every ingest worker connected to the broker and the engine subscribed (its log says so)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            ingest = all(m.get("ingest_mqtt_connects_total", 0) > 0 for m in self.ingest_metrics())
            if ingest and "subscribed to telemetry" in self.log_tail("analytics", 100_000):
                time.sleep(1.0)  # the subscriptions follow the connections at once
                return
            time.sleep(0.5)
        raise RuntimeError(f"the services were not ready in {timeout_s:.0f} s:\n{self.log_tail('analytics')}")

    def stop(self) -> list[str]:
        """SIGTERM to every service (each drains; analytics saves its state), SIGKILL to one that hangs; then the
        servers. Returns the names of those that had to be killed."""
        killed = []
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                killed.append(name)
        for server in (self.influxd, self.mosquitto):
            if server is not None:
                server.stop()
        return killed

    def kill_all(self) -> None:
        """The last resort on the way out: every child still alive, by its PID."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for server in (self.influxd, self.mosquitto):
            if server is not None:
                server.kill()


# ------------------------------------------------------------------ InfluxDB reads

def stored_readings(influx: InfluxQL) -> int:
    """Readings stored, every kind (a reading is one point of its kind's measurement; seq is in every point)."""
    total = 0
    for kind in contract.KINDS:
        # not for people: InfluxQL
        rows = influx.rows(f'SELECT count("seq") AS n FROM "{kind}"')
        total += int(rows[0]["n"]) if rows else 0
    return total


def probe_readings(influx: InfluxQL) -> int:
    # not for people: InfluxQL
    rows = influx.rows('SELECT count("seq") AS n FROM "power" WHERE "device" =~ /^probe-/')
    return int(rows[0]["n"]) if rows else 0


def stats_points(influx: InfluxQL, measurement: str) -> list[dict]:
    # not for people: InfluxQL
    return influx.rows(f'SELECT * FROM "{measurement}" ORDER BY time')


def point_time_s(point: dict) -> float:
    return point["time"] / 1000  # InfluxQL.rows asks for epoch ms


def histogram_quantile(start: dict, end: dict, prefix: str, q: float) -> float:
    """The upper bound of the bucket holding quantile q of the messages scored between two analytics_stats
    points (inf: past the last bucket; nan: none scored)."""
    total = (end.get("lag_count") or 0) - (start.get("lag_count") or 0)
    if total <= 0:
        return float("nan")
    for bound in LAG_BUCKETS_S:
        name = bucket_name(prefix, bound)
        if (end.get(name) or 0) - (start.get(name) or 0) >= q * total:
            return float(bound)
    return float("inf")


# ------------------------------------------------------------------ the run

def run(args) -> dict:
    started = time.time()
    limit = raise_fd_limit(1_048_576)  # the broker started below inherits it
    data = Path(tempfile.mkdtemp(prefix="city-scale-"))
    city = CityUnderTest(data, args.ingest_workers, args.checkpoint_s)
    fleet_procs: list[multiprocessing.Process] = []
    results = multiprocessing.get_context("fork").Queue()
    probes: Probes | None = None
    result: dict = {"devices": args.devices, "minutes": args.minutes, "duty_cycle": args.duty_cycle,
                    "processes": args.processes, "ingest_workers": args.ingest_workers, "fd_limit": limit,
                    "checkpoint_s": args.checkpoint_s, "warmup_s": args.warmup_s, "cpus": os.cpu_count()}
    try:
        t0 = time.monotonic()
        scenario, specs, password, hashed = plan_bench_fleet(args.devices)
        registry = Registry(data / "registry.sqlite3")
        try:
            district = get_settings().city.slugs[0]
            news = [DeviceNew(**{k: s[k] for k in ("id", "kind", "district", "lat", "lon") if k in s}) for s in specs]
            news += [DeviceNew(id=probe, kind="power", district=district) for probe in PROBES]
            registry.add_many(news, credential_hash=hashed)
        finally:
            registry.close()
        result["register_s"] = round(time.monotonic() - t0, 1)
        service_password = broker.new_secret()
        service_hash = broker.hash_password(service_password)
        users = {broker.service_user(s, i): service_hash for s in broker.SERVICES
                 for i in range(broker.MAX_SERVICE_INSTANCES)}
        users |= {d.id: hashed for d in news}
        city.start_servers(users)
        city.start_services(service_password)
        city.wait_until_ready()
        result["setup_s"] = round(time.monotonic() - t0, 1)
        influx = InfluxQL(city.influxd.url, DB, timeout_s=60)

        # the fleet first (fork before this process starts threads of its own), then the probes
        seconds = args.minutes * 60
        for fleet in split_fleet(specs, password, city.mosquitto.port, args.processes):
            proc = multiprocessing.get_context("fork").Process(
                target=fleet_process, args=(fleet, scenario, args.duty_cycle, seconds, results), daemon=True)
            proc.start()
            fleet_procs.append(proc)
        fleet_start = time.monotonic()
        idle_rss = proc_rss_mb(city.procs["analytics"].pid)  # the engine before its first reading
        probes = Probes(city.mosquitto.port, password, InfluxQL(city.influxd.url, DB, timeout_s=30)).start()
        pids = {"mosquitto": city.mosquitto.proc.pid, "influxd": city.influxd.proc.pid} | \
            {name: proc.pid for name, proc in city.procs.items()} | \
            {f"fleet-{i}": proc.pid for i, proc in enumerate(fleet_procs)} | {"bench (probes)": os.getpid()}

        # warm-up, then the steady window; stopped early if the engine outgrows --max-analytics-gb
        worker_lag_max, rss_peak, rss_samples = 0.0, 0.0, []
        analytics_pid = city.procs["analytics"].pid

        def over_memory() -> bool:
            rss = proc_rss_mb(analytics_pid)
            if rss <= args.max_analytics_gb * 1024:
                return False
            result["stopped_early"] = (f"analytics RSS {rss:,.0f} MB > --max-analytics-gb {args.max_analytics_gb} "
                                       f"at {time.monotonic() - fleet_start:.0f} s of the fleet's run")
            for proc in fleet_procs:
                proc.terminate()  # the fleet stops with its goodbyes; what was sent is still counted
            return True

        while time.monotonic() - fleet_start < args.warmup_s and not over_memory():
            time.sleep(1.0)
            city.check_alive()
        window_start, load_start = time.time(), os.getloadavg()
        cpu_start = {name: proc_cpu_s(pid) for name, pid in pids.items()}
        while time.monotonic() - fleet_start < seconds and "stopped_early" not in result and not over_memory():
            time.sleep(1.0)
            city.check_alive()
            rss = proc_rss_mb(analytics_pid)
            rss_peak = max(rss_peak, rss)
            rss_samples.append(rss)
            worker_lag_max = max([worker_lag_max] + [m.get("ingest_lag_seconds", 0.0) for m in city.ingest_metrics()])
        window_end, load_end = time.time(), os.getloadavg()
        wall = window_end - window_start
        result["cpu_cores"] = {name: round((proc_cpu_s(pid) - cpu_start[name]) / wall, 3) for name, pid in pids.items()}
        result["load_average"] = {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]}
        result["window_s"] = round(wall, 1)
        result["analytics_rss_mb"] = {"idle": round(idle_rss, 1), "peak_polled": round(rss_peak, 1),
                                      "median": round(quantile(rss_samples, 0.5), 1),
                                      "vm_hwm": round(proc_rss_mb(analytics_pid, "VmHWM"), 1)}
        probes.close()
        probe_lags = [lag for seen, lag in probes.lags if window_start <= seen <= window_end]
        result["ingest_lag_s"] = {"probe_p50": round(quantile(probe_lags, 0.5), 2),
                                  "probe_p99": round(quantile(probe_lags, 0.99), 2),
                                  "probe_max": round(max(probe_lags, default=float("nan")), 2),
                                  "probe_samples": len(probe_lags), "worker_gauge_max": round(worker_lag_max, 2)}

        # the fleet's stop (its goodbyes send what each device holds), then the drain
        summaries = []
        for _ in fleet_procs:
            summaries.append(results.get(timeout=STOP_BOUND_S))
        for proc in fleet_procs:
            proc.join(30)
        sent = sum(s["readings_sent"] for s in summaries) + len(probes.sent)
        taken = sum(s["readings"] for s in summaries) + len(probes.sent)
        drain_start, stored = time.monotonic(), -1
        while time.monotonic() - drain_start < args.drain_s:
            city.check_alive()
            stored = stored_readings(influx)
            if stored >= sent:
                break
            time.sleep(5.0)
        result["drain_s"] = round(time.monotonic() - drain_start, 1)
        metrics = city.ingest_metrics()
        rejected = {k.split(":", 1)[1]: int(sum(m.get(k, 0) for m in metrics))
                    for k in sorted({k for m in metrics for k in m if k.startswith("ingest_rejected_total:")})}
        result["readings"] = {"taken": taken, "sent": sent, "held_at_stop": taken - sent, "stored": stored,
                              "lost": sent - stored, "probe_stored": probe_readings(influx),
                              "messages": sum(s["messages"] for s in summaries),
                              "malformed_sent": sum(s["malformed"] for s in summaries),
                              "connect_failures": sum(s["connect_failures"] for s in summaries),
                              "ingest_received": int(sum(m.get("ingest_received_total", 0) for m in metrics)),
                              "ingest_rejected": rejected}

        # the engine's figures: its stats points around the window, its checkpoints
        points = stats_points(influx, "analytics_stats")
        before = [p for p in points if point_time_s(p) <= window_start]
        inside = [p for p in points if point_time_s(p) <= window_end]
        first, last = (before[-1] if before else (points[0] if points else {})), (inside[-1] if inside else {})
        window_points = [p for p in points if window_start < point_time_s(p) <= window_end]
        result["analytics"] = {
            "lag_p50_s": histogram_quantile(first, last, "lag", 0.5),
            "lag_p99_s": histogram_quantile(first, last, "lag", 0.99),
            "wait_p50_s": histogram_quantile(first, last, "wait", 0.5),
            "wait_p99_s": histogram_quantile(first, last, "wait", 0.99),
            "lag_max_s": max((p.get("lag_max_s") or 0 for p in window_points), default=float("nan")),
            "wait_max_s": max((p.get("wait_max_s") or 0 for p in window_points), default=float("nan")),
            "scored_messages": (last.get("lag_count") or 0) - (first.get("lag_count") or 0),
            "series": int(last.get("series") or 0),
            "longest_pass_ms": max((p.get("pass_ms_max") or 0 for p in window_points), default=float("nan")),
            "inbox_max": max((p.get("inbox") or 0 for p in window_points), default=float("nan")),
            "errors": int(last.get("errors") or 0), "rebuilds_waiting": int(last.get("rebuilds_waiting") or 0)}
        series = result["analytics"]["series"]
        result["analytics_rss_mb"]["kb_per_series"] = round(rss_peak * 1024 / series, 1) if series else None
        # what a series adds: the peak less the engine before its first reading (Python, numpy, numba, the registry)
        result["analytics_rss_mb"]["kb_per_series_above_idle"] = \
            round((rss_peak - idle_rss) * 1024 / series, 1) if series else None
        result["checkpoints"] = [
            {"at_s": round(point_time_s(p) - window_start, 1),
             "in_window": window_start <= point_time_s(p) <= window_end,
             "snapshot_ms": p.get("snapshot_ms"), "save_ms": p.get("save_ms"),
             "size_mb": round((p.get("size_bytes") or 0) / 1e6, 1),
             "written_mb": round((p.get("written_bytes") or 0) / 1e6, 1), "passes_during": p.get("passes_during"),
             "longest_pass_ms": p.get("longest_pass_ms")}
            for p in stats_points(influx, "analytics_checkpoint")]
        result["analytics_errors_in_log"] = city.log_tail("analytics", 10_000_000).count("Traceback")
    finally:
        if probes is not None:
            probes.close()
        for proc in fleet_procs:
            if proc.is_alive():
                proc.terminate()  # its own SIGTERM handler stops the fleet with goodbyes
        deadline = time.monotonic() + 60
        while any(proc.is_alive() for proc in fleet_procs) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):  # a child exits only once its summary has left: take it
                results.get(timeout=1)
        for proc in fleet_procs:
            if proc.is_alive():
                proc.kill()
            proc.join(10)
        killed = city.stop()
        city.kill_all()
        if killed:
            result["killed_at_stop"] = killed
        if args.keep_data:
            result["data_dir"] = str(data)
        else:
            shutil.rmtree(data, ignore_errors=True)
    result["wall_s"] = round(time.time() - started, 1)
    return result


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(r: dict) -> None:
    rd, lag, an, rss = r["readings"], r["ingest_lag_s"], r["analytics"], r["analytics_rss_mb"]
    print(f"city scale: {r['devices']:,} devices, a reading a minute, duty cycle K={r['duty_cycle']} "
          f"({r['processes']} fleet process(es)), {r['ingest_workers']} ingest worker(s), 1 analytics engine; "
          f"{r['minutes']} min run, steady window {r['window_s']:.0f} s after a {r['warmup_s']:.0f} s warm-up; "
          f"{r['cpus']} CPUs; load average {r['load_average']['start'][0]:.2f} -> {r['load_average']['end'][0]:.2f}")
    rows = [
        ("readings taken / sent (acked by broker)", f"{rd['taken']:,} / {rd['sent']:,} "
                                                    f"({rd['held_at_stop']:,} held by devices at stop)"),
        ("readings stored in InfluxDB", f"{rd['stored']:,} (drain {r['drain_s']} s)"),
        ("readings lost (sent - stored), target 0", f"{rd['lost']:,}"),
        ("ingest rejected (by reason)", json.dumps(rd["ingest_rejected"]) or "{}"),
        ("messages / malformed / failed connects", f"{rd['messages']:,} / {rd['malformed_sent']:,} / "
                                                   f"{rd['connect_failures']:,}"),
        ("ingest lag p50 / p99 / max (probes), target p99 < 5 s",
         f"{fmt(lag['probe_p50'])} / {fmt(lag['probe_p99'])} / {fmt(lag['probe_max'])} s "
         f"({lag['probe_samples']} probe readings; workers' gauge max {fmt(lag['worker_gauge_max'])} s)"),
        ("analytics lag p50 / p99 (newest reading -> scored), target p99 < 60 s",
         f"<= {fmt(an['lag_p50_s'], 1)} / <= {fmt(an['lag_p99_s'], 1)} s (max {fmt(an['lag_max_s'], 1)} s, "
         f"{an['scored_messages']:,} messages)"),
        ("analytics wait p50 / p99 / max (arrival -> scored, the host's clock)",
         f"<= {fmt(an['wait_p50_s'], 1)} / <= {fmt(an['wait_p99_s'], 1)} / {fmt(an['wait_max_s'], 1)} s"),
        ("analytics longest pass / inbox max", f"{fmt(an['longest_pass_ms'], 0)} ms / {fmt(an['inbox_max'], 0)}"),
        ("analytics RSS peak / VmHWM / median, target < 4 GB",
         f"{rss['peak_polled']:,.0f} / {rss['vm_hwm']:,.0f} / {rss['median']:,.0f} MB"),
        ("analytics RSS before the first reading", f"{rss['idle']:,.0f} MB"),
        ("analytics series / KB per series (above idle), target < 40",
         f"{an['series']:,} / {fmt(rss['kb_per_series'], 1)} ({fmt(rss['kb_per_series_above_idle'], 1)})"),
        ("analytics errors (counter / tracebacks in log)", f"{an['errors']} / {r['analytics_errors_in_log']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("  checkpoints (target: saved in < 10 s, no pause in scoring):")
    print(f"    {'at s':>7} {'window':>6} {'snapshot ms':>11} {'save ms':>9} {'size MB':>8} {'written MB':>10} "
          f"{'passes':>6} {'longest pass ms':>15}")
    for c in r["checkpoints"]:
        print(f"    {c['at_s']:7.0f} {'yes' if c['in_window'] else 'no':>6} {fmt(c['snapshot_ms'], 0):>11} "
              f"{fmt(c['save_ms'], 0):>9} {c['size_mb']:8.1f} {c['written_mb']:10.1f} {fmt(c['passes_during']):>6} "
              f"{fmt(c['longest_pass_ms'], 0):>15}")
    print("  CPU over the window, cores: " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_cores"].items())
          + f" (sum {sum(r['cpu_cores'].values()):.2f})")
    if "stopped_early" in r:
        print(f"  STOPPED EARLY: {r['stopped_early']}")
    print(f"  set-up {r['setup_s']} s (registry {r['register_s']} s), whole run {r['wall_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=4.0, help="how long the fleet runs (warm-up included)")
    parser.add_argument("--duty-cycle", type=int, default=10, metavar="K", help="a wake every K readings")
    parser.add_argument("--processes", type=int, choices=(1, 2), default=2, help="fleet processes")
    parser.add_argument("--ingest-workers", type=int, default=1, help="ingest workers sharing the subscription")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="not measured, from the fleet's start (default: K minutes + 30 s, every device has woken "
                             "and every series is built, or half the run if that is shorter)")
    parser.add_argument("--checkpoint-s", type=float, default=120.0, help="the engine's state saved this often")
    parser.add_argument("--drain-s", type=float, default=180.0, help="at most this long for the stored count")
    parser.add_argument("--max-analytics-gb", type=float, default=5.0,
                        help="stop the run early (and say so) if the engine's resident memory passes this")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary folder (logs, state, data)")
    parser.add_argument("--json", action="store_true", help="the result as one JSON object")
    args = parser.parse_args()
    if not 1 <= args.devices <= 200_000 or not 1 <= args.minutes <= 60 or not 1 <= args.ingest_workers <= 8:
        parser.error("--devices 1..200000, --minutes 1..60, --ingest-workers 1..8 (bounded)")
    if args.warmup_s is None:
        args.warmup_s = min(args.duty_cycle * 60 + 30.0, args.minutes * 30)
    if not 1 <= args.duty_cycle <= 60 or not 0 <= args.warmup_s < args.minutes * 60:
        parser.error("--duty-cycle 1..60; --warmup-s shorter than the run")
    if not 10 <= args.checkpoint_s <= 3600 or not 0 <= args.drain_s <= 1800:
        parser.error("--checkpoint-s 10..3600, --drain-s 0..1800")
    bound_s = SETUP_BOUND_S + args.minutes * 60 + STOP_BOUND_S + args.drain_s + 300  # then everything is stopped
    signal.signal(signal.SIGTERM, _raise_bounded)
    signal.signal(signal.SIGINT, _raise_bounded)  # also when started in the background, where SIGINT is ignored
    signal.signal(signal.SIGALRM, _raise_bounded)
    signal.alarm(int(bound_s))
    try:
        result = run(args)
    except Bounded as exc:
        raise SystemExit(f"stopped ({exc}): every child process was stopped") from None
    finally:
        signal.alarm(0)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
