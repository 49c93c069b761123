"""Run the streaming engine: `python -m analytics` (settings from CITY_* variables)."""

import logging

from analytics.service import EngineService
from telemetry_shared.influx import make_writer
from telemetry_shared.logs import setup_logging
from telemetry_shared.registry import Registry
from telemetry_shared.settings import get_settings
from telemetry_shared.stopsignal import StopRequest


def main() -> None:
    try:
        settings = get_settings()
        registry = Registry(settings.registry_file)
        registry.check_districts(settings.city)  # a device in a district the profile lacks: refuse to start
    except ValueError as exc:  # a bad setting or city profile, named by line and field
        raise SystemExit(f"analytics: {exc}") from None
    setup_logging(settings)
    service = EngineService(settings, registry, make_writer(settings))
    stop = StopRequest()
    service.start()
    logging.getLogger("analytics").info("analytics engine running as %s", service.user)
    stop.wait()  # SIGTERM (docker stop, city up) or SIGINT, whichever thread the kernel handed it to
    service.stop()


if __name__ == "__main__":
    main()
