"""Open data, no key, rate limited per client address in a bucket of its own (CITY_API_OPENDATA_RATE_PER_MIN,
also the CKAN routes'): the datasets, each dataset's page of periods,
the downloads (CSV, JSON) per local day or month, and the DCAT catalogue (JSON-LD). Every row comes
through api/opendata/datasets.rows, so through the publication policy (api/opendata/policy.py); a closed
or unknown dataset is 404 alike, and a closed one is in no list.

Hostile input answers fast with a 4xx before InfluxDB is asked: a period that is not a day or a month
of 2000-2099 (422, by the schema), a format not offered (422), a day the month lacks, a period not begun
yet, a dataset that is not published (404). A period with nothing published (before the dataset's first
row, or no row yet at all) is 200 with an empty file: CSV header only, JSON `"data": []`, NGSI-LD `[]`."""

import datetime as dt
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.opendata import catalogue, datasets, downloads, policy
from api.opendata.datasets import Dataset
from api.ratelimit import opendata_rate_limit
from api.services import ApiServices, Services

router = APIRouter(prefix="/opendata", tags=["open data"], dependencies=[Depends(opendata_rate_limit)],
                   responses={429: {"description": "too many requests; see Retry-After"},
                              404: {"description": "no published dataset of this id, a day the month lacks, "
                                                           "or a period not begun yet"}})

PLACEHOLDER = "https://opendata-base.invalid"
SMALL_FILE_BYTES = 4_000_000
DATASET_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,99}$"  # CKAN's package names
# years 2000-2099, months 01-12, days 01-31: what the schema calls valid is never refused for its shape;
# a day the month lacks (2026-02-30) or a period not begun yet is 404, as what only the calendar decides
PERIOD_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?$"
DatasetId = Annotated[str, Path(pattern=DATASET_PATTERN, description="a dataset id, e.g. water-flow_lps")]
Period = Annotated[str, Path(pattern=PERIOD_PATTERN, description="a local day (2026-11-05) or month (2026-11)")]
FileFormat = Annotated[Literal[tuple(downloads.FORMATS)], Path(description="csv, json or ngsild (NGSI-LD)")]  # type: ignore[valid-type]


class DatasetSummary(BaseModel):
    id: str
    title: dict[str, str]
    description: dict[str, str]
    mode: str  # raw or aggregated
    unit: str
    columns: list[str]
    frequency: str
    k: int | None  # aggregated: the fewest contributors a published cell has
    delay_hours: int | None  # raw: how late a reading is published
    start: str | None  # the first row (ISO 8601 UTC), null when there is none yet
    end: str  # the newest moment the policy publishes
    page: str


class DatasetPage(DatasetSummary):
    months: list[str]  # local months with data, newest first
    downloads: dict[str, dict[str, str]]  # month -> format -> URL


class DatasetList(BaseModel):
    data: list[DatasetSummary]
    count: int


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _open(services: ApiServices, dataset_id: str) -> Dataset:
    try:
        return datasets.get(services.settings.city, dataset_id)
    except (datasets.UnknownDataset, policy.Closed):
        raise HTTPException(404, f"no published dataset {dataset_id!r}; GET /opendata/datasets lists them") from None


def _summary(entry: catalogue.Entry, lang: str = "") -> dict[str, Any]:
    d = entry.dataset
    return {"id": d.id, "title": entry.titles, "description": entry.descriptions, "mode": d.policy.mode,
            "unit": d.unit, "columns": list(d.columns), "frequency": d.frequency,
            "k": d.policy.k if d.policy.mode == "aggregated" else None,
            "delay_hours": d.policy.delay_ms // datasets.HOUR_MS if d.policy.mode == "raw" else None,
            "start": catalogue._iso(entry.start_ms), "end": catalogue._iso(entry.end_ms), "page": entry.page_url}


@router.get("/datasets", summary="The published datasets")
def list_datasets(services: Services, request: Request) -> DatasetList:
    url = base_url(request)
    rows = [_summary(catalogue.describe(services, d, url)) for d in datasets.open_datasets(services.settings.city)]
    return DatasetList(data=[DatasetSummary(**row) for row in rows], count=len(rows))


