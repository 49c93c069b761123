"""The network reports' thread (analytics/networkreports.py): the only writer of the Water network and Power
quality boards' figures, so one failed run must never end it. The figures themselves are checked on a live
city in tests/grafana/test_live_city.py."""

import logging
import threading

from analytics.en50160 import Limits
from analytics.networkreports import NetworkReports, local_midnight_ms
from analytics.water import WaterParams
from telemetry_shared.influx import InfluxQL
from telemetry_shared.registry import Registry
from tests.conftest import wait_for


class FailsOnce(Registry):
    """A registry whose first read of the networks fails the way an unforeseen bug would."""

    failed = False

    def topology(self, utility: str):
        if not self.failed:
            self.failed = True
            raise RuntimeError("an unforeseen failure in the first run")
        return super().topology(utility)


class Lines:
    def write(self, lines: list[str]) -> None:
        pass


def test_a_run_that_fails_unexpectedly_is_logged_and_the_next_period_runs_again(tmp_path, caplog) -> None:
    registry = FailsOnce(tmp_path / "registry.sqlite3")
    reports = NetworkReports(registry, InfluxQL("http://127.0.0.1:9", "nowhere"), Lines(), WaterParams(),
                             Limits(230.0, 50.0, True), "", 7, 0.05)
    stopping = threading.Event()
    thread = threading.Thread(target=reports.run, args=(stopping,), daemon=True)
    with caplog.at_level(logging.ERROR, logger="analytics"):
        thread.start()
        try:
            wait_for(lambda: reports.runs >= 2, timeout_s=10)  # no network in the registry: two empty runs
        finally:
            stopping.set()
            thread.join(5)
    assert registry.failed
    assert "failed unexpectedly" in caplog.text
    assert not thread.is_alive()


def test_the_reports_cover_the_days_before_the_local_day_of_now() -> None:
    # 2026-12-05 17:30 UTC is 00:30 on the 6th at UTC+7: today starts at 17:00 UTC on the 5th
    now_ms = 1_796_491_800_000
    assert local_midnight_ms(now_ms, "", 7) == 1_796_490_000_000
    assert local_midnight_ms(now_ms, "Etc/GMT-7", 7) == 1_796_490_000_000
    assert local_midnight_ms(now_ms - 3_600_000, "", 7) == 1_796_490_000_000 - 86_400_000
