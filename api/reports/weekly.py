"""The weekly report: a list of sections, each a table of rows computed for one ISO week in the city's time.

A section is a key, a title (an i18n key of api/static/i18n), its columns and a function that builds its
rows from the API's services for [start_ms, end_ms). To add one (e.g. electricity), write its function and
append a `Section` to SECTIONS: the page (api/static/report.js) draws every section's table with the column
titles `report.col.<column>`, and `GET /reports/weekly.csv?section=<key>` serves its rows as CSV.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from telemetry_shared.settings import Settings

WEEK_PATTERN = r"^20[0-9]{2}-W(0[1-9]|[1-4][0-9]|5[0-3])$"  # an ISO week of 2000-2099, e.g. 2026-W02


class ReportError(ValueError):
    pass


@dataclass(frozen=True)
class Section:
    key: str  # a-z: the CSV's ?section= and the page's anchor
    title: str  # i18n key of the section's heading
    columns: tuple[str, ...]  # row keys, in order; titled report.col.<column> on the page
    build: Callable[..., dict]  # (services, start_ms, end_ms) -> {"rows": [...], "notes": [i18n keys]}


def week_range(week: str, settings: Settings) -> tuple[int, int]:
    """Monday 00:00 to the next Monday 00:00 of an ISO week in the city's zone, as Unix ms."""
    try:
        monday = dt.date.fromisocalendar(int(week[:4]), int(week[6:8]), 1)
    except ValueError as exc:
        raise ReportError(f"{week} is not a week of that year") from exc
    zone = ZoneInfo(settings.local_zone) if settings.local_zone else \
        dt.timezone(dt.timedelta(hours=settings.utc_offset_hours or 0))
    start = dt.datetime.combine(monday, dt.time(), zone)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


WATER_COLUMNS = ("rank", "dma", "connections", "days", "system_input_m3", "billed_m3", "real_losses_m3",
                 "apparent_losses_m3", "nrw_m3", "nrw_pct", "leakage_m3_per_day", "leakage_l_per_connection_day",
                 "night_flow_lps", "night_use_lps", "bursts")


def water(services, start_ms: int, end_ms: int) -> dict:
    """The water balance per DMA over the week, leakiest first, and the bursts found (analytics/waterdata.py)."""
    # imported here: scipy (analytics/water.py) is ~12 MB of the API's memory, needed only by this report
    from analytics.water import WaterParams
    from analytics.waterdata import WaterDataError, burst_rows, report, summary_rows

    settings = services.settings
    params = WaterParams(night_window_h=settings.city.water.night_window_h)
    try:
        rep = report(services.influx, services.registry.topology("water"), start_ms, end_ms, params,
                     settings.local_zone, settings.utc_offset_hours or 0)
    except WaterDataError:
        return {"rows": [], "notes": ["report.water.no_dmas"]}
    return {"rows": summary_rows(rep), "notes": ["report.water.note"], "bursts": burst_rows(rep)}


POWER_COLUMNS = ("rank", "feeder", "transformer", "customers", "input_kwh", "loss_kwh", "loss_pct", "complete_days")
QUALITY_COLUMNS = ("device", "voltage_share_in_band_pct", "voltage_min_v", "voltage_max_v", "voltage_outside_always",
                   "frequency_share_in_band_pct", "frequency_min_hz", "frequency_max_hz", "frequency_outside_always")
TAMPERING_COLUMNS = ("rank", "device", "feeder", "since", "drop_pct", "meter_drop_kwh_day", "unrecorded_kwh")


def _power_influx(services):
    """The report reads weeks of every power meter in a few queries: longer than one API read may take."""
    from analytics.powerreport import REPORT_TIMEOUT_S
    from telemetry_shared.influx import InfluxQL

    s = services.settings
    return InfluxQL(s.influx_url, s.influx_db, s.influx_user, s.influx_password, s.influx_token,
                    max(s.influx_timeout_s, REPORT_TIMEOUT_S))


def _power(services, start_ms: int, build: str) -> dict:
    """One electricity section (analytics/powerreport.py), the grid's limits from the city profile."""
    from analytics import powerreport
    from analytics.en50160 import Limits

    settings = services.settings
    offset_h = settings.utc_offset_hours if settings.utc_offset_hours is not None else settings.city.utc_offset_hours
    limits = Limits.from_grid(settings.city.grid)
    influx = _power_influx(services)
    try:
        if build == "quality":
            return powerreport.quality_section(influx, limits, start_ms, offset_h)
        topology = services.registry.topology("power")
        if build == "feeders":
            return powerreport.feeder_section(influx, topology, limits, start_ms, offset_h)
        section = powerreport.tampering_section(influx, topology, limits, start_ms, offset_h)
        for row in section["rows"]:  # the day the step began, as a local date
            local = dt.datetime.fromtimestamp(row["since_ms"] / 1000 + offset_h * 3600, dt.UTC)
            row["since"] = local.date().isoformat()
        return section
    finally:
        influx.close()


def power(services, start_ms: int, end_ms: int) -> dict:
    return _power(services, start_ms, "feeders")


def power_quality(services, start_ms: int, end_ms: int) -> dict:
    return _power(services, start_ms, "quality")


def tampering(services, start_ms: int, end_ms: int) -> dict:
    return _power(services, start_ms, "tampering")


SECTIONS: list[Section] = [Section("water", "report.water.title", WATER_COLUMNS, water),
                           Section("power", "report.power.title", POWER_COLUMNS, power),
                           Section("power_quality", "report.power_quality.title", QUALITY_COLUMNS, power_quality),
                           Section("tampering", "report.tampering.title", TAMPERING_COLUMNS, tampering)]


def build(services, week: str) -> dict:
    """Every section of the report of one week."""
    start_ms, end_ms = week_range(week, services.settings)
    sections = []
    for section in SECTIONS:
        built = section.build(services, start_ms, end_ms)
        sections.append({"key": section.key, "title": section.title, "columns": list(section.columns)} | built)
    return {"week": week, "from_ms": start_ms, "to_ms": end_ms, "sections": sections}
