# The wire contract: topics, payloads, kinds and units.
#
# One source of truth for the device firmware and every server component.
# It runs under MicroPython (on a board and on the unix port) and under
# CPython, so it uses only `json` and `math`, plain dicts and tuples, and no
# typing, dataclasses or f-string-only features.
#
# Telemetry payload (version 1), compact JSON, one batch of samples:
#   {"v": 1, "seq": 17, "boot": 1234567, "fw": "0.1.0", "hist": false, "dropped": 0,
#    "r": [[t_ms, {"flow_lps": 12.5, "pressure_bar": 3.1}, q], ...]}
#   seq      per-device message counter, so gaps (lost messages) are visible
#   boot     optional: the device's boot identity, a new one at every boot. seq
#            restarts at 0 on every boot, so (boot, seq) names a message: a
#            rebooted device is not a replay. Absent from older firmware.
#   fw       firmware version
#   hist     true for backfilled history: never fires a live alarm
#   dropped  readings the device had to drop (buffer full) since its last message
#   r        samples: UTC milliseconds, {metric: value}, optional quality flags
# A reading is one (time, metric, value). A bad reading is rejected on its
# own; the rest of the batch is kept. A bad envelope rejects the whole message.

import io
import json
import math

VERSION = 1
ROOT = "city/v1"
DEVICE_PREFIX = ROOT + "/dev/"
TELEMETRY_SUB = DEVICE_PREFIX + "+/telemetry"
STATUS_SUB = DEVICE_PREFIX + "+/status"
ALERTS_PREFIX = ROOT + "/alerts/"
ALERTS_SUB = ALERTS_PREFIX + "#"

MAX_PAYLOAD_BYTES = 16384
MAX_SAMPLES = 256
MAX_METRICS_PER_SAMPLE = 16
MAX_FW_LEN = 32
MAX_SEQ = 4294967295
MAX_BOOT = 4294967295  # a random 31-bit id or a flash boot counter both fit
MAX_FUTURE_MS = 5 * 60 * 1000  # device clocks may run a little ahead
MAX_AGE_MS = 35 * 24 * 3600 * 1000  # the longest offline backfill we accept

# Quality flags a driver sets on a sample it doubts, instead of dropping it.
Q_GOOD = 0
Q_DOUBTFUL = 1
Q_OUT_OF_RANGE = 2
Q_CRC_FAILED = 4
Q_ALL = Q_DOUBTFUL | Q_OUT_OF_RANGE | Q_CRC_FAILED

# kind -> metric -> (unit, lower bound, upper bound). Bounds are physical
# limits of what a sensor of that kind can report, not alarm thresholds.
# Metric names are unique across kinds and carry their unit.
KINDS = {
    "water": {
        "flow_lps": ("L/s", -1000.0, 5000.0),
        "pressure_bar": ("bar", 0.0, 25.0),
        "level_m": ("m", 0.0, 50.0),
        "turbidity_ntu": ("NTU", 0.0, 1000.0),
        "chlorine_mgl": ("mg/L", 0.0, 10.0),
    },
    "power": {
        "voltage_v": ("V", 0.0, 500.0),
        "current_a": ("A", 0.0, 5000.0),
        "power_kw": ("kW", -10000.0, 10000.0),
        "energy_kwh": ("kWh", 0.0, 1e9),
        "power_factor": ("", -1.0, 1.0),
        "frequency_hz": ("Hz", 0.0, 70.0),
    },
    "building": {
        "temperature_c": ("degC", -20.0, 80.0),
        "humidity_pct": ("%", 0.0, 100.0),
        "co2_ppm": ("ppm", 0.0, 40000.0),
        "occupancy": ("people", 0.0, 10000.0),
        "beds_free": ("beds", 0.0, 1000.0),
    },
    "traffic": {
        "vehicle_count": ("vehicles", 0.0, 10000.0),
        "speed_kmh": ("km/h", 0.0, 250.0),
        "occupancy_pct": ("%", 0.0, 100.0),
    },
}

METRICS = {}  # metric -> (kind, unit, lower, upper)
BOUNDS = {}  # kind -> metric -> (lower, upper): what the validation of every value reads
for _kind in KINDS:
    BOUNDS[_kind] = {}
    for _metric in KINDS[_kind]:
        _unit, _lo, _hi = KINDS[_kind][_metric]
        METRICS[_metric] = (_kind, _unit, _lo, _hi)
        BOUNDS[_kind][_metric] = (_lo, _hi)

