"""`city rollup run|retention`: hourly and daily rollups (min, mean, max, count
per series) into the `rollups` retention policy, and the raw data's retention.

Exit codes: 0 done, 2 bad input, 6 InfluxDB unavailable or refused.
"""

import json
import logging
import time
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from ingest.cells import backfill as backfill_cells
from ingest.rollup import ROLLUP_RP, ensure_retention, retention_policies, run_rollup
from telemetry_cli.common import EXIT_UNAVAILABLE, JsonFlag, err, fail, load_settings, local_time, number, out, say
from telemetry_shared.influx import InfluxError, InfluxQL, V1Writer
from telemetry_shared.settings import Settings

MAX_LOOKBACK_H = 24 * 400  # a full rebuild after a year offline, and no more

app = typer.Typer(help=say("rollup.help1"), no_args_is_help=True)

def _rollup_writer(s: Settings) -> V1Writer:
    # The v1 /write endpoint with rp= reaches a named retention policy on 1.x,
    # and the mapped bucket on 2.x/3.x through their v1 compatibility API.
    return V1Writer(s.influx_url, s.influx_db, s.influx_user, s.influx_password, s.influx_timeout_s, rp=ROLLUP_RP)


def _once(s: Settings, lookback_h: int, as_json: bool) -> None:
    influx = InfluxQL.from_settings(s)
    writer = _rollup_writer(s)
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - lookback_h * 3_600_000
    try:
        if ROLLUP_RP not in retention_policies(influx):
            fail(say("rollup.no_policy", policy=repr(ROLLUP_RP), db=s.influx_db), EXIT_UNAVAILABLE)
        reports = []
        with Progress(console=err, transient=True, disable=as_json) as progress:
            task = progress.add_task(say("rollup.rolling_up"), total=2)
            for period in ("1h", "1d"):
                reports.append(run_rollup(influx, writer, period, start_ms, now_ms, s.utc_offset_hours,
                                          s.local_zone))
                progress.advance(task)
            backfilled = backfill_cells(influx, writer, now_ms)  # once, after an upgrade: the district cells
        _prerender(s, influx, start_ms if backfilled["from_ms"] is None else backfilled["from_ms"], now_ms)
    except InfluxError as exc:
        fail(f"InfluxDB: {exc}", EXIT_UNAVAILABLE)
    finally:
        writer.close()
        influx.close()
    rows = [{"period": r.period, "start_ms": r.start_ms, "end_ms": r.end_ms, "points": r.points} for r in reports]
    if as_json:
        print(json.dumps({"data": rows, "count": len(rows)}))
        return
    table = Table(title=say("rollup.written_to", where=f"{s.influx_db}.{ROLLUP_RP}"))
    for column in ("period", "from", "to", "points"):
        table.add_column(say(f"rollup.col.{column}"))
    for r in rows:
        table.add_row(r["period"], local_time(r["start_ms"]), local_time(r["end_ms"]), number(r["points"], 0))
    out.print(table)


def _prerender(s: Settings, influx: InfluxQL, changed_from_ms: int, now_ms: int) -> None:
    """The open-data files whose district cells this run rewrote, rendered into the API's download cache
    (api/opendata/prerender.py). A failure there (the cache not writable) is logged, not the run's end:
    the API then makes those files on request."""
    from api.opendata import prerender

    try:
        report = prerender.after_rollup(s, influx, changed_from_ms, now_ms)
    except OSError as exc:
        logging.getLogger("city.rollup").warning(say("rollup.prerender_failed", error=exc))
        return
    logging.getLogger("city.rollup").info(say("rollup.prerender_done", report=report))


LookbackH = Annotated[int | None, typer.Option(min=1, max=MAX_LOOKBACK_H,
                                               help=say("rollup.help2"))]


@app.command("run", help=say("rollup.run.help"))
def run(lookback_h: LookbackH = None,
        every_s: Annotated[int, typer.Option(min=0, max=86_400, help=say("rollup.help3"))] = 0,
        as_json: JsonFlag = False) -> None:
    """Recompute the hourly and daily rollups of the last hours (harmless to repeat)."""
    s = load_settings()
    hours = lookback_h or s.rollup_lookback_h
    while True:
        _once(s, hours, as_json)
        if not every_s:
            return
        time.sleep(every_s)


@app.command("retention", help=say("rollup.retention.help"))
def retention(as_json: JsonFlag = False) -> None:
    """Keep raw readings CITY_RAW_RETENTION (e.g. 90d) and rollups for ever (needs an admin account)."""
    s = load_settings()
    influx = InfluxQL.from_settings(s)
    try:
        ensure_retention(influx, s.raw_retention)
        policies = retention_policies(influx)
    except InfluxError as exc:
        fail(f"InfluxDB: {exc}", EXIT_UNAVAILABLE)
    finally:
        influx.close()
    if as_json:
        print(json.dumps({"data": [{"name": k, "duration": v} for k, v in policies.items()], "count": len(policies)}))
        return
    table = Table(title=say("rollup.policies_of", db=s.influx_db))
    table.add_column(say("rollup.col.policy"))
    table.add_column(say("rollup.col.keeps"))
    for name, duration in policies.items():
        table.add_row(name, say("rollup.ever") if duration == "0s" else duration)
    out.print(table)
