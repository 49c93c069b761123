"""Fixtures for the API tests: a live API on real Mosquitto and influxd."""

from collections.abc import Callable, Iterator

import pytest

from tests.api.harness import AnalyticsPublisher, LiveApi, start_api
from tests.conftest import make_settings


@pytest.fixture
def make_api(tmp_path, mosquitto, shared_influxd, influx_db) -> Iterator[Callable[..., LiveApi]]:
    """make_api(**settings overrides) -> a running API; stopped after the test."""
    started: list[LiveApi] = []

    def make(**overrides) -> LiveApi:
        values = {"influx_url": shared_influxd.url, "influx_db": influx_db.db, "api_mqtt_user": "svc-api-0"}
        settings = make_settings(tmp_path / f"api{len(started)}", mosquitto, **(values | overrides))
        live = start_api(settings)
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()


@pytest.fixture
def api(make_api) -> LiveApi:
    return make_api()


@pytest.fixture
def analytics(mosquitto) -> Iterator[AnalyticsPublisher]:
    publisher = AnalyticsPublisher(mosquitto.port)
    yield publisher
    publisher.close()
