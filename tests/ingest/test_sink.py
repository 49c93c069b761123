"""Each write branch of the sink against an HTTP stand-in for InfluxDB:
413 splits, 429 honours Retry-After (capped), 503 is retried, a partial write
dead-letters only the refused lines, an outage spools (fsynced, bounded) and
replays in order, a hung server is given up on at the timeout."""

import time
from pathlib import Path

import pytest

from ingest.deadletter import DeadLetters
from ingest.metrics import Metrics
from ingest.sink import Sink
from ingest.spool import Spool, SpoolFull
from telemetry_shared.influx import V1Writer
from tests.ingest.standin import InfluxStandIn, slow, times, too_large_above


def lines_for(n: int, device: str = "wtr-0001", start_ms: int = 1_796_000_000_000) -> list[str]:
    return [f"water,device={device},district=bukit-bestari flow_lps={i}.5,seq={i}i {start_ms + i}" for i in range(n)]


@pytest.fixture
def standin():
    server = InfluxStandIn()
    yield server
    server.close()


def make_sink(tmp_path: Path, url: str, timeout_s: float = 2.0, spool_bytes: int = 10_000_000, **kwargs) -> Sink:
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    return Sink(V1Writer(url, "city", timeout_s=timeout_s), Spool(tmp_path / "spool", spool_bytes), dead,
                Metrics("ingest-0"), **kwargs)


def test_413_splits_until_the_batch_fits(tmp_path, standin):
    standin.rules.append(too_large_above(100))
    sink = make_sink(tmp_path, standin.url)
    lines = lines_for(1000)
    sink.store(lines)
    assert sorted(standin.stored) == sorted(lines)
    assert all(n <= 100 for _, n, status in standin.requests if status == 204)
    assert sink.metrics.counters["write_splits"] >= 9
    assert sink.dead_letters.counts() == {}


def test_429_waits_the_retry_after_it_is_told(tmp_path, standin):
    standin.rules.append(times(1, 429, {"Retry-After": "1"}))
    sink = make_sink(tmp_path, standin.url)
    started = time.monotonic()
    sink.store(lines_for(10))
    waited = standin.requests[1][0] - standin.requests[0][0]
    assert 0.95 <= waited < 1.6, waited
    assert len(standin.stored) == 10 and time.monotonic() - started < 3
    assert sink.metrics.counters["write_retries"] == 1


def test_retry_after_is_capped(tmp_path, standin):
    standin.rules.append(times(2, 429, {"Retry-After": "3600"}))
    sink = make_sink(tmp_path, standin.url, retry_max_s=0.3)
    started = time.monotonic()
    sink.store(lines_for(5))
    assert time.monotonic() - started < 1.5
    assert len(standin.stored) == 5


def test_503_is_retried_with_backoff(tmp_path, standin):
    standin.rules.append(times(3, 503, {}, '{"error":"busy"}'))
    sink = make_sink(tmp_path, standin.url)
    sink.store(lines_for(5))
    gaps = [b[0] - a[0] for a, b in zip(standin.requests, standin.requests[1:], strict=False)]
    assert len(standin.requests) == 4 and gaps[1] > gaps[0]  # backoff grows
    assert len(standin.stored) == 5 and len(sink.spool) == 0


def test_partial_write_dead_letters_only_the_refused_lines(tmp_path, standin):
    standin.refuse_marker = "flow_lps=13.5"
    sink = make_sink(tmp_path, standin.url)
    lines = lines_for(40)
    lines[7] = lines[7].replace("wtr-0001", "wtr-0007").replace("flow_lps=7.5", "flow_lps=13.5")
    sink.store(lines)
    refused = [line for line in lines if "flow_lps=13.5" in line]
    assert len(refused) == 2
    assert set(standin.stored) == set(lines) - set(refused)
    entries = sink.dead_letters.list()
    assert sorted(e["payload"].decode() for e in entries) == sorted(refused)
    assert {e["reason"] for e in entries} == {"influx_rejected"}
    assert {e["device"] for e in entries} == {"wtr-0001", "wtr-0007"}
    assert "partial write" in entries[0]["detail"]
    assert sink.metrics.counters["rejected_influx_rejected"] == 2


def test_a_setup_error_is_not_blamed_on_the_data(tmp_path, standin):
    standin.rules.append(times(100, 404, {}, '{"error":"database not found: \\"city\\""}'))
    sink = make_sink(tmp_path, standin.url, spool_after_s=0.2)
    sink.store(lines_for(5))
    assert sink.dead_letters.counts() == {}
    assert len(sink.spool) == 1


def test_an_outage_spools_then_replays_in_order(tmp_path, standin):
    standin.rules.append(times(10_000, 503))
    sink = make_sink(tmp_path, standin.url, spool_after_s=0.2)
    batches = [lines_for(5, start_ms=1_796_000_000_000 + 1000 * b) for b in range(4)]
    for batch in batches:
        sink.store(batch)  # returns: durable in the spool
    assert len(sink.spool) == 4 and sink.metrics.counters["spooled"] == 20
    assert sink.replay() == 0  # still down
    standin.rules.clear()
    sink.next_replay = 0
    # A restarted worker finds the spool on disk.
    again = make_sink(tmp_path, standin.url)
    assert len(again.spool) == 4
    assert again.replay(budget_s=5) == 20
    assert standin.stored == [line for batch in batches for line in batch]
    assert len(again.spool) == 0 and not list((tmp_path / "spool").iterdir())


def test_new_batches_do_not_overtake_the_spool(tmp_path, standin):
    standin.rules.append(times(1, 503))
    sink = make_sink(tmp_path, standin.url, spool_after_s=0.05)
    first, second = lines_for(3, start_ms=1), lines_for(3, start_ms=100)
    sink.store(first)
    sink.store(second)  # InfluxDB is back, but the first batch waits in the spool
    assert len(sink.spool) == 2
    sink.next_replay = 0
    sink.replay()
    assert standin.stored == first + second


def test_the_spool_is_bounded(tmp_path, standin):
    standin.rules.append(times(10_000, 503))
    sink = make_sink(tmp_path, standin.url, spool_after_s=0, spool_bytes=4000)
    with pytest.raises(SpoolFull):
        for b in range(100):
            sink.store(lines_for(50, start_ms=b * 1000))
    assert 0 < sink.spool.bytes <= 4000
    assert sink.metrics.counters["spool_full"] == 1


def test_a_hung_server_is_given_up_on_at_the_timeout(tmp_path, standin):
    standin.rules.append(slow(3.0, 1))
    sink = make_sink(tmp_path, standin.url, timeout_s=0.5, spool_after_s=0.3)
    started = time.monotonic()
    sink.store(lines_for(5))
    assert time.monotonic() - started < 1.5
    assert len(sink.spool) == 1
    assert 0.45 <= sink.metrics.latency_max_s < 1.0


def test_a_corrupt_spool_file_is_dead_lettered_not_fatal(tmp_path, standin):
    sink = make_sink(tmp_path, standin.url)
    spool_dir = tmp_path / "spool"
    (spool_dir / "0000000000000000.lp.gz").write_bytes(b"not gzip at all")
    again = make_sink(tmp_path, standin.url)
    again.spool.append(lines_for(2))
    again.replay(budget_s=2)
    assert len(again.spool) == 0 and len(standin.stored) == 2
    assert sink.dead_letters.counts() == {"spool_corrupt": 1}
