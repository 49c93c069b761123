"""The wire contract under CPython: golden payloads, round trips and hostile input."""

import contextlib
import json
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import contract
from tests.conftest import FIXTURES
from tests.edge import naive_contract
from tests.edge.golden_check import outcomes, status_outcomes

NOW = 1_796_000_000_000


def expected(case: dict) -> dict:
    if "error" in case:
        return {"error": case["error"]}
    return {"samples": case["samples"], "readings": case["readings"], "rejects": case["rejects"],
            "hist": case.get("hist", False), "dropped": case.get("dropped", 0), "boot": case.get("boot")}


def test_golden_payloads_decode_as_documented():
    cases, results = outcomes(str(FIXTURES))
    assert results == [expected(c) for c in cases]


def test_golden_status_decodes_as_documented():
    cases, results = status_outcomes(str(FIXTURES))
    assert results == [{"error": c["error"]} if "error" in c else {"status": c["status"]} for c in cases]


def test_boot_identity_is_optional_and_round_trips():
    old = contract.decode_telemetry(contract.encode_telemetry(3, [(NOW, {"flow_lps": 1.0})], "0.1.0"), "water", NOW)
    assert old.boot is None  # firmware without a boot id still works
    assert b'"boot"' not in contract.encode_telemetry(3, [(NOW, {"flow_lps": 1.0})], "0.1.0")
    for boot in (0, 1234567, 2**31 - 1, contract.MAX_BOOT):
        raw = contract.encode_telemetry(0, [(NOW, {"flow_lps": 1.0})], "0.2.0", boot=boot)
        assert contract.decode_telemetry(raw, "water", NOW).boot == boot
        assert contract.decode_status(contract.encode_status("online", "0.2.0", boot=boot))["boot"] == boot
        assert contract.decode_status(contract.encode_status("offline", "0.2.0", boot=boot))["boot"] == boot
    assert "boot" not in contract.decode_status(contract.encode_status("online", "0.1.0"))
    for bad in (-1, contract.MAX_BOOT + 1, True, 1.0, "7", [1]):
        body = {"v": 1, "seq": 0, "boot": bad, "fw": "x", "r": [[NOW, {"flow_lps": 1.0}]]}
        with pytest.raises(contract.ContractError, match="bad_boot"):
            contract.validate_telemetry(body, "water", NOW)
        with pytest.raises(contract.ContractError, match="bad_boot"):
            contract.decode_status(json.dumps({"v": 1, "state": "online", "boot": bad}).encode())


def test_round_trip_keeps_values_times_and_flags():
    samples = [(NOW - 2000, {"voltage_v": 229.5, "frequency_hz": 50.02}, 0),
               (NOW - 1000, {"voltage_v": 231.25}, contract.Q_DOUBTFUL)]
    raw = contract.encode_telemetry(41, samples, "1.2.3", hist=True, dropped=7)
    batch = contract.decode_telemetry(raw, "power", NOW)
    assert (batch.seq, batch.fw, batch.hist, batch.dropped) == (41, "1.2.3", True, 7)
    assert batch.samples == samples
    assert batch.rejects == []


def test_orjson_and_json_agree():
    raw = (FIXTURES / "payloads" / "valid_water.json").read_bytes()
    a = contract.decode_telemetry(raw, "water", NOW)
    b = contract.decode_telemetry(raw, "water", NOW, loads=orjson.loads)
    assert a.samples == b.samples


@pytest.mark.parametrize("value, reason", [
    (float("inf"), "not_finite"), (-1.0, "out_of_bounds"), (True, "bad_type"), ("3", "bad_type"),
    (None, "bad_type"), ([1], "bad_type"), (26.0, "unknown_metric"),
])
def test_bad_readings_are_rejected_alone(value, reason):
    metric = "turbidity_ntu" if reason != "unknown_metric" else "speed_kmh"
    body = {"v": 1, "seq": 1, "fw": "x", "r": [[NOW, {metric: value, "flow_lps": 2.0}]]}
    batch = contract.validate_telemetry(body, "water", NOW)
    assert batch.samples == [(NOW, {"flow_lps": 2.0}, 0)]
    assert [r[3] for r in batch.rejects] == [reason]
    json.dumps(batch.rejects)  # a dead-letter store can always serialise a reject


def test_timestamps_far_from_now_are_rejected():
    body = {"v": 1, "seq": 1, "fw": "x", "r": [[NOW + 3_600_000, {"flow_lps": 1.0}],
                                                [NOW - 40 * 86_400_000, {"flow_lps": 1.0}],
                                                [NOW - 86_400_000, {"flow_lps": 1.0}]]}
    batch = contract.validate_telemetry(body, "water", NOW)
    assert [r[3] for r in batch.rejects] == ["future_timestamp", "stale_timestamp"]
    assert len(batch.samples) == 1


def test_oversized_payload_is_rejected_before_parsing():
    raw = b'{"v":1,' + b" " * contract.MAX_PAYLOAD_BYTES + b"}"
    with pytest.raises(contract.ContractError) as err:
        contract.decode_telemetry(raw, "water", NOW)
    assert err.value.reason == "oversized"


