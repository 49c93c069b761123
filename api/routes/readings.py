"""Readings from InfluxDB: the latest per device, one device's history
downsampled with GROUP BY time, and aggregates per district and kind."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api import queries
from api.auth import AnyRole
from api.errors import AUTH_RESPONSES, ErrorBody
from api.latest_cache import LatestCache
from api.paging import Page, PageParams, page_params
from api.services import Services
from edge import contract
from telemetry_shared.registry import DeviceNotFound

router = APIRouter(prefix="/readings", tags=["readings"], responses=AUTH_RESPONSES)

Kind = Literal["water", "power", "building", "traffic"]
Fn = Literal["mean", "min", "max", "median", "last", "count", "sum"]
DeviceId = Annotated[str, Query(min_length=3, max_length=32, pattern=r"^[a-z0-9][a-z0-9-]*$")]
District = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Metric = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
TimeMs = Annotated[int, Query(ge=0, le=10**14, description="UTC milliseconds")]
Duration = Annotated[str, Query(max_length=12, description="e.g. 30s, 5m, 1h, 1d")]

DAY_MS = 86_400_000
MAX_SPAN_MS = 400 * DAY_MS


class LatestReading(BaseModel):
    device: str
    kind: str
    district: str
    t_ms: int
    values: dict[str, float]
    seq: int | None = None


class Point(BaseModel):
    t_ms: int
    value: float


class History(Page[Point]):
    device: str
    kind: str
    metric: str
    unit: str
    fn: str
    every_ms: int


class Aggregate(BaseModel):
    district: str
    kind: str
    metric: str
    mean: float | None
    min: float | None
    max: float | None
    count: int


def time_range(start_ms: int | None, end_ms: int | None, default_span_ms: int = DAY_MS) -> tuple[int, int]:
    end = end_ms if end_ms is not None else queries.now_ms()
    start = start_ms if start_ms is not None else max(0, end - default_span_ms)
    if start >= end:
        raise HTTPException(422, "start_ms must be before end_ms")
    if end - start > MAX_SPAN_MS:
        raise HTTPException(422, "the range may span at most 400 days")
    return start, end


def _bad_query(exc: queries.QueryError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.get("/latest", summary="The newest reading of each device (a snapshot at most 1 s old)")
def latest(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
           kind: Kind | None = None, district: District | None = None, device: DeviceId | None = None,
           max_age: Duration = "1d") -> Page[LatestReading]:
    try:
        max_age_ms = min(queries.duration_ms(max_age), contract.MAX_AGE_MS)
    except queries.QueryError as exc:
        raise _bad_query(exc) from exc
    cache: LatestCache = services.extra["latest_cache"]
    rows = cache.get(max_age_ms, kind=kind, district=district, device=device)
    return Page(data=rows[page.offset: page.offset + page.limit], count=len(rows))


@router.get("/{device_id}/history", summary="One metric of one device over time, downsampled",
            responses={404: {"model": ErrorBody, "description": "no such device"}})
def history(device_id: str, user: AnyRole, services: Services, metric: Metric,
            start_ms: TimeMs | None = None, end_ms: TimeMs | None = None,
            every: Annotated[str | None, Query(max_length=12, description="bucket, e.g. 5m; default: "
                                               "the smallest round bucket giving at most `points`")] = None,
            points: Annotated[int, Query(ge=1, le=queries.MAX_BUCKETS)] = 500, fn: Fn = "mean") -> History:
    try:
        device = services.registry.get(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(404, f"no device {device_id[:40]!r}") from exc
    start, end = time_range(start_ms, end_ms)
    try:
        bucket = queries.duration_ms(every) if every else queries.bucket_for(end - start, points)
        if (end - start) / bucket > queries.MAX_BUCKETS:
            raise queries.QueryError(f"every={every} gives more than {queries.MAX_BUCKETS} buckets; widen it")
        rows = queries.history(services.influx, device.kind, device.id, metric, start, end, bucket, fn)
    except queries.QueryError as exc:
        raise _bad_query(exc) from exc
    return History(data=rows, count=len(rows), device=device.id, kind=device.kind, metric=metric,
                   unit=contract.KINDS[device.kind][metric][0], fn=fn, every_ms=bucket)


@router.get("/aggregates", summary="mean, min, max and count of one metric per district")
def aggregates(user: AnyRole, services: Services, kind: Kind, metric: Metric,
               page: Annotated[PageParams, Depends(page_params)], district: District | None = None,
               start_ms: TimeMs | None = None, end_ms: TimeMs | None = None) -> Page[Aggregate]:
    start, end = time_range(start_ms, end_ms)
    try:
        rows = queries.aggregates(services.influx, kind, metric, start, end, district)
    except queries.QueryError as exc:
        raise _bad_query(exc) from exc
    return Page(data=rows[page.offset: page.offset + page.limit], count=len(rows))
