"""Readings from InfluxDB: the latest per device, one device's history
downsampled with GROUP BY time, and aggregates per district and kind."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api import queries
from api.auth import AnyRole
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.params import DURATION_PATTERN, DevicePath, DeviceQuery, DistrictQuery, Duration, Kind, MetricName
from api.services import Services
from edge import contract
from telemetry_shared.registry import DeviceNotFound

router = APIRouter(prefix="/readings", tags=["readings"], responses=AUTH_RESPONSES)

Fn = Literal["mean", "min", "max", "median", "last", "count", "sum"]
TimeMs = Annotated[int, Query(ge=0, le=10**14, description="UTC milliseconds")]

DAY_MS = 86_400_000
EVERY_HELP = ("bucket, e.g. 5m (at most 999 days), widened when it would give more than 10,000 buckets "
              "(`every_ms` in the answer is the bucket used); default: the smallest round bucket giving "
              "at most `points`")
NO_SUCH = {404: {"model": ErrorBody, "description": "no such device, or no such metric for that kind"}}


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
    """The range asked for; start >= end is an empty range (no readings), not an error.
    Its length needs no cap: InfluxDB keeps raw readings for the retention period only,
    and the buckets are widened to at most queries.MAX_BUCKETS."""
    end = end_ms if end_ms is not None else queries.now_ms()
    start = start_ms if start_ms is not None else max(0, end - default_span_ms)
    return start, end


def _metric_of(kind: str, metric: str) -> None:
    """404 when devices of that kind have no such metric: there is no such series."""
    if metric not in contract.KINDS[kind]:
        raise HTTPException(404, f"{kind} devices have no metric {metric}; they have {', '.join(contract.KINDS[kind])}")


@router.get("/latest", summary="The newest reading of each device (a snapshot at most 1 s old)")
def latest(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
           kind: Kind | None = None, district: DistrictQuery | None = None, device: DeviceQuery | None = None,
           max_age: Duration = "1d") -> Page[LatestReading]:
    max_age_ms = min(queries.duration_ms(max_age), contract.MAX_AGE_MS)
    rows = services.latest.get(max_age_ms, kind=kind, district=district, device=device)
    return Page(data=rows[page.offset: page.offset + page.limit], count=len(rows))


@router.get("/{device_id}/history", summary="One metric of one device over time, downsampled", responses=NO_SUCH)
def history(device_id: DevicePath, user: AnyRole, services: Services, metric: MetricName,
            start_ms: TimeMs | None = None, end_ms: TimeMs | None = None,
            every: Annotated[str | None, Query(pattern=DURATION_PATTERN, description=EVERY_HELP)] = None,
            points: Annotated[int, Query(ge=1, le=queries.MAX_BUCKETS)] = 500, fn: Fn = "mean") -> History:
    try:
        device = services.registry.get(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(404, f"no device {device_id}") from exc
    _metric_of(device.kind, metric)
    start, end = time_range(start_ms, end_ms)
    bucket = queries.duration_ms(every) if every else queries.bucket_for(end - start, points)
    bucket = max(bucket, -(-(end - start) // queries.MAX_BUCKETS))  # every_ms in the answer says what was used
    rows = []
    if end > start:
        rows = queries.history(services.influx, device.kind, device.id, metric, start, end, bucket, fn)
    return History(data=rows, count=len(rows), device=device.id, kind=device.kind, metric=metric,
                   unit=contract.KINDS[device.kind][metric][0], fn=fn, every_ms=bucket)


@router.get("/aggregates", summary="mean, min, max and count of one metric per district", responses=NO_SUCH)
def aggregates(user: AnyRole, services: Services, metric: MetricName,
               page: Annotated[PageParams, Depends(page_params)],
               kind: Annotated[Kind | None, Query(description="optional: the metric's kind")] = None,
               district: DistrictQuery | None = None,
               start_ms: TimeMs | None = None, end_ms: TimeMs | None = None) -> Page[Aggregate]:
    metric_kind = contract.METRICS[metric][0]
    _metric_of(kind or metric_kind, metric)
    start, end = time_range(start_ms, end_ms)
    rows = queries.aggregates(services.influx, metric_kind, metric, start, end, district) if end > start else []
    return Page(data=rows[page.offset: page.offset + page.limit], count=len(rows))
