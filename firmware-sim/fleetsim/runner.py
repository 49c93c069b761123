"""The fleet runner: thousands of devices in one asyncio process.

Each device is the firmware's own state machine (edge.agent.Agent: sample,
ready, next_message, apply_config, backoff) with an asyncio MQTT connection
of its own instead of the board's blocking socket. Optionally it first
replays `history_hours` of history faster than real time (original
timestamps, flagged hist so no live alarm fires), then runs live at the
scenario interval until stopped or `duration_s` has passed.

When the fleet file names `networks_from_ms`, the meters of the scenario's DMAs and feeders
(fleetsim/networks.py) read the network models instead: each first uploads its data logger (one reading a
model step from networks_from_ms, flagged hist, as fast as the broker takes it), then reads live every
`networks.interval_s`.
"""

import asyncio
import random
import resource
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.agent import BACKOFF_MIN_MS, FW_VERSION, HIST_BATCH, Agent, link_failure
from edge.clock import ticks_ms
from fleetsim.device import SimDevice
from fleetsim.faults import Fault, write_labels
from fleetsim.fleetfile import Fleet
from fleetsim.generate import build_devices
from fleetsim.mpy import MicroPythonDevices, pick
from fleetsim.mqtt_async import AsyncMQTT, tls_context
from fleetsim.networks import NetworkMeter, network_devices

MALFORMED_PAYLOADS = (  # what a broken device sends: each one a different contract violation
    b'{"v":1,"seq":3,"fw":"x","r":[[17960',
    b'{"v":1,"seq":"three","fw":"x","r":[[1796000000000,{"flow_lps":1.0}]]}',
    b'{"v":9,"seq":3,"fw":"x","r":[[1796000000000,{"flow_lps":1.0}]]}',
    b"\xff\xfe\x00garbage",
    b'{"v":1,"seq":3,"fw":"x","r":[]}',
)


WAKES_AT_ONCE = 500  # duty-cycled devices with a connection open at one moment, at most


def utc_now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class RunOptions:
    seed: int = 1
    speed: float = 3600.0  # history replay: simulated seconds per wall second; 0 = as fast as the broker takes
    duration_s: float | None = None  # None: until stopped
    history_hours: float = 0.0
    history_interval_s: float | None = None  # default: max(scenario interval, 60 s)
    interval_s: float | None = None  # default: the scenario's
    labels_path: Path | None = None
    connect_spread_s: float = 5.0  # devices connect spread over this long, not all at once
    report_every_s: float = 5.0
    verbose: bool = True  # print a status line every report_every_s
    micropython: int = 0  # this many devices run as real MicroPython processes instead
    status_interval_ms: int = 300_000  # each device's health status, this often
    # Duty-cycled devices (battery meters on NB-IoT/LTE-M do this): wake, connect with the device's own
    # credentials, publish what is buffered, disconnect. A fleet larger than the broker's file-descriptor
    # limit can then run: only the devices awake at this moment hold a connection.
    duty_cycle: bool = False
    readings_per_wake: int = 1  # duty-cycled: wake every this many readings (the others wait in the buffer)


@dataclass
class Stats:
    messages: int = 0
    readings: int = 0
    readings_sent: int = 0  # readings in messages the broker acknowledged (readings taken minus those still held)
    history_readings: int = 0
    malformed: int = 0
    connects: int = 0
    connect_failures: int = 0
    connected: int = 0
    history_done: int = 0
    started: float = field(default_factory=time.monotonic)
    # Live publish lag, s: from the reading's tick to the broker's PUBACK (the last 200,000, bounded memory).
    lags: deque = field(default_factory=lambda: deque(maxlen=200_000))

    def line(self, devices: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"fleet: {self.connected}/{devices} connected, {self.messages} messages, {self.readings} readings "
                f"({self.readings / elapsed:.0f}/s), {self.history_readings} history, {self.malformed} malformed, "
                f"{self.connect_failures} failed connects")