_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


class ContractError(ValueError):
    """A message that breaks the contract. `reason` is a short stable code."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + ": " + detail if detail else reason)
        self.reason = reason
        self.detail = detail


class Batch:
    """A decoded telemetry message: accepted samples and rejected readings."""

    def __init__(self, seq, fw, hist, dropped, samples, rejects, boot=None):
        self.seq = seq
        self.boot = boot  # None from firmware that does not send it
        self.fw = fw
        self.hist = hist
        self.dropped = dropped
        self.samples = samples  # [(t_ms, {metric: float}, quality)]
        self.rejects = rejects  # [(t_ms, metric, value, reason)]


# ---------------------------------------------------------------- topics


def valid_device_id(device_id):
    """3 to 32 of [a-z0-9-], starting with a letter or digit: safe in topics, ACLs and URLs."""
    if type(device_id) is not str or not 3 <= len(device_id) <= 32:
        return False
    if device_id[0] == "-":
        return False
    return all(ch in _ID_CHARS for ch in device_id)


def _device_topic(device_id, leaf):
    if not valid_device_id(device_id):
        raise ContractError("bad_device_id", repr(device_id)[:40])
    return DEVICE_PREFIX + device_id + "/" + leaf


def telemetry_topic(device_id):
    return _device_topic(device_id, "telemetry")


def status_topic(device_id):
    return _device_topic(device_id, "status")


def config_topic(device_id):
    return _device_topic(device_id, "config")


def alert_topic(device_id):
    if not valid_device_id(device_id):
        raise ContractError("bad_device_id", repr(device_id)[:40])
    return ALERTS_PREFIX + device_id


def parse_topic(topic):
    """Return (device_id, leaf) for a device topic, or raise ContractError."""
    if type(topic) is not str or not topic.startswith(DEVICE_PREFIX):
        raise ContractError("bad_topic", repr(topic)[:80])
    parts = topic[len(DEVICE_PREFIX) :].split("/")
    if len(parts) != 2 or parts[1] not in ("telemetry", "status", "config"):
        raise ContractError("bad_topic", repr(topic)[:80])
    if not valid_device_id(parts[0]):
        raise ContractError("bad_device_id", repr(parts[0])[:40])
    return parts[0], parts[1]


# ---------------------------------------------------------------- helpers


def _is_int(value):
    return type(value) is int


def _is_number(value):
    return type(value) is int or type(value) is float


_FLOAT_MAX = 1.7976931348623157e308


def _is_finite_number(value):
    # An int is compared, not converted: math.isfinite of one past a float's range raises
    # OverflowError, and the stdlib JSON parser gives ints of any number of digits.
    if type(value) is int:
        return -_FLOAT_MAX <= value <= _FLOAT_MAX
    return type(value) is float and math.isfinite(value)


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


def strict_loads(raw):
    """json.loads that refuses NaN and Infinity, as standard JSON does."""
    if _LOADS_TAKES_KEYWORDS:
        return json.loads(raw, parse_constant=_no_constants)
    return json.loads(raw)  # MicroPython's parser already refuses them


try:
    json.loads("1", parse_constant=_no_constants)
    _LOADS_TAKES_KEYWORDS = True
except TypeError:
    _LOADS_TAKES_KEYWORDS = False


def _loads(raw, loads):
    if type(raw) is str:
        raw = raw.encode()
    if not isinstance(raw, (bytes, bytearray)):
        raise ContractError("bad_type", "payload must be bytes")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", "%d bytes > %d" % (len(raw), MAX_PAYLOAD_BYTES))
    try:
        return loads(raw)
    except Exception as exc:  # every parser has its own error type
        raise ContractError("malformed_json", str(exc)[:80])


def _check_envelope(body, what):
    if type(body) is not dict:
        raise ContractError("bad_type", what + " must be a JSON object")
    version = body.get("v")
    if not _is_int(version) or version != VERSION:
        raise ContractError("bad_version", repr(version)[:20])


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


# ---------------------------------------------------------------- telemetry


def encode_telemetry(seq, samples, fw, hist=False, dropped=0, boot=None):
    """Encode samples [(t_ms, {metric: value}, quality)] into one message (bytes).

    Raises ContractError("oversized") when the batch does not fit one message:
    the caller sends fewer samples.
    """
    out = MessageBuffer(MAX_PAYLOAD_BYTES)
    encode_telemetry_into(out, seq, samples, fw, hist, dropped, boot)
    return bytes(out.message())


def encode_telemetry_into(out, seq, samples, fw, hist=False, dropped=0, boot=None):
    """Encode one message into `out` (a MessageBuffer, reused from message to message).

    Written sample by sample: no whole-message str, no copy of it to bytes, so a
    small board needs room for the message once (plus one sample's text). Returns the message (a
    memoryview of out, valid until out is used again). Raises ContractError
    ("oversized") when the batch does not fit out or one message.
    """
    out.reset()
    if _ONE_SHOT:
        out.write(_compact(_telemetry_body(seq, samples, fw, hist, dropped, boot)))
        return out.message()
    out.write(b'{"v":%d,"seq":%d' % (VERSION, seq))
    if boot is not None:
        out.write(b',"boot":%d' % boot)
    out.write(b',"fw":')
    out.write(json.dumps(fw))
    if hist:
        out.write(b',"hist":true')
    if dropped:
        out.write(b',"dropped":%d' % dropped)
    out.write(b',"r":[')
    first = True
    for sample in samples:
        if not first:
            out.write(b",")
        first = False
        quality = sample[2] if len(sample) > 2 else 0
        out.write(b"[%d," % sample[0])
        out.write(_compact(sample[1]))  # one sample's text at a time: small
        out.write(b",%d]" % quality if quality else b"]")
    out.write(b"]}")
    return out.message()


def _compact_micropython(obj):
    return json.dumps(obj, separators=(",", ":"))


try:  # CPython: one encoder, not a new one per call (json.dumps with separators builds one each time)
    _compact = json.JSONEncoder(separators=(",", ":")).encode
except AttributeError:  # MicroPython's json has no JSONEncoder
    _compact = _compact_micropython
# Where memory is plenty (CPython: the simulator, the servers) a message is encoded in one C call;
# a board writes it sample by sample, so it never holds the whole text twice.
_ONE_SHOT = _compact is not _compact_micropython


def _telemetry_body(seq, samples, fw, hist, dropped, boot):
    """The message as one dict, in the same key order as the sample-by-sample writer."""
    body = {"v": VERSION, "seq": seq}
    if boot is not None:
        body["boot"] = boot
    body["fw"] = fw
    if hist:
        body["hist"] = True
    if dropped:
        body["dropped"] = dropped
    body["r"] = [[s[0], s[1], s[2]] if len(s) > 2 and s[2] else [s[0], s[1]] for s in samples]
    return body


class MessageBuffer(io.IOBase):
    """A fixed bytearray a message is written into in place, allocated once.

    An io.IOBase, so MicroPython's json.dump can write into it too."""

    def __init__(self, capacity=MAX_PAYLOAD_BYTES):
        self.buf = bytearray(min(capacity, MAX_PAYLOAD_BYTES))
        self.view = memoryview(self.buf)
        self.pos = 0

    def reset(self):
        self.pos = 0

    def write(self, data):
        if type(data) is str:
            data = data.encode()
        end = self.pos + len(data)
        if end > len(self.buf):
            raise ContractError("oversized", "message over %d bytes" % len(self.buf))
        self.view[self.pos : end] = data
        self.pos = end
        return len(data)

    def message(self):
        return self.view[: self.pos]


