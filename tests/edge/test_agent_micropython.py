"""The edge agent under the real `micropython` binary against a real Mosquitto:
it publishes, takes a new config live, and survives the broker being killed
with kill -9 and restarted on the same port with no reading lost and the
order kept (RAM ring + spool file, backfill flagged historical)."""

import time

from edge import contract
from telemetry_shared import broker
from tests.edge.mqtt_watch import Watcher, device_config, finish, publish_config, samples_of, start_agent


def test_publishes_birth_telemetry_and_will(micropython_bin, edge_dir, make_mosquitto):
    secret = broker.new_secret()
    mosquitto = make_mosquitto(users={"pwr-kota-0001": broker.hash_password(secret)})
    watch = Watcher(mosquitto.port, [contract.TELEMETRY_SUB, contract.STATUS_SUB]).start()
    try:
        config = device_config("pwr-kota-0001", "power", mosquitto.port, secret, interval_ms=100, batch_size=4,
                               status_interval_ms=1000)
        agent = start_agent(micropython_bin, edge_dir, config, 2500)
        finish(agent, 30)
        time.sleep(0.3)
    finally:
        watch.stop()
    assert agent.returncode == 0, (edge_dir / "agent.log").read_text()
    samples = samples_of(watch.telemetry())
    assert 12 <= len(samples) <= 26  # ~25 samples taken at 100 ms, sent 4 per message
    assert all(not hist for _, hist, _ in samples)
    assert {"voltage_v", "frequency_hz", "energy_kwh"} <= set(samples[0][2])
    seqs = [a.body["seq"] for a in watch.telemetry()]
    assert seqs == list(range(len(seqs)))
    statuses = watch.status()
    assert 3 <= sum(1 for s in statuses if s["state"] == "online") <= 4  # birth, then health every second
    assert statuses[-2]["uptime_s"] >= 1
    birth, goodbye = statuses[0], statuses[-1]
    assert birth["state"] == "online" and birth["fw"] and "uptime_s" in birth and "mem_free" in birth
    assert "rssi_dbm" in birth
    assert goodbye["state"] == "offline"


def test_config_applied_live_and_bad_config_refused(micropython_bin, edge_dir, make_mosquitto):
    secret = broker.new_secret()
    device = "wtr-bb-0002"
    mosquitto = make_mosquitto(users={device: broker.hash_password(secret)})
    watch = Watcher(mosquitto.port, [contract.telemetry_topic(device)]).start()
    try:
        agent = start_agent(micropython_bin, edge_dir, device_config(device, "water", mosquitto.port, secret,
                                                                     interval_ms=200), 7000)
        time.sleep(1.5)
        # An oversized config (40 KB, more than a device's RAM should hold) is skipped unread.
        huge = b'{"v":1,"interval_ms":1000,"pad":"' + b"x" * 40000 + b'"}'
        publish_config(mosquitto.port, contract.config_topic(device), huge)
        time.sleep(0.5)
        # A hostile config is refused and the agent carries on at its old rate.
        publish_config(mosquitto.port, contract.config_topic(device), b'{"v":1,"interval_ms":"fast"}')
        time.sleep(1.0)
        changed_at = time.monotonic()
        publish_config(mosquitto.port, contract.config_topic(device), contract.encode_config(1000))
        finish(agent, 30)
    finally:
        watch.stop()
    log = (edge_dir / "agent.log").read_text()
    assert agent.returncode == 0, log
    assert "config refused" in log
    arrivals = watch.telemetry()
    before = [a for a in arrivals if a.at < changed_at]
    after = [a for a in arrivals if a.at > changed_at + 1.2]
    rate_before = (len(before) - 1) / (before[-1].at - before[0].at)
    rate_after = (len(after) - 1) / (after[-1].at - after[0].at)
    assert 3.5 <= rate_before <= 6.0, rate_before  # every 200 ms
    assert 0.7 <= rate_after <= 1.4, rate_after  # every 1000 ms, after the config


def test_broker_killed_and_restarted_loses_nothing(micropython_bin, edge_dir, make_mosquitto):
    secret = broker.new_secret()
    device = "bld-tt-0003"
    mosquitto = make_mosquitto(users={device: broker.hash_password(secret)}, autosave_interval_s=1)
    watch = Watcher(mosquitto.port, [contract.telemetry_topic(device)]).start()
    interval_ms = 100
    try:
        # A small RAM ring (20) so the outage spills into the spool file on "flash".
        config = device_config(device, "building", mosquitto.port, secret, interval_ms=interval_ms,
                               buffer_capacity=20, spool_path="spool.jsonl", backoff_max_ms=1000)
        agent = start_agent(micropython_bin, edge_dir, config, 9000)
        time.sleep(2.5)  # the broker's snapshot (every 1 s) now holds the subscriber's session
        mosquitto.kill()
        time.sleep(2.5)
        mosquitto.start()
        finish(agent, 40)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _caught_up(watch):
            time.sleep(0.2)
    finally:
        watch.stop()
    log = (edge_dir / "agent.log").read_text()
    assert agent.returncode == 0, log
    assert "connection lost" in log or "connect failed" in log
    samples = samples_of(watch.telemetry())
    unique = []
    for t_ms, hist, _ in samples:
        if not unique or t_ms > unique[-1][0]:
            unique.append((t_ms, hist))
        else:
            assert any(t_ms == u[0] for u in unique), "a reading arrived out of order"  # a resend is fine
    gaps = [b[0] - a[0] for a, b in zip(unique, unique[1:], strict=False)]
    assert max(gaps) < interval_ms * 3, f"a reading went missing: gap of {max(gaps)} ms"
    hist_count = sum(1 for _, hist in unique if hist)
    assert hist_count >= 15, "the outage's readings should come back flagged as history"
    assert len(unique) >= 70  # ~9 s at 100 ms, less the sampling jitter
    assert (edge_dir / "spool.jsonl").read_text() == ""  # drained and truncated


def _caught_up(watch: Watcher) -> bool:
    arrivals = watch.telemetry()
    return bool(arrivals) and not arrivals[-1].body.get("hist", False)
