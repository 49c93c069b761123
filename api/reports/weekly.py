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

from analytics.water import WaterParams
from analytics.waterdata import WaterDataError, burst_rows, report, summary_rows
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
    settings = services.settings
    params = WaterParams(night_window_h=settings.city.water.night_window_h)
    try:
        rep = report(services.influx, services.registry.topology("water"), start_ms, end_ms, params,
                     settings.local_zone, settings.utc_offset_hours or 0)
    except WaterDataError:
        return {"rows": [], "notes": ["report.water.no_dmas"]}
    return {"rows": summary_rows(rep), "notes": ["report.water.note"], "bursts": burst_rows(rep)}


SECTIONS: list[Section] = [Section("water", "report.water.title", WATER_COLUMNS, water)]


def build(services, week: str) -> dict:
    """Every section of the report of one week."""
    start_ms, end_ms = week_range(week, services.settings)
    sections = []
    for section in SECTIONS:
        built = section.build(services, start_ms, end_ms)
        sections.append({"key": section.key, "title": section.title, "columns": list(section.columns)} | built)
    return {"week": week, "from_ms": start_ms, "to_ms": end_ms, "sections": sections}