def decode_telemetry(raw, kind, now_ms, loads=strict_loads):
    """Decode and validate one telemetry message from a device of `kind`.

    `kind` comes from the registry, never from the payload. `loads` lets a
    server use a faster JSON parser. Returns a Batch; raises ContractError for
    an envelope that breaks the contract, and nothing else.
    """
    if kind not in KINDS:
        raise ContractError("unknown_kind", repr(kind)[:40])
    return validate_telemetry(_loads(raw, loads), kind, now_ms)


def validate_telemetry(body, kind, now_ms):
    """Validate an already-parsed telemetry message (see decode_telemetry)."""
    if kind not in KINDS:
        raise ContractError("unknown_kind", repr(kind)[:40])
    _check_envelope(body, "message")
    seq = body.get("seq")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise ContractError("bad_seq", repr(seq)[:40])
    fw = body.get("fw")
    if type(fw) is not str or not 0 < len(fw) <= MAX_FW_LEN:
        raise ContractError("bad_fw", repr(fw)[:40])
    boot = _boot(body)
    hist = body.get("hist", False)
    if type(hist) is not bool:
        raise ContractError("bad_type", "hist must be true or false")
    dropped = body.get("dropped", 0)
    if type(dropped) is not int or not 0 <= dropped <= MAX_SEQ:
        raise ContractError("bad_type", "dropped must be a count")
    rows = body.get("r")
    if type(rows) is not list or not rows:
        raise ContractError("bad_type", "r must be a non-empty list of samples")
    if len(rows) > MAX_SAMPLES:
        raise ContractError("oversized", "%d samples > %d" % (len(rows), MAX_SAMPLES))
    bounds = BOUNDS[kind]
    # Timestamps outside [earliest, latest] are rejected reading by reading (future/stale).
    latest, earliest = now_ms + MAX_FUTURE_MS, now_ms - MAX_AGE_MS
    samples = []
    rejects = []
    for row in rows:
        if type(row) is not list or not 2 <= len(row) <= 3:
            raise ContractError("bad_type", "a sample is [t_ms, {metric: value}, quality?]")
        t_ms, values = row[0], row[1]
        quality = row[2] if len(row) == 3 else 0
        if type(t_ms) is not int or t_ms < 0:
            raise ContractError("bad_timestamp", repr(t_ms)[:40])
        if type(values) is not dict or not values or len(values) > MAX_METRICS_PER_SAMPLE:
            raise ContractError("bad_type", "sample values must be a non-empty object")
        if type(quality) is not int or quality & ~Q_ALL:
            raise ContractError("bad_quality", repr(quality)[:20])
        if earliest <= t_ms <= latest and _all_good(values, bounds):
            samples.append((t_ms, values, quality))
        else:
            _sort_sample(t_ms, values, quality, now_ms, bounds, samples, rejects)
    return Batch(seq, fw, hist, dropped, samples, rejects, boot)


