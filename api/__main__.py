"""`python -m api`: serve the API on CITY_API_HOST:CITY_API_PORT."""


import uvicorn

from api.app import create_app
from telemetry_shared.logs import setup_logging
from telemetry_shared.settings import get_settings

SHUTDOWN_GRACE_S = 3


def main() -> None:
    try:
        settings = get_settings()
        setup_logging(settings)
        app = create_app(settings)
    except ValueError as exc:  # a bad setting or city profile, named by line and field
        raise SystemExit(f"api: {exc}") from None
    # SSE streams never end by themselves: on shutdown give them a few seconds, then close them.
    # log_config=None: uvicorn's loggers go through the root handler, so its lines are masked too.
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="info",
                log_config=None, access_log=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


if __name__ == "__main__":
    main()
