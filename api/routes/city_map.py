"""What the pages need to draw and speak for the configured city, from its profile: the district
boundaries (GeoJSON), the languages and the one the browser asked for, the time zone, and each
metric's unit and resolution (how many decimals a reading deserves). Open like the other public
routes: nothing here is private (no device, no reading), and it is rate limited."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from api.ratelimit import public_rate_limit
from api.services import Services
from edge import contract
from telemetry_shared.i18n import RESOLUTION

router = APIRouter(prefix="/public", tags=["public"], dependencies=[Depends(public_rate_limit)],
                   responses={429: {"description": "too many requests; see Retry-After"}})

class MetricFormat(BaseModel):
    kind: str
    unit: str = Field(description="the contract's unit; pages show it through their catalogue")
    decimals: int


class CityMap(BaseModel):
    name: str
    time_zone: str = Field(description="IANA time zone of the city's local time")
    default_language: str
    languages: list[str]
    language: str = Field(description="the language the request's Accept-Language prefers among `languages`")
    bounds: list[float] = Field(description="[min_lon, min_lat, max_lon, max_lat] of every district")
    grid: dict[str, float]
    districts: dict[str, Any] = Field(description="GeoJSON FeatureCollection: one Feature per district, with "
                                                  "properties slug, name (in `language`) and names")
    metrics: dict[str, MetricFormat]


def negotiate(accept_language: str | None, offered: list[str], default: str) -> str:
    """The best of `offered` for an Accept-Language header (RFC 9110 §12.5.4 quality values)."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in offered and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else default


@router.get("/map", summary="The city's districts (GeoJSON), languages, time zone and metric formats")
def city_map(services: Services,
             accept_language: Annotated[str | None, Header(max_length=500)] = None) -> CityMap:
    profile = services.settings.city
    language = negotiate(accept_language, list(profile.spec.languages), profile.spec.default_language)
    metrics = {name: MetricFormat(kind=kind, unit=unit, decimals=RESOLUTION.get(name, 2))
               for name, (kind, unit, _lo, _hi) in contract.METRICS.items()}
    return CityMap(**profile.public_dict(language), language=language, metrics=metrics)
