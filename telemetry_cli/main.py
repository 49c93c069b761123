"""The `city` command. Each command group lives in its own module and is
registered here, so a newcomer finds `city device ...` in telemetry_cli/device.py."""

import typer

from telemetry_cli import analytics, apikey, deadletter, device, grafana, ingest, rollup, score_eval, up
from telemetry_cli import simulate as simulate_cmd

app = typer.Typer(help="City telemetry platform: run the city, manage devices, score data.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """Keeps `city` a group of commands even while it has only one."""


app.command("up", help="Run the whole city on this machine: broker, InfluxDB, services and a simulated fleet.")(up.up)
app.add_typer(device.app, name="device", help="Register, configure, flash, watch and retire devices.")
app.add_typer(grafana.app, name="grafana", help="Grafana dashboards as code: generate the JSON, sync it to Grafana.")
analytics.register(app)  # city score | evaluate | rescore
score_eval.register(app)  # city score-eval
app.add_typer(deadletter.app, name="deadletter", help="Rejected telemetry: list it, count it, replay it.")
app.add_typer(ingest.app, name="ingest", help="The ingest workers: retire one without losing what it queued.")
app.add_typer(rollup.app, name="rollup", help="Hourly and daily rollups, and how long raw readings are kept.")
app.command("simulate", help="Run thousands of simulated devices against the local city.")(simulate_cmd.simulate)
app.add_typer(apikey.app, name="apikey", help="API keys for the API and the control room: create, list, revoke.")


if __name__ == "__main__":
    app()