class PresetSource:
    """The agent's sensor: the runner puts the simulated values in before each sample.

    Water meters in the field run on batteries (3.6 V lithium cells), so they report one.
    """

    def __init__(self, rng: random.Random, kind: str):
        self.values: dict[str, float] = {}
        self.rng = rng
        self.battery_v = 3.3 + rng.random() * 0.35 if kind == "water" else None

    def read(self) -> tuple[dict[str, float], int]:
        return self.values, 0

    def health(self) -> dict[str, float]:
        health: dict[str, float] = {"rssi_dbm": -50 - int(self.rng.random() * 45)}
        if self.battery_v is not None:
            self.battery_v = max(2.8, self.battery_v - 0.0001)
            health["battery_v"] = round(self.battery_v, 3)
        return health


class DeviceRunner:
    """One simulated device: its model, its agent, its connection."""

    def __init__(self, runner: "FleetRunner", sim: SimDevice, password: str):
        self.runner = runner
        self.sim = sim
        self.rng = random.Random(f"{runner.options.seed}:net:{sim.id}")
        self.source = PresetSource(self.rng, sim.kind)
        fleet = runner.fleet
        if runner.tls is not None:
            self.client = AsyncMQTT(sim.id, fleet.host, fleet.tls_port, sim.id, password, keepalive_s=60,
                                    tls=runner.tls, server_hostname=fleet.server_hostname
                                    or ("localhost" if fleet.host == "127.0.0.1" else None))
        else:
            self.client = AsyncMQTT(sim.id, fleet.host, fleet.port, sim.id, password, keepalive_s=60)
        interval_ms = sim.interval_ms if isinstance(sim, NetworkMeter) else runner.interval_ms
        config = {"device_id": sim.id, "fw": "sim-" + FW_VERSION, "interval_ms": interval_ms,
                  "batch_size": 1, "buffer_capacity": 50_000, "status_interval_ms": runner.options.status_interval_ms}
        if runner.options.duty_cycle:
            # 100,000 devices x the 16 KB default is 1.6 GB of message buffers; a board's is small too, and a
            # backlog that does not fit is sent in smaller batches (the agent halves the batch).
            config["message_bytes"] = 4096
            config["batch_size"] = runner.options.readings_per_wake  # the K readings of a wake, one message
        self.agent = Agent(config, self.source, client=self.client)
        self.next_retry = 0.0
        self.malformed_due = False
        self.inflight_readings = 0  # the readings of the agent's message in flight
        # Duty-cycled: each device at its own phase, so the fleet's wakes are spread over the K minutes.
        self.ticks = self.rng.randrange(runner.options.readings_per_wake) if runner.options.duty_cycle else 0

    # ------------------------------------------------------------ connection

    async def try_connect(self) -> bool:
        if self.agent.connected:
            return True
        loop = asyncio.get_running_loop()
        if loop.time() < self.next_retry:
            return False
        try:
            await self.client.connect(clean_session=True)
            await self.client.publish(self.agent.status_topic, self.agent.status(), True, 1)
            self.agent.status_sent = ticks_ms()
            await self.client.subscribe(self.agent.config_topic, 1)
        except OSError:
            self.runner.stats.connect_failures += 1
            self.lost()
            return False
        self.agent.connected = True
        self.agent.backoff_ms = BACKOFF_MIN_MS
        self.runner.stats.connects += 1
        self.runner.stats.connected += 1
        return True

    def lost(self) -> None:
        if self.agent.connected:
            self.runner.stats.connected -= 1
        self.agent.connected = False
        self.client.close()
        self.next_retry = asyncio.get_running_loop().time() + self.agent.retry_delay_ms() / 1000

    async def flush(self, force: bool = False) -> None:
        """Publish what the agent has ready (everything when force), QoS 1, one message at a time."""
        agent = self.agent
        while agent.connected and (agent.ready() or (force and len(agent.buffer))):
            agent.urgent = agent.urgent or force
            held = len(agent.buffer)
            payload = agent.next_message()
            if held > len(agent.buffer):  # a new message: the readings it took
                self.inflight_readings = held - len(agent.buffer)
            try:
                await self.client.publish(agent.telemetry_topic, payload, False, 1)
            except OSError:
                self.lost()  # the message stays in flight and goes first after the reconnect
                return
            agent.inflight = None
            agent.published += 1
            self.runner.stats.messages += 1
            self.runner.stats.readings_sent += self.inflight_readings
            self.inflight_readings = 0
        if self.malformed_due and agent.connected:
            self.malformed_due = False
            try:
                await self.client.publish(agent.telemetry_topic, self.rng.choice(MALFORMED_PAYLOADS), False, 1)
                self.runner.stats.malformed += 1
            except OSError:
                self.lost()

    async def keep_alive(self) -> None:
        """A ping when the link is idle, and the periodic health status when it is due."""
        if self.agent.connected:
            try:
                if self.agent.status_due(ticks_ms()):
                    self.agent.status_sent = ticks_ms()
                    await self.client.publish(self.agent.status_topic, self.agent.status(), True, 1)
                await self.client.ping_if_idle()
            except OSError:
                self.lost()

    # ------------------------------------------------------------ sampling

    def sample(self, t_ms: int, hist: bool | None) -> None:
        reading = self.sim.reading(t_ms)
        if reading is None:
            return  # silent
        reported_ms, values, how = reading
        if how == "malformed":
            self.malformed_due = True
            return
        self.source.values = values
        self.agent.sample(reported_ms, hist)
        self.runner.stats.readings += 1
        if hist:
            self.runner.stats.history_readings += 1

    async def replay_history(self) -> None:
        """Readings from history start to live start, paced by the speed, 60 a message."""
        runner = self.runner
        loop = asyncio.get_running_loop()
        t_ms, step_ms = runner.hist_start_ms, runner.history_interval_ms
        while t_ms < runner.live_start_ms and not runner.stop_requested:
            virtual_now = runner.virtual_now_ms()
            if t_ms > virtual_now:
                # Ahead of the simulated clock: wait for a batch to be due (or at most a second).
                batch_due = t_ms + step_ms * (HIST_BATCH - len(self.agent.buffer))
                wait_s = min(runner.wall_s_until(batch_due), 1.0)
                await asyncio.sleep(max(wait_s, runner.wall_s_until(t_ms), 0.001))
                await self.keep_alive()  # a slow replay may go minutes between messages
                continue
            while t_ms <= virtual_now and t_ms < runner.live_start_ms and len(self.agent.buffer) < HIST_BATCH:
                self.sample(t_ms, True)
                t_ms += step_ms
            if await self.try_connect():
                await self.flush()
            elif len(self.agent.buffer) >= HIST_BATCH:
                await asyncio.sleep(max(0.01, self.next_retry - loop.time()))
        while (len(self.agent.buffer) or self.agent.inflight is not None) and not runner.stop_requested:
            if await self.try_connect():
                await self.flush(force=True)
            else:
                await asyncio.sleep(max(0.01, self.next_retry - loop.time()))
        runner.stats.history_done += 1

    async def upload_log(self, sim: NetworkMeter) -> None:
        """A network meter's data logger: every model step from its history start to live start, as history,
        HIST_BATCH readings a message, as fast as the broker acknowledges (no pacing: the log is already there)."""
        runner, loop = self.runner, asyncio.get_running_loop()
        t_ms = sim.history_start_ms
        while (t_ms < runner.live_start_ms or len(self.agent.buffer) or self.agent.inflight is not None) \
                and not runner.stop_requested:
            while t_ms < runner.live_start_ms and len(self.agent.buffer) < HIST_BATCH:
                self.sample(t_ms, True)
                t_ms += sim.history_step_ms
            if await self.try_connect():
                await self.flush(force=True)
            else:
                await asyncio.sleep(max(0.01, self.next_retry - loop.time()))
        runner.stats.history_done += 1

    async def live(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while not self.runner.stop_requested:  # besides cancellation, which a racing await can lose
            if self.runner.options.duty_cycle:
                self.ticks += 1
                if self.ticks % self.runner.options.readings_per_wake:
                    self.sample(utc_now_ms(), False)  # asleep: a live reading, sent at the next wake
                else:
                    await self.wake()
            else:
                await self.try_connect()
                self.sample(utc_now_ms(), None)
                await self.flush()
                await self.keep_alive()
            if self.agent.inflight is None and not len(self.agent.buffer):
                self.runner.stats.lags.append(loop.time() - next_tick)
            next_tick += self.agent.interval_ms / 1000
            now = loop.time()
            if next_tick < now:
                next_tick = now + self.agent.interval_ms / 1000  # fell behind: skip, do not burst
            await asyncio.sleep(next_tick - now)

    async def wake(self) -> None:
        """One duty cycle: connect, take the reading, publish everything buffered, the status when it is
        due, disconnect cleanly (no last will). A failed connect leaves the reading buffered (flagged as
        taken offline, as on the board) for the next wake."""
        # At most WAKES_AT_ONCE devices awake: a starved process then runs late instead of opening
        # connections it cannot serve until the broker runs out of file descriptors (seen at 50k and 100k).
        async with self.runner.wake_slots:
            await self._wake()

    async def _wake(self) -> None:
        if asyncio.get_running_loop().time() < self.next_retry:
            self.sample(utc_now_ms(), None)
            return
        try:
            await self.client.connect(clean_session=True)
        except OSError as exc:
            self.agent.link_error = link_failure(exc)
            self.runner.stats.connect_failures += 1
            self.lost()
            self.sample(utc_now_ms(), None)
            return
        self.agent.connected = True
        self.agent.backoff_ms = BACKOFF_MIN_MS
        self.runner.stats.connects += 1
        self.runner.stats.connected += 1
        self.sample(utc_now_ms(), None)
        await self.flush(force=True)
        if self.agent.connected and (self.agent.status_sent == 0 or self.agent.status_due(ticks_ms())):
            try:
                self.agent.status_sent = ticks_ms()
                await self.client.publish(self.agent.status_topic, self.agent.status(), True, 1)
            except OSError:
                self.lost()
        if self.agent.connected:
            self.agent.connected = False
            self.runner.stats.connected -= 1
            try:
                await self.client.disconnect()
            except OSError:
                self.client.close()

    async def run(self) -> None:
        await asyncio.sleep(self.rng.random() * self.runner.options.connect_spread_s)
        if isinstance(self.sim, NetworkMeter):
            await self.upload_log(self.sim)
        elif self.runner.hist_start_ms < self.runner.live_start_ms:
            await self.replay_history()
        await self.live()

    async def goodbye(self) -> None:
        """A clean disconnect after an offline status, so the last will does not fire."""
        if self.runner.options.duty_cycle and not self.agent.connected and len(self.agent.buffer):
            await self.wake()  # a duty-cycled device sends what it holds before it stops
        if not self.agent.connected:
            self.client.close()
            return
        try:
            await self.flush(force=True)
            await self.client.publish(self.agent.status_topic, self.agent.offline_status(), True, 1)
            await self.client.disconnect()
        except OSError:
            self.client.close()
        self.agent.connected = False
        self.runner.stats.connected -= 1


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft file-descriptor limit towards `wanted` (never past the hard limit, which
    only a privileged parent can lift); returns the limit now in force. Children (a broker started
    from here) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class FleetRunner:
    def __init__(self, fleet: Fleet, scenario: dict[str, Any], options: RunOptions):
        self.fleet = fleet
        self.options = options
        interval_s = options.interval_s or scenario["interval_s"]
        self.scenario = dict(scenario, interval_s=interval_s)
        self.interval_ms = int(interval_s * 1000)
        self.history_interval_ms = int((options.history_interval_s or max(interval_s, 60)) * 1000)
        self.live_start_ms = utc_now_ms()
        self.hist_start_ms = self.live_start_ms - int(options.history_hours * 3_600_000)
        horizon_s = options.duration_s or scenario.get("fault_horizon_hours", 24) * 3600
        self.end_ms = self.live_start_ms + int(horizon_s * 1000)
        mpy_devices = pick(fleet.devices, options.micropython)
        self.micropython = MicroPythonDevices(mpy_devices, fleet.host, fleet.port, self.interval_ms, fleet.tls_port,
                                              fleet.ca_file)
        self.tls = tls_context(fleet.ca_file) if fleet.tls_port and fleet.ca_file else None
        taken = {d["id"] for d in mpy_devices}
        simulated = [d for d in fleet.devices if d["id"] not in taken]
        meters = network_devices(self.scenario, simulated, fleet.networks_from_ms) \
            if fleet.networks_from_ms is not None else []
        metered = {m.id for m in meters}
        self.sims, self.faults = build_devices(self.scenario, [d for d in simulated if d["id"] not in metered],
                                               options.seed, self.hist_start_ms, self.end_ms)
        self.sims += meters
        self.stats = Stats()
        self.wall0 = time.monotonic()
        self.stopping: asyncio.Event | None = None
        self.stop_requested = False
        self.devices: list[DeviceRunner] = []

    # ------------------------------------------------------------ the simulated clock

    def virtual_now_ms(self) -> int:
        """Where the history replay has got to; live time once it has caught up."""
        if self.options.speed <= 0:
            return self.live_start_ms
        elapsed_ms = (time.monotonic() - self.wall0) * 1000 * self.options.speed
        return min(self.live_start_ms, self.hist_start_ms + int(elapsed_ms))

    def wall_s_until(self, t_ms: int) -> float:
        if self.options.speed <= 0:
            return 0.0
        return self.wall0 + (t_ms - self.hist_start_ms) / 1000 / self.options.speed - time.monotonic()

    def simulated_until_ms(self) -> int:
        """The true time the fleet has simulated up to (labels are clipped to it)."""
        if self.stats.history_done < len(self.devices):
            return self.virtual_now_ms()
        return utc_now_ms()

    # ------------------------------------------------------------ running

    def request_stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()

    def faults_injected(self) -> list[Fault]:
        return self.faults

    async def run(self) -> Stats:
        self.stopping = asyncio.Event()
        self.wake_slots = asyncio.Semaphore(WAKES_AT_ONCE)
        self.stop_requested = False
        self.wall0 = time.monotonic()
        self.stats = Stats()
        passwords = {d["id"]: d["password"] for d in self.fleet.devices}
        self.devices = [DeviceRunner(self, sim, passwords[sim.id]) for sim in self.sims]
        tasks = [asyncio.create_task(d.run()) for d in self.devices]
        reporter = asyncio.create_task(self._report())
        try:
            if self.micropython.devices:
                self.micropython.start()
            async with asyncio.timeout(self.options.duration_s):
                await self.stopping.wait()
        except TimeoutError:
            pass
        finally:
            self.stop_requested = True
            reporter.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.wait([*tasks, reporter], timeout=15)  # bounded: a stop never hangs on one device
            goodbyes = [asyncio.create_task(d.goodbye()) for d in self.devices]
            if goodbyes:
                await asyncio.wait(goodbyes, timeout=30)
            self.micropython.stop()
            self._write_labels()
            if self.options.verbose:
                print(self.stats.line(len(self.devices)), flush=True)
        return self.stats

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.options.report_every_s)
            if self.options.verbose:
                print(self.stats.line(len(self.devices)), flush=True)
            self._write_labels()

    def _write_labels(self) -> None:
        if self.options.labels_path is not None:
            write_labels(self.options.labels_path, self.faults, self.simulated_until_ms())

    def summary(self) -> dict[str, Any]:
        return {"devices": len(self.devices), "micropython": len(self.micropython.devices),
                "messages": self.stats.messages, "readings": self.stats.readings,
                "readings_sent": self.stats.readings_sent,
                "history_readings": self.stats.history_readings, "history_done": self.stats.history_done,
                "malformed": self.stats.malformed, "connects": self.stats.connects,
                "connect_failures": self.stats.connect_failures, "faults": len(self.faults)}