def _all_good(values, bounds):
    """Whether every value is a float within its metric's bounds (the common case, checked in
    one pass; anything else goes to _sort_sample for its reason). Every bound is finite, so NaN
    and the infinities fail the comparison; an int (or a bool, which is an int) is not a float."""
    for metric in values:
        limits = bounds.get(metric)
        value = values[metric]
        if limits is None or type(value) is not float or not limits[0] <= value <= limits[1]:
            return False
    return True


def _boot(body):
    """The optional boot identity: None when absent, else an int in 0..MAX_BOOT."""
    boot = body.get("boot")
    if boot is not None and (not _is_int(boot) or not 0 <= boot <= MAX_BOOT):
        raise ContractError("bad_boot", repr(boot)[:40])
    return boot


def _sort_sample(t_ms, values, quality, now_ms, bounds, samples, rejects):
    """A sample that is not all floats in bounds: each reading accepted (as a float) or
    rejected with its reason."""
    time_reason = None
    if t_ms > now_ms + MAX_FUTURE_MS:
        time_reason = "future_timestamp"
    elif t_ms < now_ms - MAX_AGE_MS:
        time_reason = "stale_timestamp"
    good = {}
    for metric in sorted(values):  # MicroPython dicts are unordered: keep outcomes the same everywhere
        value = values[metric]
        reason = time_reason or _reading_problem(metric, value, bounds)
        if reason:
            rejects.append((t_ms, str(metric)[:64], _printable(value), reason))
        else:
            good[metric] = float(value)
    if good:
        samples.append((t_ms, good, quality))


def _reading_problem(metric, value, bounds):
    if metric not in bounds:
        return "unknown_metric"
    if not _is_number(value):
        return "bad_type"
    if not _is_finite_number(value):
        return "not_finite"
    lo, hi = bounds[metric]
    if not lo <= value <= hi:
        return "out_of_bounds"
    return None


def _printable(value):
    # Keep a rejected value as something a dead-letter store can serialise.
    if value is None or type(value) in (bool, int, str):
        return value if type(value) is not str else value[:64]
    if type(value) is float:
        return value if math.isfinite(value) else str(value)
    return repr(value)[:64]


# ---------------------------------------------------------------- status


STATES = ("online", "offline")
MAX_LINK_ERROR_LEN = 32


