"""The DMA burst watch through the real alert path: a simulated network in a real influxd, a burst in it,
the watch's alert published over real Mosquitto with the analytics account and stored by the live API
(the control room's list), once; a city without DMAs asks InfluxDB nothing."""

import datetime as dt
from collections import Counter

import numpy as np
from fleetsim import waternet

from analytics.incidents import AlertOutput
from analytics.water import WaterParams
from analytics.waterwatch import BurstWatch
from telemetry_shared.influx import InfluxQL
from telemetry_shared.settings import get_settings
from tests.api.conftest import make_api  # noqa: F401 - the fixture: a live API on real servers
from tests.api.harness import AnalyticsPublisher, wait_for
from tests.cli.test_water_balance_cli import store


def test_a_burst_reaches_the_control_rooms_alerts_once(make_api,  # noqa: F811
                                                       shared_influxd, influx_db, mosquitto):
    api = make_api()
    offset = get_settings().utc_offset_hours or 0
    start = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=offset))).timestamp() * 1000)
    net = waternet.plan(3, 90, 4, seed=2, start_ms=start, utc_offset_h=offset, bursts_per_dma_per_day=0)
    burst_ms = start + 3 * 86_400_000 + 10 * 3_600_000  # day 4, 10:00 local
    net = waternet.WaterNet(**{**net.__dict__, "bursts": np.array([[1, burst_ms, burst_ms + 2 * 86_400_000, 2.0]])})
    store(net, api.services.registry, shared_influxd.url, influx_db.db, days=4)
    publisher = AnalyticsPublisher(mosquitto.port)
    try:
        sent: list[bytes] = []

        def publish(topic: str, payload: bytes) -> None:
            sent.append(payload)
            publisher.client.publish(topic, payload, qos=1).wait_for_publish(5)

        watch = BurstWatch(api.services.registry, InfluxQL(shared_influxd.url, influx_db.db),
                           AlertOutput(None, publish, Counter()), WaterParams(),
                           period_s=900, lookback_days=4)
        assert watch.check(burst_ms - 3_600_000) == []  # before the burst: nothing
        [alert] = watch.check(burst_ms + 2 * 3_600_000)  # two hours later: the hours since the last look
        assert alert["rule"] == "dma_burst" and alert["device"] == net.inlet_ids[list(net.inlet_dma).index(1)]
        assert "dma-0002" in alert["explanation"] and 0.5 <= alert["observed"] < 2.5  # the rise when first seen
        assert burst_ms <= alert["started_ms"] <= burst_ms + 3_600_000
        assert watch.check(burst_ms + 3 * 3_600_000) == []  # the same burst is not sent again
        wait_for(lambda: api.services.alerts.store.find()[1] == 1)
        stored = api.services.alerts.store.find()[0][0]
        assert stored.rule == "dma_burst" and stored.state == "active" and "dma-0002" in stored.explanation
    finally:
        publisher.close()


def test_no_dma_no_question_to_influxdb(registry):
    watch = BurstWatch(registry, InfluxQL("http://127.0.0.1:9", "nowhere"), AlertOutput(None, None, {}),
                       WaterParams())
    assert watch.check(1_767_225_600_000) == [] and watch.looked_ms == 1_767_225_600_000
