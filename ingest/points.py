"""Turn a decoded telemetry batch into line protocol, one point per sample.

Storage schema: measurement = the device's kind; tags device and district (from
the registry); fields = the metrics (always floats), `seq` (integer, the
message's sequence number), `hist` (boolean, on every point: true for
backfilled history, false for live readings) and `q` (integer quality flags,
only when set).

`hist` is a field, not a tag: a tag is part of a series' identity, so a
reading stored live and later replayed from the device's spool as history
would become two points instead of one overwriting the other.
"""

from edge.contract import Batch
from telemetry_shared.lineproto import escape_key, format_field, line


def batch_lines(batch: Batch, device_id: str, kind: str, district: str) -> list[str]:
    head = f"{kind},device={escape_key(device_id)},district={escape_key(district)} "
    seq = f"seq={batch.seq}i,hist={'true' if batch.hist else 'false'}"
    lines = []
    for t_ms, values, quality in batch.samples:
        fields = ",".join(f"{metric}={format_field(value)}" for metric, value in values.items())
        extra = f",q={quality}i" if quality else ""
        lines.append(f"{head}{fields},{seq}{extra} {t_ms}")
    return lines


STATUS_NUMBERS = ("uptime_s", "mem_free", "rssi_dbm", "battery_v", "dropped")


def status_line(status: dict, device_id: str, kind: str, district: str, t_ms: int) -> str:
    """`device_status`: online (1 or 0) and the health figures the device reported, all floats
    (a field never changes type)."""
    fields: dict[str, float] = {"online": 1.0 if status["state"] == "online" else 0.0}
    fields |= {key: float(status[key]) for key in STATUS_NUMBERS if key in status}
    return line("device_status", {"device": device_id, "district": district, "kind": kind}, fields, t_ms)
