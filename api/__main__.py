"""`python -m api`: serve the API on CITY_API_HOST:CITY_API_PORT."""

import logging

import uvicorn

from api.app import create_app
from telemetry_shared.settings import get_settings

SHUTDOWN_GRACE_S = 3


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    # SSE streams never end by themselves: on shutdown give them a few seconds, then close them
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info",
                access_log=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


if __name__ == "__main__":
    main()