@router.get("/datasets/{dataset_id}", summary="One dataset: its policy, coverage and downloads")
def dataset_page(dataset_id: DatasetId, services: Services, request: Request) -> DatasetPage:
    url = base_url(request)
    entry = catalogue.describe(services, _open(services, dataset_id), url)
    start, end = entry.start_ms, entry.end_ms
    months = catalogue.months_between(services, start, end) if start is not None and start < end else []
    links = {month: {fmt: catalogue.download_url(url, dataset_id, month, fmt) for fmt in downloads.FORMATS}
             for month in months}
    return DatasetPage(**_summary(entry), months=months, downloads=links)


@router.get("/catalog.jsonld", summary="The DCAT catalogue (JSON-LD)",
            responses={200: {"content": {"application/ld+json": {}}}})
def dcat(services: Services, request: Request) -> Response:
    # cached per policy, not per Host header (a client choosing Host must not grow the cache): built once
    # around a placeholder base, which each answer replaces with its own
    key = f"opendata-dcat:{policy.fingerprint(services.settings.city)}"
    text = services.public.get(key, lambda: json.dumps(catalogue.dcat_catalog(services, PLACEHOLDER)))
    body = text.replace(PLACEHOLDER, json.dumps(base_url(request))[1:-1])
    return Response(body, media_type="application/ld+json")


def _bounds(services: ApiServices, period: str) -> tuple[int, int]:
    """The period's [start, end) in ms; 404 for a day the month lacks or a period not begun yet."""
    try:
        start, end = datasets.period_bounds(services.settings.city, period)
    except datasets.PeriodError as exc:
        raise HTTPException(404, str(exc)) from None
    if start >= _now_ms():
        raise HTTPException(404, f"{period} has not begun yet")
    return start, end


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


@router.get("/download/{dataset_id}/{period}.{fmt}", summary="A dataset's rows of a local day or month",
            responses={200: {"content": {"text/csv": {}, "application/json": {}, "application/ld+json": {}}},
                       422: {}})
async def download(dataset_id: DatasetId, period: Period, fmt: FileFormat, services: Services) -> Any:
    """Async so that a cached file (a harvester's usual case) is answered without a worker-thread hop: the
    checks and a stat are microseconds; reading a small cached file from the page cache well under a
    millisecond. Everything that asks InfluxDB runs in a worker thread."""
    dataset = _open(services, dataset_id)
    start, end = _bounds(services, period)
    name = f"{dataset_id}_{period}.{fmt}"
    media_type = downloads.FORMATS[fmt].media_type
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    cache: downloads.DownloadCache = services.downloads
    cached = cache.fresh(dataset, period, fmt, end, _now_ms())
    if cached is not None:
        try:
            if cached.stat().st_size <= SMALL_FILE_BYTES:  # one read, not a thread hop a chunk
                return Response(cached.read_bytes(), media_type=media_type, headers=headers)
            return FileResponse(cached, media_type=media_type, headers=headers)
        except FileNotFoundError:
            pass  # evicted just now: made again below
    return await run_in_threadpool(_made, services, dataset, period, fmt, start, end, media_type, headers)


def _made(services: ApiServices, dataset: Dataset, period: str, fmt: str, start: int, end: int, media_type: str,
          headers: dict[str, str]) -> Response:
    """The file made from InfluxDB (and kept in the cache while it streams). A period the dataset has no rows
    in (before its first row, or none yet) is an empty file, not an error: a harvester asking for a day with
    nothing published did nothing wrong; it is not cached and InfluxDB is not asked."""
    first_row = catalogue.coverage(services).get(dataset.id)
    if first_row is None or end <= first_row:  # header only / [] / no entities
        empty = b"".join(downloads.stream(dataset, period, fmt, (), services.settings.city))
        return Response(empty, media_type=media_type, headers=headers)
    rows = datasets.rows(services, dataset, start, end, _now_ms())
    cache: downloads.DownloadCache = services.downloads
    chunks = cache.keep(downloads.stream(dataset, period, fmt, rows, services.settings.city), dataset, period, fmt)
    # the first chunk before the answer starts: InfluxDB away is still a clean 503, not a cut-off file
    first = next(chunks, b"")
    return StreamingResponse(_chain(first, chunks), media_type=media_type, headers=headers)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
