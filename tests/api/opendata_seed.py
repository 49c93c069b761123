"""Seeding for the open-data tests: raw readings written to a real influxd and rolled up by the real
rollup code (ingest/rollup.py), so the datasets read what `city rollup` writes in production."""

from ingest import cells
from ingest.rollup import ROLLUP_RP, ensure_retention, run_rollup
from telemetry_shared.influx import InfluxQL, V1Writer

HOUR_MS = 3_600_000


def write_readings(influx: InfluxQL, lines: list[str]) -> None:
    writer = V1Writer(str(influx.http.base_url), influx.db)
    try:
        writer.write(lines)
    finally:
        writer.close()


def roll_up(influx: InfluxQL, start_ms: int, end_ms: int) -> None:
    """Hourly rollups of [start_ms, end_ms) into the `rollups` policy, as `city rollup run` does: with the
    open data's district cells, and their coverage mark on the first run (so the datasets read stored cells,
    the production path; tests/api/test_opendata_cells.py compares it with summing per request)."""
    ensure_retention(influx, "3650d")
    writer = V1Writer(str(influx.http.base_url), influx.db, rp=ROLLUP_RP)
    try:
        run_rollup(influx, writer, "1h", start_ms, end_ms, 0)
        cells.backfill(influx, writer, end_ms)
    finally:
        writer.close()


def readings(kind: str, metric: str, device: str, district: str, start_ms: int, end_ms: int, every_ms: int,
             value: float, extra: str = "") -> list[str]:
    """One metric of one device every `every_ms`, as line protocol (seq counts up)."""
    fields = f",{extra}" if extra else ""
    return [f"{kind},device={device},district={district} {metric}={value!r}{fields},seq={n}i {t}"
            for n, t in enumerate(range(start_ms, end_ms, every_ms))]
