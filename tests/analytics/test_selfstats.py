"""The engine's own figures in InfluxDB (analytics.selfstats): the city-scale bench and the operators read its
lag and each checkpoint's cost from `analytics_stats` and `analytics_checkpoint`."""

import threading
import time

from analytics.config import EngineParams
from analytics.selfstats import LAG_BUCKETS_S, bucket_name
from analytics.service import EngineService
from edge import contract
from telemetry_shared.registry import DeviceNew
from tests.conftest import make_settings

DEVICE = "pwr-0042"


class Recorder:
    def __init__(self):
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        with self.lock:
            self.lines += lines

    def close(self) -> None:
        pass

    def points(self, measurement: str) -> list[dict[str, float]]:
        with self.lock:
            lines = [line for line in self.lines if line.startswith(measurement + ",")]
        out = []
        for line in lines:
            fields = line.split(" ")[1]
            out.append({k: float(v.rstrip("i")) for k, v in (f.split("=") for f in fields.split(","))})
        return out


def test_the_engine_writes_its_lag_and_each_checkpoint(tmp_path, registry):
    registry.add(DeviceNew(id=DEVICE, kind="power", district="tanjungpinang-timur"))
    settings = make_settings(tmp_path, mqtt_user="svc-analytics-0", analytics_checkpoint_s=1,
                             analytics_stats_interval_s=0.2, analytics_network_report_s=0)
    recorder = Recorder()
    service = EngineService(settings, registry, recorder, EngineParams(buffer_samples=240))
    service.worker.start()
    service.stats_thread.start()
    def feed(seq: int, taken: int, now: int) -> None:
        payload = contract.encode_telemetry(seq, [(taken - 60_000 * (40 - seq), {"power_kw": 40.0}),
                                                  (taken, {"power_kw": 41.0})], "1.0")
        with service.lock:
            service.inbox.append((DEVICE, payload, now))

    def wait_for(done) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done():
            time.sleep(0.1)

    try:
        feed(0, int(time.time() * 1000), int(time.time() * 1000))  # the first pass compiles the scorers: slow
        wait_for(lambda: recorder.points("analytics_stats") and recorder.points("analytics_stats")[-1]["lag_count"])
        before = recorder.points("analytics_stats")[-1]
        now = int(time.time() * 1000)
        for seq in range(1, 31):
            # taken 3 s ago, arrived now; the first 10 taken 40 s ago (held by the device for its wake)
            feed(seq, now - (40_000 if seq <= 10 else 3_000), now)
        wait_for(lambda: recorder.points("analytics_checkpoint")
                 and recorder.points("analytics_stats")[-1]["lag_count"] == 31)
    finally:
        service.stopping.set()
        service.worker.join(30)
        service.stats_thread.join(30)
    after = recorder.points("analytics_stats")[-1]
    stats = {k: after[k] - before.get(k, 0) for k in after}  # a window's figures: the difference of two points
    assert stats["lag_count"] == 30 and stats["messages"] == 30 and after["series"] == 1
    # the lag runs from each message's newest reading: 20 within 5 s (not 2 s), the 10 held ones past 30 s
    assert stats[bucket_name("lag", 2)] == 0 and stats[bucket_name("lag", 5)] == 20
    assert stats[bucket_name("lag", 30)] == 20 and stats[bucket_name("lag", 60)] == 30
    assert stats[bucket_name("wait", 5)] == 30  # all of them scored within seconds of their arrival
    assert stats[bucket_name("lag", LAG_BUCKETS_S[-1])] == 30 and stats["passes"] >= 1
    checkpoint = recorder.points("analytics_checkpoint")[0]
    assert checkpoint["save_ms"] > 0 and checkpoint["size_bytes"] > 0 and checkpoint["snapshot_ms"] >= 0
    assert service.engine.counters["state_saves"] >= 1


def test_no_writer_or_interval_0_writes_nothing(tmp_path, registry):
    assert EngineService(make_settings(tmp_path), registry, None).stats_thread is None
    off = make_settings(tmp_path, analytics_stats_interval_s=0)
    assert EngineService(off, registry, Recorder()).stats_thread is None
