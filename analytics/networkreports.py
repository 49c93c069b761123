"""The utility engineers' figures, kept current: every `period_s` the water balance of every district meter
area and the power-quality report of every feeder are computed from InfluxDB and written back to it, where
the Water network and Power quality and losses boards read them.

What is written is what `city water-balance --write` and `city power-quality --write` write (the same
functions: analytics/waterdata.py, analytics/powerreport.py), over the last whole local days:
- `water_balance` (tags dma, district): the IWA balance per DMA and local day, WATER_DAYS days up to today's
  local midnight, with the minimum night flow and leakage of each day;
- `feeder_losses`, `power_quality`, `tampering_suspects`: losses per feeder and day, EN 50160 verdicts per
  meter and week, and the suspects, over POWER_DAYS days (four whole weeks: the suspects' change test
  needs about that long, analytics/README.md).
A repeated point overwrites the one before (same measurement, tags and time), so each run replaces the
days it covers. A city with no DMA or no feeder in the registry skips that half; a run that fails (InfluxDB
away) is logged and tried again at the next period. Runs on a thread of its own in the analytics service
(shard 0 only, like the DMA burst watch), so the stream is never held up by it.
"""

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from analytics import powerreport, waterdata
from analytics.en50160 import Limits
from analytics.water import WaterParams
from edge import contract
from telemetry_shared.influx import InfluxError, InfluxQL, LineWriter
from telemetry_shared.registry import Registry

log = logging.getLogger("analytics")

DAY_MS = 86_400_000
WATER_DAYS = 8
POWER_DAYS = 28


def local_midnight_ms(now_ms: int, zone: str, utc_offset_h: float) -> int:
    """The start of now's local day in `zone` (an IANA name; "": a fixed UTC offset), Unix ms."""
    if not zone:
        offset_ms = int(utc_offset_h * 3_600_000)
        return (now_ms + offset_ms) // DAY_MS * DAY_MS - offset_ms
    local = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(zone))
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


@dataclass
class RunResult:
    water_points: int = 0
    power_points: int = 0


class NetworkReports:
    """Writes the water balance and the power-quality report every `period_s` (see the module docstring)."""

    def __init__(self, registry: Registry, influx: InfluxQL, writer: LineWriter, params: WaterParams,
                 limits: Limits, zone: str, utc_offset_h: float, period_s: float):
        self.registry = registry
        self.influx = influx
        self.writer = writer
        self.params = params
        self.limits = limits
        self.zone = zone
        self.utc_offset_h = utc_offset_h
        self.period_s = period_s
        self.runs = 0

    def run_once(self, now_ms: int) -> RunResult:
        """Compute and write both reports for the days before now's local day; returns the points written."""
        today = local_midnight_ms(now_ms, self.zone, self.utc_offset_h)
        result = RunResult()
        water = self.registry.topology("water")
        if len(water.ids):
            rep = waterdata.report(self.influx, water, today - WATER_DAYS * DAY_MS, today, self.params, self.zone,
                                   self.utc_offset_h)
            lines = waterdata.write_lines(rep, waterdata.dma_districts(rep.topology, self._districts("water")))
            self.writer.write(lines)
            result.water_points = len(lines)
        power = self.registry.topology("power")
        if len(power.ids):
            report = powerreport.build_report(self.influx, power, self.limits, today - POWER_DAYS * DAY_MS,
                                              POWER_DAYS, round(self.utc_offset_h))
            lines = powerreport.write_lines(report, self._districts("power"))
            self.writer.write(lines)
            result.power_points = len(lines)
        self.runs += 1
        return result

    def _districts(self, kind: str) -> dict[str, str]:
        return {d.id: d.district for d in self.registry.list(kind=kind, limit=10_000_000)[0]}

    def run(self, stopping: threading.Event) -> None:
        """Run at once, then every period_s until `stopping` is set; a failed run is logged, not fatal: the
        thread is the boards' only source of these figures, and nothing restarts it if it ends."""
        wait_s = 0.0
        while not stopping.wait(wait_s):
            wait_s = self.period_s
            started = time.monotonic()
            try:
                done = self.run_once(int(time.time() * 1000))
                log.info("network reports written: %d water balance and %d power points in %.1f s",
                         done.water_points, done.power_points, time.monotonic() - started)
            except (InfluxError, OSError, ValueError, contract.ContractError):
                log.exception("the network reports could not be written this time")
            except Exception:  # noqa: BLE001 - a bug in one run must not end the reports until a restart
                log.exception("the network reports failed unexpectedly; trying again at the next period")
