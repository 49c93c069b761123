"""The weekly report (api/reports/weekly.py): its sections as JSON, one section as CSV, and the page that
shows them (it holds no data; it asks for a key and reads the JSON like any client)."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from api.auth import AnyRole
from api.errors import ErrorBody
from api.reports import weekly
from api.routes.control_room import STATIC
from api.services import Services

Week = Annotated[str, Query(pattern=weekly.WEEK_PATTERN, description="an ISO week in the city's time, e.g. 2026-W02")]
SectionKey = Literal[tuple(s.key for s in weekly.SECTIONS)]  # type: ignore[valid-type]

router = APIRouter(tags=["reports"], responses={
    401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the key's role may not read reports"},
    409: {"model": ErrorBody, "description": "week 53 of a year that has 52"},
    503: {"model": ErrorBody, "description": "the readings store (InfluxDB) did not answer"}})


class ReportSection(BaseModel):
    key: str
    title: str = Field(description="an i18n key (api/static/i18n)")
    columns: list[str]
    rows: list[dict]
    notes: list[str] = Field(description="i18n keys of notes under the table")
    bursts: list[dict] | None = None


class WeeklyReport(BaseModel):
    week: str
    from_ms: int
    to_ms: int
    sections: list[ReportSection]


async def _build(services, week: str) -> dict:
    try:
        return await asyncio.to_thread(weekly.build, services, week)
    except weekly.ReportError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/reports/weekly", summary="The weekly report: every section (water balance per DMA, ...)")
async def weekly_report(week: Week, user: AnyRole, services: Services) -> WeeklyReport:
    return WeeklyReport(**await _build(services, week))


@router.get("/reports/weekly.csv", summary="One section of the weekly report as CSV", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
async def weekly_csv(week: Week, section: SectionKey, user: AnyRole, services: Services) -> Response:
    built = await _build(services, week)
    part = next(s for s in built["sections"] if s["key"] == section)
    rows = [{c: row.get(c) for c in part["columns"]} for row in part["rows"]]
    from analytics.waterdata import to_csv  # with scipy: loaded when a report is asked for, not at start

    text = to_csv(rows) or ",".join(part["columns"]) + "\n"
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="report-{week}-{section}.csv"'})


@router.get("/control-room/report", response_class=FileResponse, summary="The weekly report page (HTML)",
            responses={200: {"content": {"text/html": {}}}})
def report_page() -> FileResponse:
    return FileResponse(STATIC / "report.html", media_type="text/html", headers={"Cache-Control": "no-cache"})