def test_encoder_refuses_a_batch_that_does_not_fit():
    samples = [(NOW + i, {"flow_lps": 1.0 + i, "pressure_bar": 2.0}, 0) for i in range(400)]
    with pytest.raises(contract.ContractError):
        contract.encode_telemetry(1, samples, "x")


def test_every_metric_has_a_unit_and_bounds():
    for kind, metrics in contract.KINDS.items():
        for metric, (unit, lo, hi) in metrics.items():
            assert isinstance(unit, str) and lo < hi and math.isfinite(lo) and math.isfinite(hi), (kind, metric)
            assert contract.METRICS[metric][0] == kind


def test_topics_round_trip_and_refuse_wildcards():
    assert contract.parse_topic(contract.telemetry_topic("wtr-0001")) == ("wtr-0001", "telemetry")
    for bad in ["city/v1/dev/+/telemetry", "city/v1/dev/a#b/telemetry", "city/v1/dev/ok1/other", "x", ""]:
        with pytest.raises(contract.ContractError):
            contract.parse_topic(bad)
    for bad in ["", "ab", "A-01", "-abc", "a" * 33, "a/b", "dev#1", 12]:
        assert not contract.valid_device_id(bad)


def test_config_and_status_validate():
    raw = contract.encode_config(5000, 6, {"pressure_bar": [1.5, 8.0]})
    assert contract.decode_config(raw)["thresholds"] == {"pressure_bar": [1.5, 8.0]}
    with pytest.raises(contract.ContractError):
        contract.encode_config(10, 1)
    with pytest.raises(contract.ContractError):
        contract.decode_config(b'{"v":1,"interval_ms":5000,"thresholds":{"pressure_bar":[9,1]}}')
    status = contract.decode_status(contract.encode_status("online", "1.0", 12, 40000, -67))
    assert status == {"state": "online", "fw": "1.0", "uptime_s": 12, "dropped": 0, "mem_free": 40000,
                      "rssi_dbm": -67}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_anything_but_contract_error(raw):
    for decode in (contract.decode_telemetry, lambda r, k, n: contract.decode_status(r),
                   lambda r, k, n: contract.decode_config(r)):
        with contextlib.suppress(contract.ContractError):
            decode(raw, "water", NOW)


@settings(max_examples=1000, deadline=None)
@given(json_values, st.sampled_from(list(contract.KINDS)))
def test_random_json_never_raises_anything_but_contract_error(body, kind):
    envelope = {"v": 1, "seq": 1, "fw": "x", "r": body}
    for candidate in (body, envelope, {"v": 1, "seq": 1, "fw": "x", "r": [[NOW, body]]}):
        raw = json.dumps(candidate).encode()
        try:
            batch = contract.decode_telemetry(raw, kind, NOW)
        except contract.ContractError:
            continue
        for _, values, _ in batch.samples:
            for metric, value in values.items():
                _, _, lo, hi = contract.METRICS[metric]
                assert math.isfinite(value) and lo <= value <= hi


def test_the_board_writer_and_the_one_shot_encoder_give_the_same_bytes(monkeypatch):
    samples = [(NOW - 2000, {"flow_lps": 12.5, "pressure_bar": 3.25}, 0),
               (NOW, {"flow_lps": 1e-7}, contract.Q_DOUBTFUL)]
    out = contract.MessageBuffer(4096)
    one_shot = bytes(contract.encode_telemetry_into(out, 7, samples, "fw\"1", True, 3, 99))
    monkeypatch.setattr(contract, "_ONE_SHOT", False)  # the sample-by-sample writer a board uses
    assert bytes(contract.encode_telemetry_into(out, 7, samples, "fw\"1", True, 3, 99)) == one_shot
    assert contract.decode_telemetry(one_shot, "water", NOW).samples == samples
    with pytest.raises(contract.ContractError, match="oversized"):
        contract.encode_telemetry_into(contract.MessageBuffer(40), 7, samples, "x")


# ---------------------------------------------------------------- the one-pass check against the naive one


def _edges(kind: str) -> list[float]:
    """Each bound of the kind, and the floats just inside and just outside it."""
    out = []
    for _, lo, hi in contract.KINDS[kind].values():
        out += [lo, hi, math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf), math.nextafter(lo, math.inf),
                math.nextafter(hi, -math.inf)]
    return out


def _reading_values(kind: str):
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_edges(kind)),
                     st.integers(-10**20, 10**20), st.integers(-5, 100), st.booleans(), st.none(),
                     st.text(max_size=4), st.lists(st.floats(), max_size=2))


