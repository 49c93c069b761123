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
from telemetry_shared.lineproto import escape_key, line


def line_head(kind: str, device_id: str, district: str) -> str:
    """Measurement and tags, the same for every point of a device (the decoder keeps them)."""
    return f"{kind},device={escape_key(device_id)},district={escape_key(district)} "


def batch_lines(batch: Batch, head: str) -> list[str]:
    # The contract hands over finite floats only, so repr() is the field format (format_field's
    # checks cost a third of the line building at one reading a message).
    tail = f",seq={batch.seq}i,hist={'true' if batch.hist else 'false'}"
    return [f"{head}{','.join([f'{metric}={value!r}' for metric, value in values.items()])}{tail}"
            f"{f',q={quality}i' if quality else ''} {t_ms}" for t_ms, values, quality in batch.samples]


STATUS_NUMBERS = ("uptime_s", "mem_free", "rssi_dbm", "battery_v", "dropped")


def status_line(status: dict, device_id: str, kind: str, district: str, t_ms: int) -> str:
    """`device_status`: online (1 or 0) and the health figures the device reported, all floats
    (a field never changes type)."""
    fields: dict[str, float] = {"online": 1.0 if status["state"] == "online" else 0.0}
    fields |= {key: float(status[key]) for key in STATUS_NUMBERS if key in status}
    return line("device_status", {"device": device_id, "district": district, "kind": kind}, fields, t_ms)
