"""The engine on the network: an MQTT subscriber to telemetry, a publisher of alerts.

Logs in as the analytics service account (svc-analytics-0) with a durable
MQTT 5 session (clean_start=False, a session expiry), so telemetry queued
while the engine restarts is delivered when it returns. Subscribes plainly,
or through a shared group when `analytics_share_group` is set (several
engines, sharded by the broker). Alerts are published QoS 1.

What the engine learnt (buffers, the daily profile's history, the night-flow
minima) is loaded from `<analytics_state_dir>/engine-<mqtt user>.npz` before
it subscribes, saved every `analytics_checkpoint_s` and once at stop
(analytics.state), so a deploy does not blind it. A periodic save writes the
file on a thread of its own, so readings keep being scored while it is written;
it reads the state as it was when it began through a copy on write
(analytics.statecopy: what the engine changes of a row kept first, only that,
no second copy of the whole state); the save at stop is written at once.

Its own figures (lag, passes, each checkpoint's cost: analytics.selfstats) go
to InfluxDB every `analytics_stats_interval_s`, from a thread of their own.
"""

import datetime
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from analytics import alloc
from analytics.config import EngineParams
from analytics.en50160 import Limits
from analytics.engine import AnalyticsEngine
from analytics.incidents import AlertOutput
from analytics.learnt import LearntState
from analytics.networkreports import NetworkReports
from analytics.powerreport import REPORT_TIMEOUT_S
from analytics.selfstats import SelfStats
from analytics.shards import ShardFilter
from analytics.state import load_shard, save_state, state_file
from analytics.water import WaterParams
from analytics.waterwatch import BurstWatch
from edge import contract
from telemetry_shared.influx import InfluxQL, LineWriter
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

log = logging.getLogger("analytics")

SESSION_EXPIRY_S = 24 * 3600
DEFAULT_USER = "svc-analytics-0"


def mqtt_user(settings: Settings) -> str:
    """analytics_mqtt_user if set; else CITY_MQTT_USER when it is an analytics account; else svc-analytics-0."""
    if settings.analytics_mqtt_user:
        return settings.analytics_mqtt_user
    return settings.mqtt_user if settings.mqtt_user.startswith("svc-analytics") else DEFAULT_USER


def coarse_ms(settings: Settings) -> int:
    """The coarse tier's bucket: CITY_ANALYTICS_PROFILE_COARSE_S rounded to a multiple of the profile bucket."""
    bucket_s = settings.analytics_profile_bucket_s
    return max(1, round(settings.analytics_profile_coarse_s / bucket_s)) * bucket_s * 1000