def _sample_rows(kind: str):
    metrics = st.one_of(st.sampled_from(sorted(contract.KINDS[kind])), st.sampled_from(sorted(contract.METRICS)),
                        st.text(max_size=20))
    edge_times = [NOW + contract.MAX_FUTURE_MS, NOW + contract.MAX_FUTURE_MS + 1, NOW - contract.MAX_AGE_MS,
                  NOW - contract.MAX_AGE_MS - 1, NOW, 0, -1]
    times = st.one_of(st.sampled_from(edge_times), st.integers(NOW - 40 * 86_400_000, NOW + 3_600_000),
                      st.floats(), st.booleans())
    values = st.dictionaries(metrics, _reading_values(kind), max_size=contract.MAX_METRICS_PER_SAMPLE + 2)
    quality = st.one_of(st.sampled_from([0, 1, 2, 4, 7, 8, -1]), st.booleans())
    return st.one_of(st.tuples(times, values).map(list), st.tuples(times, values, quality).map(list),
                     st.lists(st.integers(), max_size=4))


@st.composite
def telemetry_bodies(draw):
    kind = draw(st.sampled_from(sorted(contract.KINDS)))
    rows = draw(st.lists(_sample_rows(kind), min_size=1, max_size=12))
    body = {"v": 1, "seq": draw(st.one_of(st.integers(0, 2**32), st.just(-1))), "fw": "0.2.0", "r": rows}
    if draw(st.booleans()):
        body["hist"] = draw(st.one_of(st.booleans(), st.integers(0, 1)))
    return kind, body


def _outcome(validate, body, kind):
    try:
        batch = validate(body, kind, NOW)
    except contract.ContractError as exc:
        return ("error", exc.reason, exc.detail)
    samples = [(t, sorted(values.items()), [type(v) for v in values.values()], q) for t, values, q in batch.samples]
    return (batch.seq, batch.fw, batch.hist, batch.dropped, batch.boot, samples, batch.rejects)


@settings(max_examples=3000, deadline=None)
@given(telemetry_bodies())
def test_one_pass_validation_gives_the_naive_outcome(case):
    """Same accepted samples (all floats, in bounds), same rejects with the same reasons in the same
    order, same envelope errors: the one-pass check of the common case weakens nothing."""
    kind, body = case
    assert _outcome(contract.validate_telemetry, body, kind) == _outcome(naive_contract.validate_telemetry, body, kind)
    raw = json.dumps(body, allow_nan=True).encode()  # and through both JSON parsers, as the servers get it
    for loads in (orjson.loads, contract.strict_loads):
        try:
            parsed = loads(raw)
        except Exception:  # noqa: BLE001 (NaN is not JSON to orjson's or the strict parser)
            continue
        assert _outcome(contract.validate_telemetry, parsed, kind) == _outcome(naive_contract.validate_telemetry,
                                                                               parsed, kind)


@pytest.mark.parametrize("value, reason", [
    (float("nan"), "not_finite"), (float("-inf"), "not_finite"), (5000.000000001, "out_of_bounds"),
    (-1000.0000001, "out_of_bounds"), (10**400, "not_finite"), (False, "bad_type"), (7, None), (5000, None),
])
def test_the_common_case_check_lets_no_odd_value_through(value, reason):
    """Values the one-pass check sends on to the per-value check (NaN, infinities, bounds, ints, bools)."""
    body = {"v": 1, "seq": 1, "fw": "x", "r": [[NOW, {"flow_lps": value, "pressure_bar": 2.5}]]}
    batch = contract.validate_telemetry(body, "water", NOW)
    if reason is None:
        assert batch.samples == [(NOW, {"flow_lps": float(value), "pressure_bar": 2.5}, 0)]
        assert type(batch.samples[0][1]["flow_lps"]) is float  # a field never changes type in InfluxDB
    else:
        assert batch.samples == [(NOW, {"pressure_bar": 2.5}, 0)]
        assert [r[3] for r in batch.rejects] == [reason]


def test_an_int_past_a_floats_range_is_a_contract_error_everywhere():
    """The stdlib parser (the contract's default) gives ints of any size: refused with a reason,
    never an OverflowError."""
    huge = "1" + "0" * 400
    telemetry = ('{"v":1,"seq":1,"fw":"x","r":[[' + str(NOW) + ',{"flow_lps":' + huge
                 + ',"pressure_bar":2.5}]]}').encode()
    batch = contract.decode_telemetry(telemetry, "water", NOW)
    assert [r[3] for r in batch.rejects] == ["not_finite"] and batch.samples == [(NOW, {"pressure_bar": 2.5}, 0)]
    with pytest.raises(contract.ContractError, match="bad_uptime_s"):
        contract.decode_status(('{"v":1,"state":"online","uptime_s":' + huge + "}").encode())
    with pytest.raises(contract.ContractError, match="bad_thresholds"):
        contract.decode_config(('{"v":1,"interval_ms":5000,"thresholds":{"pressure_bar":[1,' + huge + "]}}").encode())
    alert = {"id": "a1", "device": "wtr-0001", "state": "active", "severity": "info", "score": 0.5,
             "started_ms": 1, "updated_ms": 2}
    raw = json.dumps(alert | {"v": 1}).replace('"score": 0.5', '"score": 0.5, "observed": ' + huge).encode()
    with pytest.raises(contract.ContractError, match="bad_observed"):
        contract.decode_alert(raw)
