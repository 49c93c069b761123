"""`python -m api`: serve the API on CITY_API_HOST:CITY_API_PORT."""


import uvicorn

from api.app import create_app
from telemetry_shared.logs import setup_logging
from telemetry_shared.settings import get_settings

SHUTDOWN_GRACE_S = 3


def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    # SSE streams never end by themselves: on shutdown give them a few seconds, then close them.
    # log_config=None: uvicorn's loggers go through the root handler, so its lines are masked too.
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info",
                log_config=None, access_log=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


if __name__ == "__main__":
    main()
