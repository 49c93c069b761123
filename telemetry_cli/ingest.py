"""`city ingest retire-worker N`: scale the ingest workers down without losing
what the broker still queues for a stopped worker (see ingest/retire.py).

Exit codes: 0 retired, 2 bad input, 4 the worker is still running (nothing changed: stop it
first), 6 broker or InfluxDB unavailable (nothing lost: the session stays and the command can
be run again).
"""

import json
from typing import Annotated

import typer

from ingest.retire import RetireError, WorkerRunning, retire
from telemetry_cli.common import (
    EXIT_CONFLICT,
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    JsonFlag,
    fail,
    load_settings,
    number,
    out,
    say,
)
from telemetry_shared.broker import MAX_SERVICE_INSTANCES

app = typer.Typer(help=say("ingest.help1"), no_args_is_help=True)


@app.command("retire-worker", help=say("ingest.retire_worker.help"))
def retire_worker(
    instance: Annotated[int, typer.Argument(help=say("ingest.help2"))],
    quiet_s: Annotated[float, typer.Option(help=say("ingest.help3"))] = 2.0,
    timeout_s: Annotated[float, typer.Option(help=say("ingest.help4"))] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Drain a stopped worker's broker session and spool into InfluxDB, then end the session.

    Stop the worker first (and start the remaining ones with CITY_INGEST_WORKERS lowered); a
    worker still running, on this machine or another, is refused (exit code 4), nothing changed.
    Mosquitto keeps queueing a stopped member's share of the shared subscription until its
    session is ended, which is what this does after storing what it held."""
    if not 0 <= instance < MAX_SERVICE_INSTANCES:
        fail(say("ingest.bad_instance", last=MAX_SERVICE_INSTANCES - 1), EXIT_INVALID)
    settings = load_settings()
    try:
        done = retire(settings, instance, quiet_s, timeout_s)
    except WorkerRunning as exc:
        fail(str(exc), EXIT_CONFLICT)
    except RetireError as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    if as_json:
        print(json.dumps(done.__dict__))
        return
    out.print(say("ingest.retired", worker=done.worker_id, messages=number(done.messages, 0),
                  points=number(done.points, 0), dead=number(done.dead_letters, 0)))
