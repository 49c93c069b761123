"""One settings object for every server component, read from CITY_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from telemetry_shared.city import CityProfile, cached_profile

DEV_SECRET = "dev-only-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITY_", extra="ignore")

    environment: str = Field("development", description="development, test, or production (refuses to start with "
                                                        "a development secret)")
    profile: Path = Field(Path("cities/tanjungpinang.yaml"),
                          description="CITY_PROFILE: the city profile (YAML): name, time zone, districts and their "
                          "boundaries, grid and water limits, calendar, language; validated at start "
                          "(telemetry_shared/city.py)")
    city_name: str = Field("", description="override of the profile's city name; empty: the profile's")
    utc_offset_hours: int | None = Field(None, ge=-14, le=14, description="override of the local day's UTC offset "
                                         "(whole hours); empty: the profile's time zone")
    data_dir: Path = Field(Path("var"), description="where the local city keeps its files: registry, API database, "
                                                    "spool, broker files, logs")

    mqtt_host: str = Field("127.0.0.1", description="the MQTT broker's host")
    mqtt_port: int = Field(1883, description="the MQTT broker's port (plain MQTT on loopback or a private network)")
    mqtt_tls_port: int = Field(8883, description="the broker's TLS listener, where devices connect")
    device_ca_file: Path | None = Field(None, description="the CA certificate (PEM or DER) `city device flash` "
                                        "pins on each board; default <data_dir>/tls/ca.der, the local CA of `city up`")
    mqtt_tls_server_name: str = Field("", pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^$",
                                      description="the name the broker's certificate is checked for when a "
                                      "service connects over TLS; empty: CITY_MQTT_HOST (compose: the city's MQTT "
                                      "host name, as the broker is reached as `mosquitto`)")
    mqtt_user: str = Field("svc-ingest", description="this service's MQTT account (svc-<service>-<n>), also its "
                                                     "client id")
    mqtt_password: str = Field(DEV_SECRET, description="the service accounts' MQTT password; production refuses the "
                                                       "development default")

    influx_url: str = Field("http://127.0.0.1:8086", description="InfluxDB's HTTP address")
    influx_db: str = Field("city", description="the InfluxDB database (1.x) the readings go to and are read from")
    influx_user: str = Field("", description="InfluxDB 1.x user; empty: no authentication")
    influx_password: str = Field("", description="InfluxDB 1.x password")
    influx_token: str = Field("", description="set for InfluxDB 2.x/3.x: writes go through the v2 API")
    influx_org: str = Field("", description="InfluxDB 2.x/3.x organisation (with CITY_INFLUX_TOKEN)")
    influx_bucket: str = Field("", description="InfluxDB 2.x/3.x bucket; empty: CITY_INFLUX_DB")
    influx_timeout_s: float = Field(10.0, description="one InfluxDB request gives up after this long")

    registry_path: Path | None = Field(None, description="the device registry (SQLite); default "
                                                         "<data_dir>/registry.sqlite3")

    api_host: str = Field("127.0.0.1", description="where `python -m api` listens")
    api_port: int = Field(8000, description="the API's port")
    api_url: str = Field("http://127.0.0.1:8000", description="where the `city device` CLI finds the API")
    api_token: str = Field("", description="the CLI's bearer token for the API")

    # Device provisioning (telemetry_shared/provisioning.py) changes the broker's device entries through
    # Mosquitto's dynamic-security plugin, over MQTT, as this account (svc-api-N accounts may).
    device_admin_mqtt_user: str = Field("svc-api-1", description="the MQTT account (and client id) that changes "
                                        "the broker's device entries and publishes device configs; one per API "
                                        "process, as Mosquitto kicks a duplicate id")
    device_admin_mqtt_tls: bool = Field(False, description="the device-admin account connects to the TLS listener "
                                        "(CITY_MQTT_TLS_PORT), checking the broker against CITY_DEVICE_CA_FILE: "
                                        "production's broker takes dynamic-security commands only there")
    api_db_path: Path | None = Field(None, description="API keys and the alert lifecycle (SQLite); default data_dir")
    api_mqtt_user: str = Field("svc-api-0", description="the MQTT account (and client id) of the API's alert "
                                                        "subscriber")
    api_escalate_after_s: float = Field(900.0, gt=0, description="unacknowledged this long: severity up, reminder")
    api_silent_after_s: float = Field(600.0, gt=0, description="an active device not heard from this long is silent")
    api_public_rate_per_min: int = Field(60, gt=0, description="public requests per client address per minute")
    api_opendata_rate_per_min: int = Field(600, gt=0, description="open-data catalogue (/opendata, CKAN /api/action) "
                                           "and download requests per client address per minute, a bucket of "
                                           "their own: a portal harvesting every dataset must not hit 429")
    api_public_data_cache_mb: int = Field(512, ge=0, le=1_000_000, description="open-data downloads kept on disk "
                                          "($CITY_DATA_DIR/opendata-cache), oldest deleted past this; 0: no cache")
    api_notify_rules: list[dict[str, str]] = Field(
        [], description='JSON list: [{"role": "operator", "min_severity": "warning", "webhook": "http://...",'
                        ' "email": "ops@example.org", "secret": "<signs the webhook body>"}]')
    api_notify_retry_first_s: float = Field(10.0, gt=0, description="wait after a notification's first failed "
                                            "try; it doubles after each further failure")
    api_notify_retry_max_s: float = Field(300.0, gt=0, description="cap of the wait between a notification's tries")
    api_notify_give_up_s: float = Field(86_400.0, gt=0, description="a notification not delivered this long "
                                        "after it was written is marked failed for good")
    api_notify_timeout_s: float = Field(10.0, gt=0, le=300, description="one webhook or SMTP try gives up after "
                                        "this long")
    api_notify_keep_days: float = Field(90.0, gt=0, le=3650, description="sent and failed notifications older "
                                        "than this are deleted from the outbox (pending ones never are)")
    api_sensor_fault_rejects: int = Field(5, ge=1, description="a device with this many readings or messages "
                                          "rejected by ingest within the window gets a sensor_fault alert")
    api_sensor_fault_window_s: float = Field(600.0, gt=0, le=86_400, description="the sensor-fault window; a window "
                                             "without rejections clears the alert")
    api_sensor_fault_check_s: float = Field(5.0, gt=0, le=300, description="how often the API reads new dead letters")
    api_hospital_stale_after_s: float = Field(3600.0, gt=0, le=86_400, description="a ward not updated this long "
                                              "is stale: its free beds are never shown")
    # Alarm management (ISA-18.2 / EEMUA 191): api/alarms/.
    api_alarm_priorities: dict[str, str] = Field(
        {}, description='JSON: overrides of the priority table, {"<kind or *>:<rule>": "high|medium|low"}, e.g. '
                        '{"water:turbidity_high": "high"}; checked at start')
    api_alarm_shelve_max_s: float = Field(28_800.0, gt=0, le=7 * 86_400, description="the longest an operator may "
                                          "shelve an alarm (8 h: one shift)")
    api_alarm_maintenance_max_s: float = Field(14 * 86_400.0, gt=0, le=365 * 86_400, description="the longest "
                                               "maintenance (out of service) a technician may set in one go")
    api_alarm_flood_count: int = Field(10, ge=1, description="more than this many new alarms within the flood "
                                       "window per operator position: flood")
    api_alarm_flood_window_s: float = Field(600.0, gt=0, le=86_400, description="the flood window (EEMUA 191: "
                                            "10 minutes)")
    api_alarm_chatter_count: int = Field(3, ge=2, description="an alarm source that raises this many times within "
                                         "the chatter window is chattering: held back and listed for engineers")
    api_alarm_chatter_window_s: float = Field(60.0, gt=0, le=3600, description="the chatter window")
    api_alarm_stale_after_s: float = Field(86_400.0, gt=0, description="an alarm standing longer than this is stale")
    api_alarm_group_window_s: float = Field(60.0, ge=0, le=3600, description="alarms of one district and utility "
                                            "within this long of the first become its group")
    api_alarm_operator_positions: int = Field(1, ge=1, le=100, description="operator positions sharing the board "
                                              "(alarms per operator-hour divide by it)")
    api_alarm_check_s: float = Field(5.0, gt=0, le=300, description="how often shelving and maintenance expiries "
                                     "are checked")
    api_alarm_kpi_every_s: float = Field(60.0, gt=0, le=3600, description="how often the alarm KPIs of the last "
                                         "hour go to InfluxDB (`alarm_kpis`)")
    api_citizen_contact_key: str = Field("", description="a secret of 32 characters or more (`openssl rand "
                                         "-base64 32`): seals citizens' contact details (AES-256-GCM) and keys "
                                         "their hashes; the API refuses to start in production without it")
    api_citizen_contact_old_keys: str = Field("", description="former contact keys, comma separated: they still "
                                              "open the contacts they sealed until `city citizens rekey` moved them "
                                              "to the current key")
    api_citizen_photo_keep_days: float = Field(90.0, gt=0, le=3650, description="a complaint's photo is deleted "
                                               "this long after it was filed")
    api_citizen_contact_keep_days: float = Field(30.0, gt=0, le=3650, description="a closed complaint's contact "
                                                 "details (sealed and hashed) are deleted this long after it closed")
    api_citizen_photo_max_bytes: int = Field(5_000_000, ge=10_000, le=20_000_000, description="a complaint's photo "
                                             "is at most this big (then re-encoded without metadata)")
    api_citizen_per_address_per_hour: int = Field(5, ge=1, description="complaints one client address may file "
                                                  "in an hour")
    api_citizen_per_contact_per_day: int = Field(5, ge=1, description="complaints one e-mail or phone may file "
                                                 "in a day")
    api_citizen_link_window_s: float = Field(7200.0, gt=0, le=86_400, description="a complaint links to an "
                                             "incident of its utility and district that started at most this long "
                                             "after it, or was active at most this long before it")
    api_citizen_cluster_count: int = Field(3, ge=2, description="this many unlinked complaints of one category in "
                                           "one district within the cluster window: a citizen-reported alert")
    api_citizen_cluster_window_s: float = Field(1800.0, gt=0, le=86_400, description="the cluster window")
    smtp_host: str = Field("", description="the mail relay for e-mail notification rules; empty: no e-mail")
    smtp_port: int = Field(25, description="the mail relay's port")
    smtp_from: str = Field("control-room@localhost", description="the sender of notification e-mails")

    # `city grafana sync`: the Grafana to push the datasource and dashboards to (token, or user and password).
    grafana_url: str = Field("http://127.0.0.1:3000", description="the Grafana `city grafana sync` pushes to")
    grafana_token: str = Field("", description="a Grafana service account token (Editor or Admin)")
    grafana_user: str = Field("", description="Grafana user, when there is no token")
    grafana_password: str = Field("", description="Grafana password, with CITY_GRAFANA_USER")

    ingest_worker_id: str = Field("ingest-0", description="this worker's fixed identity in the shared group: names "
                                                          "its spool and its counters' tag")
    ingest_batch_points: int = Field(5000, description="the largest single InfluxDB write, in lines")
    ingest_batch_ms: int = Field(100, description="the longest a message waits for its batch (bounds the latency)")
    ingest_workers: int = Field(1, ge=1, le=8, description="workers in the group: >1 uses a shared subscription")
    ingest_receive_maximum: int = Field(5000, ge=10, le=65535, description="MQTT 5 in-flight window per worker; "
                                        "a batch is written at half of it")
    ingest_metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus text; 0 turns it off")
    ingest_stats_interval_s: float = Field(10.0, gt=0, description="how often counters go to ingest_stats")
    ingest_retry_max_s: float = Field(10.0, gt=0, description="cap of the write backoff and of Retry-After")
    ingest_spool_after_s: float = Field(5.0, ge=0, description="retry this long, then spool to disk")
    ingest_spool_max_mb: int = Field(1024, ge=1, description="bound of the on-disk spool per worker")
    raw_retention: str = Field("90d", pattern=r"^(INF|[0-9]+[hdw])$", description="how long raw readings are kept")
    rollup_lookback_h: int = Field(48, ge=1, description="hours the rollup job recomputes on each run")

    analytics_mqtt_user: str = Field("", description="the analytics engine's MQTT account; empty: CITY_MQTT_USER "
                                     "when it is an svc-analytics-* account, else svc-analytics-0")
    analytics_share_group: str = Field("", description="subscribe through $share/<group>/ (several engines); "
                                       "empty: a plain subscription")
    analytics_buffer_samples: int = Field(720, ge=16, le=100_000, description="samples kept per series")
    analytics_profile_bucket_s: int = Field(60, ge=10, le=3600, description="bucket of the per-series coarse "
                                            "history for the daily profile (4 bytes a bucket)")
    analytics_profile_days: int = Field(8, ge=0, le=35, description="days of coarse history per series; "
                                        "0: the daily profile uses the buffer only")
    analytics_shards: int = Field(1, ge=1, le=256, description="analytics workers sharing the devices by a hash of "
                                  "the device id (analytics/shards.py); each subscribes to all telemetry and "
                                  "keeps its own share")
    analytics_shard: int = Field(0, ge=0, le=255, description="this worker's share, 0..CITY_ANALYTICS_SHARDS-1")
    analytics_profile_fine_days: int = Field(2, ge=0, le=35, description="of those, the newest days kept in "
                                             "profile buckets (the peer check's window); older days in coarse "
                                             "buckets")
    analytics_profile_coarse_s: int = Field(600, ge=10, le=86_400, description="the coarse buckets of the older "
                                            "days (rounded to a multiple of the profile bucket)")
    analytics_state_dir: str = Field("", max_length=4096, description="where the engine keeps what it learnt "
                                     "across restarts (engine-<mqtt user>.npz); empty: <data_dir>/analytics; "
                                     "off: keep nothing")
    # 15 minutes: every save rewrites the whole file (0.5 GB for 2,000 single-metric devices), so every 5
    # minutes would write ~130 GB a day; a crash losing 15 minutes of 8 days of per-minute history costs
    # the profile nothing it cannot take from the other days.
    _fixed_offset: bool = PrivateAttr(False)

    analytics_checkpoint_s: float = Field(900.0, ge=1, le=86_400, description="how often the engine saves it "
                                          "(and once at stop)")
    # ~10 ms a rebuild: 100 keep a pass within about a second while 100,000 state-less series are built.
    analytics_rebuilds_per_pass: int = Field(100, ge=1, le=1_000_000, description="series without a saved "
                                             "detector state rebuilt from their buffer per scoring pass")
    analytics_network_report_s: float = Field(3600.0, ge=0, le=86_400, description="how often the water balance "
                                              "and the power-quality report are written for the boards; 0: never")
    analytics_stats_interval_s: float = Field(10.0, ge=0, le=3600, description="how often the engine's own "
                                              "figures (lag, passes, checkpoints) go to analytics_stats; 0: never")
    # glibc keeps the engine's freed temporaries (blocks of series, the peer check, checkpoints) in its heaps:
    # ~11 KB a series of resident memory that is no state (analytics/alloc.py), given back by a trim in ~2 ms.
    analytics_malloc_trim_s: float = Field(5.0, ge=0, le=3600, description="how often the engine hands freed "
                                           "memory back to the system (glibc malloc_trim); 0: never")

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> "Settings":
        if self.environment == "production" and self.mqtt_password == DEV_SECRET:
            raise ValueError("CITY_MQTT_PASSWORD must be set in production (it still has the development default)")
        if self.environment not in ("development", "production", "test"):
            raise ValueError(f"CITY_ENVIRONMENT must be development, production or test, not {self.environment!r}")
        if self.analytics_shard >= self.analytics_shards:
            raise ValueError(f"CITY_ANALYTICS_SHARD must be one of 0..{self.analytics_shards - 1} "
                             f"(CITY_ANALYTICS_SHARDS={self.analytics_shards}), not {self.analytics_shard}")
        if self.analytics_shards > 1 and self.analytics_share_group:
            raise ValueError("CITY_ANALYTICS_SHARDS > 1 shares the devices by their id: leave "
                             "CITY_ANALYTICS_SHARE_GROUP empty (a shared subscription splits a device's messages)")
        profile = self.city  # a bad profile refuses to start, naming its line and field
        self.city_name = self.city_name or profile.name
        self._fixed_offset = self.utc_offset_hours is not None
        if self.utc_offset_hours is None:
            self.utc_offset_hours = profile.utc_offset_hours
        return self

    @property
    def local_zone(self) -> str:
        """The IANA zone of the city's local days (daylight saving included); "" when CITY_UTC_OFFSET_HOURS
        fixes the offset instead."""
        return "" if self._fixed_offset else self.city.spec.time_zone

    @property
    def city(self) -> CityProfile:
        """The validated city profile (read again when its file changes)."""
        return cached_profile(self.profile)

    @property
    def registry_file(self) -> Path:
        return self.registry_path or self.data_dir / "registry.sqlite3"

    @property
    def api_db_file(self) -> Path:
        return self.api_db_path or self.data_dir / "api.sqlite3"

    @property
    def device_ca_path(self) -> Path:
        return self.device_ca_file or self.data_dir / "tls" / "ca.der"

    @property
    def analytics_state_path(self) -> Path | None:
        """The analytics engines' state folder, or None when analytics_state_dir is "off"."""
        if self.analytics_state_dir.strip().lower() == "off":
            return None
        return Path(self.analytics_state_dir) if self.analytics_state_dir else self.data_dir / "analytics"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool" / self.ingest_worker_id

    @property
    def deadletter_file(self) -> Path:
        return self.data_dir / "deadletter.sqlite3"


@lru_cache
def get_settings() -> Settings:
    return Settings()
