"""A small board (the real `micropython` binary with a 96 KB heap) through a
3-hour broker outage at one reading every 10 s, then a power cut (kill -9)
half way through the backfill and a restart, with the config `city device
flash` writes (a 30-sample RAM ring and a spool file on flash).

Time is accelerated with the agent's own clock: every reading advances the
device's UTC clock by exactly 10 s, starting 4 hours in the past, so 1,080
readings make the 3 hours and each timestamp names its reading. The firmware is compiled with mpy-cross,
as `city device flash` writes it (compiling from source needs ~40 KB more). What must
hold: every reading of the outage arrives with its original timestamp and
flagged history; none is lost beyond the RAM ring at the cut (the test says
how many); (boot, seq) never repeats, so ingest refuses nothing; no
MemoryError kills the agent."""

import json
import signal
import subprocess
import time
from pathlib import Path

from edge import contract
from telemetry_cli.flash import RING_SAMPLES, compile_firmware
from telemetry_shared import broker
from tests.conftest import wait_for
from tests.edge.mqtt_watch import Watcher, run_micropython

STEP_MS = 10_000  # one reading every 10 s, on the device's clock
OUTAGE_READINGS = 3 * 3600 * 1000 // STEP_MS  # 1,080
HEAP = "96k"

# The agent with a clock that moves 10 s per reading (the firmware's own code otherwise).
RUN = """
import sys
import json
import edge.agent
from edge.agent import Agent
from edge.hw.synthetic import SyntheticSource
config = json.load(open("config.json"))
base = int(sys.argv[1])
source = SyntheticSource("water")
taken = [0]
def read():
    taken[0] += 1
    print("taken", taken[0])  # for the test: how many readings this boot took before the cut
    return SyntheticSource.read(source)
source.read = read
edge.agent.utc_ms = lambda: base + taken[0] * STEP_MS
agent = Agent(config, source)
print("ring", agent.buffer.capacity, "message bytes", len(agent.out.buf), "boot", agent.boot)
agent.run()
""".replace("STEP_MS", str(STEP_MS))


def start(micropython_bin: str, flash: Path, base_ms: int, log_name: str) -> subprocess.Popen:
    return run_micropython(micropython_bin, flash, (str(base_ms),), heap=HEAP, log_name=log_name)


def spooled(flash: Path) -> int:
    try:
        return sum(1 for line in (flash / "spool.jsonl").read_text().splitlines() if line)
    except OSError:
        return 0


def test_small_board_survives_a_long_outage_and_a_power_cut_in_the_backfill(micropython_bin, tmp_path,
                                                                             make_mosquitto):
    edge_dir = tmp_path / "board"
    compile_firmware(edge_dir)  # as `city device flash` writes it: compiled, no sources
    secret = broker.new_secret()
    device = "wtr-small-0001"
    users = {device: broker.hash_password(secret)}
    mosquitto = make_mosquitto(users=users, autosave_interval_s=1)
    config = {"device_id": device, "kind": "water", "server": "127.0.0.1", "port": mosquitto.port, "tls": False,
              "password": secret, "interval_ms": 15, "batch_size": 1, "keepalive_s": 5, "backoff_max_ms": 500,
              "buffer_capacity": RING_SAMPLES, "spool_path": "spool.jsonl", "spool_capacity": 8640}
    (edge_dir / "config.json").write_text(json.dumps(config))
    (edge_dir / "run.py").write_text(RUN)
    base_a = int(time.time() * 1000) - 20 * 3600 * 1000  # room for both boots' readings before now
    watch = Watcher(mosquitto.port, [contract.telemetry_topic(device)]).start()
    agents = [start(micropython_bin, edge_dir, base_a, "agent-a.log")]
    try:
        wait_for(lambda: len(watch.telemetry()) >= 10, timeout_s=20)  # live, connected
        time.sleep(1.5)  # the broker's snapshot (every 1 s) holds the watcher's session
        mosquitto.kill()
        # The outage: 3 hours in the spool on "flash" (the RAM ring holds a few more, the newest).
        wait_for(lambda: spooled(edge_dir) >= OUTAGE_READINGS, timeout_s=120, interval_s=0.2)
        mosquitto.start()
        watch_hist = lambda: sum(len(a.body["r"]) for a in watch.telemetry() if a.body.get("hist"))  # noqa: E731
        wait_for(lambda: watch_hist() >= OUTAGE_READINGS // 2, timeout_s=120, interval_s=0.05)
        agents[0].send_signal(signal.SIGKILL)  # the power cut, half way through the backfill
        agents[0].wait(5)
        cut_at = watch_hist()
        # The device comes back: a new boot, its clock further on, the spool replayed from the start.
        base_b = base_a + (_taken(edge_dir / "agent-a.log") + 10) * STEP_MS
        agents.append(start(micropython_bin, edge_dir, base_b, "agent-b.log"))
        wait_for(lambda: any(a.body.get("boot") != agents_boot(watch, 0) and not a.body.get("hist")
                             for a in watch.telemetry()[1:]) and spooled(edge_dir) == 0, timeout_s=120)
        time.sleep(0.5)
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait(5)
        watch.stop()
    logs = "".join((edge_dir / f"agent-{x}.log").read_text() for x in "ab")
    assert "Traceback" not in logs and "MemoryError" not in logs.replace("did not fit", ""), logs[-3000:]
    arrivals = watch.telemetry()
    stored: dict[int, bool] = {}  # t_ms -> hist, as ingest would store it (a resend overwrites the same point)
    names: dict[tuple[int, int], dict] = {}
    for arrival in arrivals:
        body = arrival.body
        batch = contract.validate_telemetry(body, "water", int(time.time() * 1000))
        assert batch.rejects == [] and batch.boot is not None
        # A resend after a lost PUBACK repeats a message exactly (a duplicate ingest drops); a (boot, seq)
        # with other content would be refused as a repeated seq.
        assert names.setdefault((batch.boot, batch.seq), body) == body, "a (boot, seq) reused for other readings"
        for t_ms, _, _ in batch.samples:
            stored[t_ms] = stored.get(t_ms, False) or batch.hist
    taken_a = _taken(edge_dir / "agent-a.log")
    readings_a = [base_a + k * STEP_MS for k in range(1, taken_a + 1)]
    lost = [t for t in readings_a if t not in stored]
    # Lost: only what the RAM ring held at the cut, the newest readings of that boot, never spooled.
    assert len(lost) <= RING_SAMPLES, f"{len(lost)} readings lost, more than the {RING_SAMPLES}-sample ring"
    assert all(t > readings_a[-RING_SAMPLES - 1] for t in lost), "an older (spooled) reading was lost"
    history = [t for t in readings_a if stored.get(t)]
    assert len(history) >= OUTAGE_READINGS, f"only {len(history)} readings flagged history"
    assert history == list(range(history[0], history[-1] + 1, STEP_MS)), "a hole in the outage's readings"
    assert len({a.body["boot"] for a in arrivals}) == 2 and cut_at >= OUTAGE_READINGS // 2
    print(f"small board at {HEAP}: {len(history)} outage readings stored as history, {len(lost)} of {taken_a} lost "
          f"(in the RAM ring at the cut, at most {RING_SAMPLES}), {len(arrivals)} messages")


def _taken(log: Path) -> int:
    """How many readings an agent took before it was stopped (it prints each one)."""
    return int(log.read_text().split("taken ")[-1].split()[0])


def agents_boot(watch: Watcher, index: int) -> int | None:
    arrivals = watch.telemetry()
    return arrivals[index].body.get("boot") if len(arrivals) > index else None

