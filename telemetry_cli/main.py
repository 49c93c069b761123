"""The `city` command. Each command group lives in its own module and is
registered here, so a newcomer finds `city device ...` in telemetry_cli/device.py."""

import typer

from telemetry_cli import (
    analytics,
    apikey,
    citizens,
    common,
    deadletter,
    device,
    grafana,
    ingest,
    power,
    rollup,
    score_eval,
    up,
)
from telemetry_cli import network as network_cmd
from telemetry_cli import simulate as simulate_cmd
from telemetry_cli import water as water_cmd
from telemetry_cli.common import say

app = typer.Typer(help=say("main.help1"), no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """Keeps `city` a group of commands even while it has only one; each command starts in the user's language."""
    common.neutral(False)


app.command("up", help=say("main.help8"))(up.up)
app.add_typer(device.app, name="device", help=say("main.help2"))
app.add_typer(grafana.app, name="grafana", help=say("main.help3"))
analytics.register(app)  # city score | evaluate | rescore
score_eval.register(app)  # city score-eval
app.add_typer(deadletter.app, name="deadletter", help=say("main.help4"))
app.add_typer(ingest.app, name="ingest", help=say("main.help5"))
app.add_typer(rollup.app, name="rollup", help=say("main.help6"))
app.command("simulate", help=say("main.help9"))(simulate_cmd.simulate)
app.add_typer(apikey.app, name="apikey", help=say("main.help7"))
app.command("power-quality", help=say("main.help_power"))(power.power_quality)
app.add_typer(network_cmd.app, name="network", help=say("main.help_network"))
app.command("water-balance", help=say("main.help_water_balance"))(water_cmd.water_balance)
app.add_typer(citizens.app, name="citizens", help=say("main.help_citizens"))


if __name__ == "__main__":
    app()
