"""One settings object for every server component, read from CITY_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITY_", extra="ignore")

    environment: str = Field("development", description="development or production")
    city_name: str = "Tanjungpinang"
    utc_offset_hours: int = 7
    data_dir: Path = Path("var")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_user: str = "svc-ingest"
    mqtt_password: str = DEV_SECRET

    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "city"
    influx_user: str = ""
    influx_password: str = ""
    influx_token: str = Field("", description="set for InfluxDB 2.x/3.x: writes go through the v2 API")
    influx_org: str = ""
    influx_bucket: str = ""
    influx_timeout_s: float = 10.0

    registry_path: Path | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    ingest_worker_id: str = "ingest-0"
    ingest_batch_points: int = 5000
    ingest_batch_ms: int = 200

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> "Settings":
        if self.environment == "production" and self.mqtt_password == DEV_SECRET:
            raise ValueError("CITY_MQTT_PASSWORD must be set in production (it still has the development default)")
        if self.environment not in ("development", "production", "test"):
            raise ValueError(f"CITY_ENVIRONMENT must be development, production or test, not {self.environment!r}")
        return self

    @property
    def registry_file(self) -> Path:
        return self.registry_path or self.data_dir / "registry.sqlite3"

    @property
    def deadletter_file(self) -> Path:
        return self.data_dir / "deadletter.sqlite3"


@lru_cache
def get_settings() -> Settings:
    return Settings()
