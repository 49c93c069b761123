"""Hostile input: any topic and payload up to 64 KiB gives readings or
dead-letter entries, never an exception; and what is accepted, a real influxd
accepts too. The golden payloads shared with the firmware tests decode here
exactly as the fixture file says."""

import json
import math
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import contract
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew, Registry
from tests.conftest import FIXTURES

NOW_MS = 1_796_000_000_000
DEVICES = {"wtr-0001": "water", "pwr-0001": "power", "bld-0001": "building", "trf-0001": "traffic"}
LINE_SHAPE = (r"^[a-z]+,device=[a-z0-9-]+,district=[a-z0-9-]+ ([a-z_0-9]+=-?[0-9.e+-]+,)+seq=[0-9]+i"
              r",hist=(true|false)(,q=[0-9]+i)? [0-9]+$")


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> Decoder:
    registry = Registry(tmp_path_factory.mktemp("hostile") / "registry.sqlite3")
    for device_id, kind in DEVICES.items():
        registry.add(DeviceNew(id=device_id, kind=kind, district="tanjungpinang-timur"))
    registry.add(DeviceNew(id="old-0001", kind="water", district="bukit-bestari"))
    registry.update("old-0001", state="retired")
    return Decoder(registry, Metrics("ingest-test"))


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30), st.booleans(),
                   st.none(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
metric_names = st.one_of(st.sampled_from(sorted(contract.METRICS)), st.text(max_size=70))
timestamps = st.one_of(st.integers(NOW_MS - 40 * 86_400_000, NOW_MS + 3_600_000), st.integers(-2**70, 2**70),
                       st.floats(), st.text(max_size=5))
samples = st.lists(st.one_of(timestamps, st.dictionaries(metric_names, values, max_size=20), st.integers(-1, 9)),
                   min_size=0, max_size=4)
envelopes = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), values), "seq": st.one_of(st.integers(-5, 2**33), values),
     "fw": st.one_of(st.just("0.1.0"), st.text(max_size=40), values),
     "r": st.one_of(st.lists(samples, max_size=300), values)},
    optional={"hist": st.one_of(st.booleans(), values), "dropped": st.one_of(st.integers(-1, 2**33), values)})
good_samples = st.lists(st.tuples(st.integers(NOW_MS - 86_400_000, NOW_MS),
                                  st.dictionaries(st.sampled_from(sorted(contract.KINDS["water"])),
                                                  st.floats(-2000, 6000), min_size=1)), min_size=1, max_size=256)


def _json(body) -> bytes:
    return json.dumps(body, allow_nan=True, default=repr).encode()


payloads = st.one_of(
    st.binary(max_size=65536),
    st.text(max_size=4096).map(str.encode),
    envelopes.map(_json),
    st.builds(lambda seq, rows: _json({"v": 1, "seq": seq, "fw": "0.1.0", "r": [[t, v] for t, v in rows]}),
              st.integers(0, contract.MAX_SEQ), good_samples),
    st.builds(lambda raw, n: raw * n, st.binary(min_size=1, max_size=64), st.integers(1, 1024)),
)
topics = st.one_of(st.sampled_from([contract.telemetry_topic(d) for d in (*DEVICES, "old-0001", "ghost-01")]),
                   st.sampled_from([contract.status_topic("wtr-0001"), "city/v1/dev//telemetry", "city/v1/dev/a/b/c"]),
                   st.text(max_size=300))


@settings(max_examples=10_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(topic=topics, payload=payloads)
def test_any_input_gives_readings_or_dead_letters(decoder, topic, payload):
    decoder.forget_sequences()  # each example stands alone: no redelivery detection across examples
    out = Decoded()
    cleared = decoder.metrics.counters["status_cleared"]
    decoder.decode(topic, payload, NOW_MS, out)
    # Nothing silently dropped: lines, dead letters, or an empty status (a cleared retained one) counted.
    counted = decoder.metrics.counters["status_cleared"] > cleared and payload == b"" and topic.endswith("/status")
    assert out.lines or out.rejects or counted, (topic, payload[:200])
    for reason, device, _topic, detail, raw in out.rejects:
        assert reason and isinstance(detail, str) and raw == payload
        assert len(device) <= 64
    for line in out.lines:
        assert " nan" not in line and "inf" not in line.split(" ")[1]
        assert re.match(LINE_SHAPE, line), line


def test_golden_payloads_decode_as_the_fixture_file_says(decoder):
    spec = json.loads((FIXTURES / "payloads.json").read_text())
    by_kind = {kind: device for device, kind in DEVICES.items()}
    for case in spec["cases"]:
        if case["kind"] not in by_kind:
            continue  # a kind the registry cannot hold
        raw = (FIXTURES / "payloads" / case["file"]).read_bytes()
        decoder.forget_sequences()
        out = Decoded()
        decoder.decode(contract.telemetry_topic(by_kind[case["kind"]]), raw, spec["now_ms"], out)
        if "reason" in case or case.get("error"):
            expected = case.get("reason") or case.get("error")
            assert [r[0] for r in out.rejects] == [expected], case
            assert out.lines == []
        else:
            assert len(out.lines) == case["samples"], case
            assert sorted(r[0] for r in out.rejects) == sorted(case["rejects"]), case


def test_what_the_decoder_accepts_influxd_accepts(decoder, influx_db):
    now_ms = int(time.time() * 1000)
    out = Decoded()
    decoder.forget_sequences()
    for seq, (device, kind) in enumerate(DEVICES.items()):
        metrics = contract.KINDS[kind]
        edge = {m: (hi if i % 2 else lo) for i, (m, (_, lo, hi)) in enumerate(metrics.items())}
        tiny = {m: math.ulp(0.0) if lo <= 0 <= hi else lo for m, (_, lo, hi) in metrics.items()}
        raw = contract.encode_telemetry(seq, [(now_ms - 1000, edge), (now_ms, tiny, contract.Q_DOUBTFUL)], "0.1.0")
        decoder.decode(contract.telemetry_topic(device), raw, now_ms, out)
    assert out.rejects == []
    V1Writer(str(influx_db.http.base_url), influx_db.db).write(out.lines)
    rows = {kind: influx_db.rows(f'SELECT * FROM "{kind}"') for kind in contract.KINDS}
    assert all(len(r) == 2 for r in rows.values()), rows
    assert rows["water"][1]["q"] == contract.Q_DOUBTFUL