def encode_status(state, fw="", uptime_s=0, mem_free=None, rssi_dbm=None, battery_v=None, dropped=0,
                  boot=None, tls=None, link_error=None):
    """The birth message (state online) or the last will (state offline), retained.

    tls: whether this connection is encrypted; link_error: why the previous
    connection attempt failed (e.g. "tls_unknown_ca"), reported once it is back."""
    body = {"v": VERSION, "state": state}
    if fw:
        body["fw"] = fw
    if boot is not None:
        body["boot"] = boot
    if tls is not None:
        body["tls"] = bool(tls)
    if link_error:
        body["link_error"] = link_error[:MAX_LINK_ERROR_LEN]
    if state == "online":
        body["uptime_s"] = uptime_s
        body["dropped"] = dropped
        if mem_free is not None:
            body["mem_free"] = mem_free
        if rssi_dbm is not None:
            body["rssi_dbm"] = rssi_dbm
        if battery_v is not None:
            body["battery_v"] = battery_v
    return _dumps(body)


_STATUS_NUMBERS = {
    "uptime_s": (0, 1e10),
    "dropped": (0, MAX_SEQ),
    "mem_free": (0, 1e12),
    "rssi_dbm": (-150, 0),
    "battery_v": (0, 60),
}


def decode_status(raw, loads=strict_loads):
    """Validate a status message; returns a dict with known keys only ("boot" only when sent)."""
    body = _loads(raw, loads)
    _check_envelope(body, "status")
    state = body.get("state")
    if state not in STATES:
        raise ContractError("bad_state", repr(state)[:20])
    out = {"state": state}
    boot = _boot(body)
    if boot is not None:
        out["boot"] = boot
    if "tls" in body:
        if type(body["tls"]) is not bool:
            raise ContractError("bad_tls", "tls must be true or false")
        out["tls"] = body["tls"]
    link_error = body.get("link_error")
    if link_error is not None:
        if type(link_error) is not str or not 0 < len(link_error) <= MAX_LINK_ERROR_LEN:
            raise ContractError("bad_link_error", repr(link_error)[:40])
        out["link_error"] = link_error
    fw = body.get("fw")
    if fw is not None:
        if type(fw) is not str or len(fw) > MAX_FW_LEN:
            raise ContractError("bad_fw", repr(fw)[:40])
        out["fw"] = fw
    for key in _STATUS_NUMBERS:
        if key in body:
            value = body[key]
            lo, hi = _STATUS_NUMBERS[key]
            if not _is_finite_number(value) or not lo <= value <= hi:
                raise ContractError("bad_" + key, repr(value)[:20])
            out[key] = value
    return out


# ---------------------------------------------------------------- config


MIN_INTERVAL_MS = 1000
MAX_INTERVAL_MS = 24 * 3600 * 1000


def encode_config(interval_ms, batch_size=1, thresholds=None):
    """A device's config, published retained by the server."""
    body = {"v": VERSION, "interval_ms": interval_ms, "batch_size": batch_size}
    if thresholds:
        body["thresholds"] = thresholds
    raw = _dumps(body)
    decode_config(raw)  # never publish a config the device would refuse
    return raw


def decode_config(raw, loads=strict_loads):
    """Validate a config message. thresholds: {metric: [low, high]} in the metric's unit."""
    body = _loads(raw, loads)
    _check_envelope(body, "config")
    interval_ms = body.get("interval_ms")
    if not _is_int(interval_ms) or not MIN_INTERVAL_MS <= interval_ms <= MAX_INTERVAL_MS:
        raise ContractError("bad_interval", repr(interval_ms)[:20])
    batch_size = body.get("batch_size", 1)
    if not _is_int(batch_size) or not 1 <= batch_size <= MAX_SAMPLES:
        raise ContractError("bad_batch_size", repr(batch_size)[:20])
    thresholds = body.get("thresholds", {})
    if type(thresholds) is not dict:
        raise ContractError("bad_thresholds", "thresholds must be an object")
    for metric in thresholds:
        pair = thresholds[metric]
        if metric not in METRICS:
            raise ContractError("unknown_metric", repr(metric)[:40])
        if type(pair) is not list or len(pair) != 2 or not _is_number(pair[0]) or not _is_number(pair[1]):
            raise ContractError("bad_thresholds", "a threshold is [low, high]")
        if not (_is_finite_number(pair[0]) and _is_finite_number(pair[1])) or pair[0] > pair[1]:
            raise ContractError("bad_thresholds", "low must be <= high")
    return {"interval_ms": interval_ms, "batch_size": batch_size, "thresholds": thresholds}


