"""The `city` command. Each command group lives in its own module and is
registered here, so a newcomer finds `city device ...` in telemetry_cli/device.py.

A command run from a shell imports only what it needs: `city score` (and the
other analytics commands) registers its own module alone, so a user timing
`city score big.csv` does not wait for the API's, Grafana's and InfluxDB's
modules (~0.6 s of imports before this). `city --help` and every other command
build the whole app, as does `from telemetry_cli.main import app`.

The console script (`run`) also keeps Python's garbage collector off what lives
until the process ends (gc.freeze): see `run`."""

import gc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import typer

from telemetry_cli import common
from telemetry_cli.common import say

# The commands registered by the analytics modules alone (telemetry_cli.analytics, telemetry_cli.score_eval).
ANALYTICS_COMMANDS = frozenset({"score", "evaluate", "rescore", "score-eval"})


def _root() -> None:
    """Keeps `city` a group of commands even while it has only one; each command starts in the user's language."""
    common.neutral(False)


def _register_analytics(app: typer.Typer) -> None:
    from telemetry_cli import analytics, score_eval

    analytics.register(app)  # city score | evaluate | rescore
    score_eval.register(app)  # city score-eval


def build(command: str | None = None) -> typer.Typer:
    """The `city` app: only the analytics commands when `command` (the first argument) is one of them, else all."""
    app = typer.Typer(help=say("main.help1"), no_args_is_help=True, pretty_exceptions_enable=False)
    app.callback()(_root)
    if command in ANALYTICS_COMMANDS:
        _register_analytics(app)
        return app
    from telemetry_cli import apikey, citizens, deadletter, device, grafana, ingest, power, rollup, up
    from telemetry_cli import network as network_cmd
    from telemetry_cli import simulate as simulate_cmd
    from telemetry_cli import water as water_cmd

    app.command("up", help=say("main.help8"))(up.up)
    app.add_typer(device.app, name="device", help=say("main.help2"))
    app.add_typer(grafana.app, name="grafana", help=say("main.help3"))
    _register_analytics(app)
    app.add_typer(deadletter.app, name="deadletter", help=say("main.help4"))
    app.add_typer(ingest.app, name="ingest", help=say("main.help5"))
    app.add_typer(rollup.app, name="rollup", help=say("main.help6"))
    app.command("simulate", help=say("main.help9"))(simulate_cmd.simulate)
    app.add_typer(apikey.app, name="apikey", help=say("main.help7"))
    app.command("power-quality", help=say("main.help_power"))(power.power_quality)
    app.add_typer(network_cmd.app, name="network", help=say("main.help_network"))
    app.command("water-balance", help=say("main.help_water_balance"))(water_cmd.water_balance)
    app.add_typer(citizens.app, name="citizens", help=say("main.help_citizens"))
    return app


def _blas_probe_answered() -> None:
    """Loads scipy's `scipy.linalg.cython_blas` alone, from its file, so numba's first kernel load need not import
    all of scipy.linalg for it.

    numba's target context, refreshed at the first kernel load, probes for BLAS when it imports numba.np.arraymath
    (`import scipy.linalg.cython_blas`); that imports scipy.linalg, whose array-API layer clones numpy's namespace
    and so imports numpy.f2py, numpy.testing and more: ~0.15 s of `city score`'s start, for a module no analytics
    kernel calls. The extension alone loads in well under a millisecond and answers the probe the same way. What
    differs afterwards: an `import scipy.linalg` later in the process does not make `cython_blas` an attribute of
    scipy.linalg (`from scipy.linalg import cython_blas` still works). Where the file is not found or does not load,
    nothing is done: numba imports scipy.linalg as before."""
    name = "scipy.linalg.cython_blas"
    found = importlib.util.find_spec("scipy")  # the package is not imported by this
    if name in sys.modules or "scipy.linalg" in sys.modules or found is None or not found.submodule_search_locations:
        return
    folder = Path(found.submodule_search_locations[0]) / "linalg"
    files = [folder / f"cython_blas{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    path = next((file for file in files if file.is_file()), None)
    if path is None:
        return
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    try:
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path, loader=loader))
        sys.modules[name] = module
        loader.exec_module(module)
    except (ImportError, OSError):
        sys.modules.pop(name, None)


def run() -> None:
    """The `city` console script: the app for this command line, run.

    What a command starts with lives until the process ends (`city score`: ~117,000 objects the collector tracks
    once its modules are imported, ~178,000 once numba has loaded its kernels), yet the collector walks it again in
    every full collection, and the interpreter's collections at exit walk all of it: ~0.1 s of `city score`'s
    imports and ~0.4 s of its exit (analytics/README.md, `city score` from a shell). So an analytics command (a
    batch run that exits) imports its modules with the collector paused (they leave ~700 objects of cyclic garbage)
    and then freezes what is alive (gc.freeze), and every command freezes what is alive when it ends: the collector
    walks only what is made afterwards. What is no longer collected: cycles among objects alive at a freeze, kept
    until the process exits. Only here, not in the app: a test process that invokes the app keeps its collector."""
    command = sys.argv[1] if len(sys.argv) > 1 else None
    batch = command in ANALYTICS_COMMANDS
    if batch:
        gc.disable()
        _blas_probe_answered()
    app = build(command)
    if batch:
        gc.freeze()
        gc.enable()
    try:
        app()
    finally:
        gc.freeze()  # the process exits next: its collections at exit need not walk what is alive


def __getattr__(name: str) -> typer.Typer:
    """`telemetry_cli.main.app`, the whole app (tests invoke it), built on first use."""
    if name == "app":
        globals()["app"] = app = build()
        return app
    raise AttributeError(name)


if __name__ == "__main__":
    run()