class EngineService:
    def __init__(self, settings: Settings, registry: Registry, writer: LineWriter | None,
                 params: EngineParams | None = None):
        self.settings = settings
        self.params = params or EngineParams(buffer_samples=settings.analytics_buffer_samples,
                                             profile_bucket_ms=settings.analytics_profile_bucket_s * 1000,
                                             profile_days=settings.analytics_profile_days,
                                             profile_fine_days=settings.analytics_profile_fine_days,
                                             profile_coarse_ms=coarse_ms(settings),
                                             rebuilds_per_pass=settings.analytics_rebuilds_per_pass)
        # the city's working week and days off (public holidays, its own) for the day-type profile
        today = datetime.date.today()
        span = (today - datetime.timedelta(days=40), today + datetime.timedelta(days=800))
        calendar = settings.city.calendar_params(*span)
        self.params = replace(self.params, params=replace(self.params.params, **calendar))
        self.user = mqtt_user(settings)
        self.shard = ShardFilter(settings.analytics_shard, settings.analytics_shards)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.user, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(self.user, settings.mqtt_password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.5, 10)
        self.engine = AnalyticsEngine(registry, writer, self._publish, self.params, settings.utc_offset_hours,
                                      settings.local_zone)
        directory = settings.analytics_state_path
        self.state_file: Path | None = state_file(directory, self.user) if directory is not None else None
        self.state_loaded = False
        self.inbox: list[tuple[str, bytes, int]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.worker = threading.Thread(target=self._run, name="analytics", daemon=True)
        self.saver: threading.Thread | None = None  # the periodic save being written beside the stream
        self.copy_began, self.copy_began_ms = 0.0, 0  # when the copy in progress began (monotonic, Unix ms)
        self.writer = writer
        self.selfstats = SelfStats(self.user)
        self.stats_out: list[str] = []  # analytics_checkpoint points for the stats thread to write (under lock)
        self.save_figures: dict | None = None  # the periodic save in progress: its snapshot, then its result
        self.stats_thread = threading.Thread(target=self._stats_loop, name="analytics-stats", daemon=True) \
            if writer is not None and settings.analytics_stats_interval_s > 0 else None
        # new bursts in the DMAs, from InfluxDB every 15 minutes on a thread of their own (shard 0 only: one look)
        self.bursts = BurstWatch(registry, InfluxQL.from_settings(settings),
                                 AlertOutput(writer, self._publish, self.engine.counters),
                                 WaterParams(night_window_h=settings.city.water.night_window_h)) \
            if settings.analytics_shard == 0 else None
        self.burst_thread = threading.Thread(target=self.bursts.run, args=(self.stopping,), name="dma-bursts",
                                             daemon=True) if self.bursts is not None else None
        # the water balance and power-quality report for the boards, every CITY_ANALYTICS_NETWORK_REPORT_S (shard 0)
        self.reports_thread = self._network_reports(registry, writer)

    def _network_reports(self, registry: Registry, writer: LineWriter | None) -> threading.Thread | None:
        settings = self.settings
        if settings.analytics_shard != 0 or writer is None or not settings.analytics_network_report_s:
            return None
        offset_h = settings.utc_offset_hours if settings.utc_offset_hours is not None else \
            settings.city.utc_offset_hours
        # a report reads weeks of every meter in a few queries: the report's timeout, as `city power-quality`
        influx = InfluxQL(settings.influx_url, settings.influx_db, settings.influx_user, settings.influx_password,
                          settings.influx_token, max(settings.influx_timeout_s, REPORT_TIMEOUT_S))
        reports = NetworkReports(registry, influx, writer,
                                 WaterParams(night_window_h=settings.city.water.night_window_h),
                                 Limits.from_grid(settings.city.grid), settings.local_zone, offset_h,
                                 settings.analytics_network_report_s)
        return threading.Thread(target=reports.run, args=(self.stopping,), name="network-reports", daemon=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the analytics engine (%s): %s", self.user, reason_code)
            return
        group = self.settings.analytics_share_group
        topic = f"$share/{group}/{contract.TELEMETRY_SUB}" if group else contract.TELEMETRY_SUB
        client.subscribe(topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Set once the broker confirmed the subscription: readings published after it reach the engine.
        if any(code.is_failure for code in reason_codes):
            log.error("broker refused the analytics subscription (%s): %s", self.user, reason_codes)
            return
        if not self.connected.is_set():
            log.info("analytics engine subscribed to telemetry as %s", self.user)
        self.connected.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            device, _ = contract.parse_topic(message.topic)
        except contract.ContractError:
            self.engine.counters["bad_topic"] += 1
            return
        if not self.shard.owns(device):  # another worker's device (CITY_ANALYTICS_SHARDS)
            self.engine.counters["other_shard"] += 1
            return
        with self.lock:
            self.inbox.append((device, bytes(message.payload), int(time.time() * 1000)))

    def _publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def start(self) -> None:
        if self.state_file is not None:  # before subscribing: the first readings land on what was learnt
            self.state_loaded = load_shard(self.engine, self.state_file, self.shard.owns)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # connect_async: a broker that is not up yet is retried by the network loop, not fatal.
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=False,
                                  properties=props)
        self.client.loop_start()
        self.worker.start()
        if self.burst_thread is not None:
            self.burst_thread.start()
        if self.reports_thread is not None:
            self.reports_thread.start()
        if self.stats_thread is not None:
            self.stats_thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.worker.join(30)
        for thread in (self.burst_thread, self.reports_thread, self.stats_thread):
            if thread is not None and thread.is_alive():
                thread.join(30)
        self.client.disconnect()
        self.client.loop_stop()

    def _run(self) -> None:
        next_silence = 0.0
        next_checkpoint = time.monotonic() + self.settings.analytics_checkpoint_s
        trim_s = self.settings.analytics_malloc_trim_s
        next_trim = time.monotonic() + trim_s
        while not self.stopping.is_set():
            self._wait(self.params.batch_ms / 1000)
            with self.lock:
                inbox, self.inbox = self.inbox, []
            started = time.monotonic()
            live: list[tuple[int, int]] = []  # (newest reading's time, arrival) of the live messages scored
            try:
                for device, payload, received_ms in inbox:
                    newest_ms = self.engine.ingest(device, payload, received_ms)
                    if newest_ms is not None:
                        live.append((newest_ms, received_ms))
                self.engine.process()
                self.selfstats.scored(live, int(time.time() * 1000))
                if time.monotonic() >= next_silence:
                    next_silence = time.monotonic() + self.params.silence_check_s
                    self.engine.check_silence()
                    self.engine.check_night_flow()
                    # Only when a new minute bucket has closed; the comparison runs beside the stream.
                    self.engine.check_peers_beside()
            except Exception:  # one bad pass must not stop the engine; it is logged with its traceback
                self.engine.counters["errors"] += 1
                log.exception("analytics pass failed")
            self._pass_done((time.monotonic() - started) * 1000)
            if time.monotonic() >= next_checkpoint:
                next_checkpoint = time.monotonic() + self.settings.analytics_checkpoint_s
                self.checkpoint_beside()
            if trim_s and time.monotonic() >= next_trim:
                next_trim = time.monotonic() + trim_s
                self.trim_memory()
        if self.saver is not None:
            self.saver.join()  # a periodic save reads the state through its copy: it ends before the state moves on
        self.engine.end_copy()
        self.checkpoint()  # the last pass above took what was in the inbox: its readings are kept too

    def trim_memory(self) -> None:
        """Hand the allocator's free pages back to the system (analytics.alloc: the passes', the peer check's and
        the checkpoints' freed temporaries, kept by glibc otherwise). Counters: `malloc_trims`, `malloc_trim_ms`
        (the last one's time, on the stream's thread)."""
        started = time.monotonic()
        alloc.trim()
        self.engine.counters["malloc_trims"] += 1
        self.engine.counters["malloc_trim_ms"] = round((time.monotonic() - started) * 1000, 1)

    def _wait(self, seconds: float) -> None:
        """The wait between two passes."""
        self.stopping.wait(seconds)

    def checkpoint_beside(self) -> threading.Thread | None:
        """Save the engine's state as it is now, on a thread of its own while the stream goes on (from the worker
        thread, between passes): the save reads the state through a copy on write (analytics.statecopy), so the
        stream pauses only for the copy's beginning and no second copy of the state is held. Returns the saving
        thread (None: nothing to save, or the previous save is still being written: skipped and counted, the
        next checkpoint comes soon enough)."""
        if self.state_file is None:
            return None
        if self.engine.copying is not None or (self.saver is not None and self.saver.is_alive()):
            self.engine.counters["state_saves_skipped"] += 1
            return None
        self.copy_began_ms = int(time.time() * 1000)
        self.copy_began = time.monotonic()
        self.save_figures = {"passes": 0, "longest_ms": 0.0}  # the passes scored while it is written
        copying = self.engine.begin_copy()
        self.saver = threading.Thread(target=self._save, args=(copying.learnt, self.copy_began_ms, True),
                                      name="analytics-state", daemon=True)
        self.saver.start()
        return self.saver

    def _copy_done(self) -> None:
        """The periodic save is over (written or failed): its copy's figures are counted and its kept rows dropped.
        Counters: `state_snapshot_ms`, the longest pause of the stream (the copy's beginning, or one keep() that
        waited for a read of the save, the longer); `state_snapshot_span_ms`, from its beginning to the save's end;
        `state_copy_kept_rows` and `state_copy_kept_bytes`, the rows changed meanwhile and what was kept of them
        first, at the most (the checkpoint's memory beside the state)."""
        copying = self.engine.copying
        pause_ms = max(copying.began_s, copying.longest_hold_s) * 1000
        span_ms = (time.monotonic() - self.copy_began) * 1000
        counters = self.engine.counters
        counters["state_snapshot_ms"] = round(pause_ms, 1)
        counters["state_snapshot_span_ms"] = round(span_ms)
        counters["state_copy_kept_rows"] = copying.kept_rows
        counters["state_copy_kept_bytes"] = copying.peak_kept_bytes
        if self.save_figures is not None:
            self.save_figures |= {"snapshot_ms": pause_ms, "copy_span_ms": span_ms}
        self.engine.end_copy()

    def checkpoint(self) -> None:
        """Save the engine's state now (from the worker thread, between passes); a failure is logged, never fatal."""
        if self.state_file is not None:
            self._save(self.engine.learnt, int(time.time() * 1000))

    def _save(self, learnt: LearntState, now_ms: int, periodic: bool = False) -> None:
        started = time.monotonic()
        try:
            report: dict = {}
            size = save_state(learnt, self.state_file, now_ms, report)
        except OSError as exc:  # a full or read-only disk: the engine goes on, the previous checkpoint stays
            self.engine.counters["state_save_errors"] += 1
            log.warning("analytics state not saved to %s: %s", self.state_file, exc)
            return
        except Exception:  # a bug must not stop the worker: scoring matters more than the checkpoint
            self.engine.counters["state_save_errors"] += 1
            log.exception("analytics state not saved to %s", self.state_file)
            return
        self.engine.counters["state_saves"] += 1
        self.engine.counters["state_written_bytes"] = report["written"]
        if periodic and self.save_figures is not None:  # a periodic save, beside the stream
            self.save_figures |= {"save_ms": (time.monotonic() - started) * 1000, "size": size,
                                  "written": report["written"]}
        log.info("analytics state saved to %s: %.1f MB, %.1f MB of it written (the chunks that changed), in %.2f s",
                 self.state_file, size / 1e6, report["written"] / 1e6, time.monotonic() - started)

    def _pass_done(self, ms: float) -> None:
        """A scoring pass took `ms`: counted, and against the periodic save written meanwhile; once that save is
        done, its analytics_checkpoint point is queued (from this thread: the save's figures are complete)."""
        self.selfstats.pass_done(ms)
        if self.engine.copying is not None and (self.saver is None or not self.saver.is_alive()):
            self._copy_done()
        figures = self.save_figures
        if figures is None:
            return
        if self.engine.copying is not None:  # still being written
            figures["passes"] += 1
            figures["longest_ms"] = max(figures["longest_ms"], ms)
            return
        self.save_figures = None
        if "save_ms" in figures and self.stats_thread is not None:  # else the save failed (counted)
            line = self.selfstats.checkpoint_line(figures["snapshot_ms"], figures["save_ms"], figures["size"],
                                                  figures["written"], figures["passes"], figures["longest_ms"],
                                                  figures["copy_span_ms"])
            with self.lock:
                self.stats_out.append(line)

    def stats_lines(self) -> list[str]:
        """The analytics_stats point now, after the checkpoint points waiting to be written."""
        counters = self.engine.counters
        for _ in range(3):  # the worker thread may add a counter while it is copied
            try:
                snapshot_counters = dict(counters)
                series = sum(len(block.keys) for block in list(self.engine.learnt.blocks.values()))
                break
            except RuntimeError:
                continue
        else:
            return []
        with self.lock:
            lines, self.stats_out = self.stats_out, []
            inbox = len(self.inbox)
        gauges = {"series": float(series), "inbox": float(inbox)}
        return lines + [self.selfstats.stats_line(snapshot_counters, gauges)]

    def _stats_loop(self) -> None:
        while not self.stopping.wait(self.settings.analytics_stats_interval_s):
            lines = self.stats_lines()
            try:
                self.writer.write(lines)
            except Exception as exc:  # InfluxDB away: the figures are cumulative, the next point has them
                self.engine.counters["stats_write_errors"] += 1
                log.debug("could not write analytics_stats: %s", exc)
