"""Replaying dead letters once their cause is fixed (a device registered, a
bound corrected, InfluxDB's schema cleared): each entry is decoded again with
today's registry and contract, its good readings written (harmlessly, if they
were written before: an identical point overwrites), and the entry marked
replayed only when what it was rejected for is gone."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ingest.deadletter import DeadLetters
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics
from telemetry_shared.influx import InfluxRejected, InfluxTooLarge, LineWriter
from telemetry_shared.registry import Registry

LINE_REASONS = ("influx_rejected", "influx_too_large")  # the payload is one line of line protocol
NOT_REPLAYABLE = ("spool_corrupt",)


@dataclass
class ReplayResult:
    replayed: list[int] = field(default_factory=list)
    still_rejected: dict[int, str] = field(default_factory=dict)  # id -> why, today
    not_replayable: list[int] = field(default_factory=list)
    points_written: int = 0


class Replayer:
    def __init__(self, dead_letters: DeadLetters, registry: Registry, writer: LineWriter):
        self.dead_letters = dead_letters
        self.writer = writer
        self.decoder = Decoder(registry, Metrics("replay"))

    def replay(self, entries: list[dict], progress: Callable[[int], None] | None = None) -> ReplayResult:
        """Replay the given entries (rows of DeadLetters.list); InfluxUnavailable propagates."""
        result = ReplayResult()
        self.decoder.devices.refresh()
        for entry in entries:
            self._one(entry, result)
            if progress:
                progress(1)
        self.dead_letters.mark_replayed(result.replayed)
        return result

    def _one(self, entry: dict, result: ReplayResult) -> None:
        if entry["reason"] in NOT_REPLAYABLE:
            result.not_replayable.append(entry["id"])
            return
        if entry["reason"] in LINE_REASONS:
            line = bytes(entry["payload"]).decode(errors="replace")
            try:
                self.writer.write([line])
            except (InfluxRejected, InfluxTooLarge) as exc:
                result.still_rejected[entry["id"]] = str(exc)[:300]
                return
            result.points_written += 1
            result.replayed.append(entry["id"])
            return
        self.decoder.forget_sequences()  # an operator's replay is never a redelivery
        out = Decoded()
        self.decoder.decode(entry["topic"], bytes(entry["payload"]), int(time.time() * 1000), out)
        if out.lines:
            self.writer.write(out.lines)
            result.points_written += len(out.lines)
        why = _still_applies(entry, out)
        if why:
            result.still_rejected[entry["id"]] = why
        else:
            result.replayed.append(entry["id"])


def _still_applies(entry: dict, out: Decoded) -> str | None:
    """The reason this entry still stands today, or None."""
    reading = _reading_of(entry)
    for reason, _device, _topic, detail, _payload in out.rejects:
        if reading is None:  # the whole message was refused: any message-level refusal stands
            if _reading_of({"detail": detail}) is None:
                return f"{reason}: {detail}"[:300]
        elif _reading_of({"detail": detail}) == reading:
            return f"{reason}: {detail}"[:300]
    return None


def _reading_of(entry: dict) -> tuple | None:
    """(t_ms, metric) for an entry about one reading, None for a whole message."""
    try:
        detail = orjson.loads(entry["detail"])
    except (orjson.JSONDecodeError, TypeError):
        return None
    if isinstance(detail, dict) and "t_ms" in detail and "metric" in detail:
        return detail["t_ms"], detail["metric"]
    return None


