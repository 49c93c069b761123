"""create_app(settings) -> FastAPI: the routers, the error format, and the
background parts (the alert subscriber, escalation) started with the app."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors
from api.bodylimit import BodyLimit
from api.opendata import summary as open_summary
from api.ratelimit import RateLimiter
from api.routes import (
    alarms,
    alerts,
    citizen_pages,
    city_map,
    ckan,
    complaints,
    control_room,
    devices,
    fleet,
    health,
    hospitals,
    keys,
    network,
    open311,
    opendata,
    public,
    public_pages,
    readings,
    reports,
)
from api.security_headers import SecurityHeaders
from api.services import ApiServices
from telemetry_shared.settings import Settings, get_settings

log = logging.getLogger("api")

DESCRIPTION = """The city telemetry platform's API: the device registry, readings, the alert lifecycle,
public city figures and the control-room page.

Authenticate with an API key: `Authorization: Bearer city_<id>_<secret>` (create one with
`city apikey create`). Roles: technician, engineer, operator, admin. Lists answer `{data, count}`;
errors answer `{error, message, detail}`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    services = ApiServices.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()
            services.close()

    app = FastAPI(title=f"{settings.city_name} city telemetry API", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan, responses=errors.ERROR_RESPONSES)
    app.state.services = services
    app.state.public_limiter = RateLimiter(settings.api_public_rate_per_min)
    app.state.opendata_limiter = RateLimiter(settings.api_opendata_rate_per_min)
    errors.install(app)
    # a complaint may carry a photo: its body may be that much larger (the form parser caps each part)
    app.add_middleware(BodyLimit, larger={"/open311/v2/requests.": settings.api_citizen_photo_max_bytes + 65_536})
    app.add_middleware(SecurityHeaders)  # outermost: its headers are on the body limit's 413 too
    for module in (health, keys, readings, alerts, alarms, fleet, public, city_map, devices, network, control_room,
                   public_pages, hospitals, citizen_pages, open_summary):
        app.include_router(module.router)
    app.include_router(hospitals.public_router)
    app.include_router(open311.router)
    app.include_router(complaints.router)
    app.include_router(complaints.public_router)
    app.include_router(opendata.router)
    app.include_router(ckan.router)
    app.include_router(reports.router)
    app.mount("/static", StaticFiles(directory=control_room.STATIC), name="static")
    app.openapi = lambda: open311.document(errors.document_bad_bodies(app), settings.city.slugs)
    return app