# ---------------------------------------------------------------- alerts
# Server to server (analytics -> API, control room), on alert_topic(device):
#   {"v": 1, "id": "<incident id>", "device": "wtr-0001", "kind": "water",
#    "district": "north", "metric": "pressure_bar", "rule": "pressure_low",
#    "state": "active" | "cleared", "severity": "info" | "warning" | "critical",
#    "score": 0.93, "observed": 1.2, "expected": 3.5,
#    "started_ms": ..., "updated_ms": ..., "explanation": "...",
#    "message": {"key": "explain.limit_below", "params": {"metric": "pressure_bar", "observed": 1.2, ...}}}
# One incident keeps one id; each change (severity, state) is a new message.
# "explanation" is the English sentence (for readers that know no catalogue: Grafana, older APIs);
# "message" (optional, added later: older readers ignore it) is the same sentence as a catalogue key
# (api/static/i18n) and its raw parameters, so every reader renders it in its user's language
# (telemetry_shared/alert_text.py, the control room).

ALERT_STATES = ("active", "cleared")
SEVERITIES = ("info", "warning", "critical")
_ALERT_TEXT = {"id": 64, "device": 32, "kind": 16, "district": 64, "metric": 32, "rule": 64, "explanation": 1000}


def encode_alert(alert):
    raw = _dumps(dict(alert, v=VERSION))
    decode_alert(raw)  # never publish an alert the API would refuse
    return raw


def decode_alert(raw, loads=strict_loads):
    """Validate an alert message; returns a dict with the known keys only."""
    body = _loads(raw, loads)
    _check_envelope(body, "alert")
    out = {}
    for key in _ALERT_TEXT:
        value = body.get(key, "")
        if type(value) is not str or len(value) > _ALERT_TEXT[key]:
            raise ContractError("bad_" + key, repr(value)[:40])
        out[key] = value
    if not out["id"] or not valid_device_id(out["device"]):
        raise ContractError("bad_id", "an alert needs an id and a valid device")
    if body.get("state") not in ALERT_STATES:
        raise ContractError("bad_state", repr(body.get("state"))[:20])
    if body.get("severity") not in SEVERITIES:
        raise ContractError("bad_severity", repr(body.get("severity"))[:20])
    out["state"] = body["state"]
    out["severity"] = body["severity"]
    score = body.get("score")
    if not _is_finite_number(score) or not 0 <= score <= 1:
        raise ContractError("bad_score", repr(score)[:20])
    out["score"] = float(score)
    for key in ("observed", "expected"):
        value = body.get(key)
        if value is not None and not _is_finite_number(value):
            raise ContractError("bad_" + key, repr(value)[:20])
        out[key] = value
    for key in ("started_ms", "updated_ms"):
        value = body.get(key)
        if not _is_int(value) or value < 0:
            raise ContractError("bad_" + key, repr(value)[:20])
        out[key] = value
    out["message"] = _alert_message(body.get("message"))
    return out


MESSAGE_PARAMS = 16  # parameters of one alert message at most
_PARAM_TEXT = 200  # characters of a text parameter at most (a standard's name is the longest)
_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._"


def _alert_message(message):
    """An alert's optional message {key, params}: None when absent; ContractError when malformed."""
    if message is None:
        return None
    if type(message) is not dict or type(message.get("key")) is not str or type(message.get("params", {})) is not dict:
        raise ContractError("bad_message", "message is {key, params}")
    key, params = message["key"], message.get("params", {})
    if not 1 <= len(key) <= 64 or not all(c in _KEY_CHARS for c in key):
        raise ContractError("bad_message", repr(key)[:40])
    if len(params) > MESSAGE_PARAMS:
        raise ContractError("bad_message", "too many params")
    for name in params:
        if type(name) is not str or not 1 <= len(name) <= 32 or not _param_ok(params[name]):
            raise ContractError("bad_message", repr(name)[:40])
    return {"key": key, "params": params}


def _param_ok(value):
    if value is None or type(value) is bool:
        return True
    if _is_number(value):
        return math.isfinite(value)
    if type(value) is str:
        return len(value) <= _PARAM_TEXT
    if type(value) is list:  # metric names
        return len(value) <= MAX_METRICS_PER_SAMPLE and all(type(v) is str and len(v) <= 64 for v in value)
    return False
