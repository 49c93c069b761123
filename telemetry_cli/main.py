"""The `city` command. Each command group lives in its own module and is
registered here, so a newcomer finds `city device ...` in telemetry_cli/device.py."""

import typer

from telemetry_cli import up

app = typer.Typer(help="City telemetry platform: run the city, manage devices, score data.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """Keeps `city` a group of commands even while it has only one."""


app.command("up", help="Run the whole city on this machine: broker, InfluxDB, services and a simulated fleet.")(up.up)


if __name__ == "__main__":
    app()
