"""`city network ...`: the utilities' topology as engineers set it: district meter areas (DMAs) with their
inlet and customer meters, feeders with their transformer and customer meters. Through the API (engineer
key), which checks every change whole and refuses it with the reason (exit 4, nothing changed).

Exit codes: 0 done, 2 bad input, 3 no such DMA or feeder, 4 refused (the reason is printed), 5 token
refused, 6 API unavailable.
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edge import contract
from telemetry_cli.common import EXIT_INVALID, EXIT_NOT_FOUND, JsonFlag, fail, neutral, out, say
from telemetry_cli.device import YesFlag, _api_call, _confirm, _print_json
from telemetry_cli.device_api import ApiError, DeviceApi
from telemetry_shared.files import FileTooLarge, read_bounded_text

app = typer.Typer(help=say("network.help"), no_args_is_help=True)

NetworkId = Annotated[str, typer.Argument(help=say("network.help_id"))]
Customers = Annotated[list[str] | None, typer.Option("--customer", help=say("network.help_customer"))]
CustomersFile = Annotated[Path | None, typer.Option("--customers-file", help=say("network.help_customers_file"),
                                                    exists=True, dir_okay=False, readable=True)]
Name = Annotated[str, typer.Option(help=say("network.help_name"))]
MAX_FILE_BYTES = 4_000_000  # a customers file: 20,000 ids a network at most, one a line


def _meters(given: list[str] | None, path: Path | None) -> list[str]:
    """Meter ids from the options and from a file (one a line, '#' comments), checked as device ids."""
    ids = list(given or [])
    if path is not None:
        try:
            lines = read_bounded_text(path, MAX_FILE_BYTES).splitlines()
        except FileTooLarge:
            fail(say("network.file_too_large", path=str(path), limit=MAX_FILE_BYTES), EXIT_INVALID)
        except UnicodeDecodeError:
            fail(say("network.file_not_text", path=str(path)), EXIT_INVALID)
        ids += [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    bad = [d for d in ids if not contract.valid_device_id(d)]
    if bad:
        fail(say("device.bad_id", id=repr(bad[0][:40])), EXIT_INVALID)
    return ids


def _show(network: dict) -> None:
    kind = say(f"network.kind.{network['utility']}")
    rows = {say("network.col.id"): network["id"], say("network.col.kind"): kind,
            say("network.col.name"): network["name"] or "-", say("network.col.parent"): network["parent"] or "-"}
    for role, ids in network["meters"].items():
        rows[say(f"network.role.{role}")] = f"{len(ids)}: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}"
    table = Table(title=say("network.title", kind=kind, id=network["id"]), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, escape(str(value)))
    out.print(table)


def _set(utility: str, network_id: str, body: dict, as_json: bool) -> None:
    saved = _api_call(lambda api: api.set_network(utility, network_id, body))
    if as_json:
        _print_json(saved)
        return
    out.print(say("network.saved", kind=say(f"network.kind.{utility}"), id=escape(network_id)))
    _show(saved)


@app.command("dma", help=say("network.dma.help"))
def set_dma(network_id: NetworkId,
            inlet: Annotated[list[str] | None, typer.Option("--inlet", help=say("network.help_inlet"))] = None,
            customer: Customers = None, customers_file: CustomersFile = None,
            parent: Annotated[str | None, typer.Option(help=say("network.help_parent"))] = None,
            name: Name = "", as_json: JsonFlag = False) -> None:
    """Create or replace a district meter area."""
    neutral(as_json)
    body = {"name": name, "parent": parent, "inlets": _meters(inlet, None),
            "customers": _meters(customer, customers_file)}
    _set("water", network_id, body, as_json)


@app.command("feeder", help=say("network.feeder.help"))
def set_feeder(network_id: NetworkId,
               transformer: Annotated[str, typer.Option(help=say("network.help_transformer"))],
               customer: Customers = None, customers_file: CustomersFile = None,
               name: Name = "", as_json: JsonFlag = False) -> None:
    """Create or replace a feeder."""
    neutral(as_json)
    body = {"name": name, "transformer": _meters([transformer], None)[0],
            "customers": _meters(customer, customers_file)}
    _set("power", network_id, body, as_json)


@app.command("list", help=say("network.list.help"))
def list_networks(as_json: JsonFlag = False) -> None:
    """Every DMA and feeder with its meter counts."""
    neutral(as_json)
    pages = _api_call(lambda api: {utility: api.networks(utility)["data"] for utility in ("water", "power")})
    if as_json:
        _print_json({"dmas": pages["water"], "feeders": pages["power"]})
        return
    table = Table(title=say("network.list_title", dmas=len(pages["water"]), feeders=len(pages["power"])),
                  title_justify="left")
    for column in ("id", "kind", "name", "parent", "supply", "customers"):
        table.add_column(say(f"network.col.{column}"))
    for utility, networks in pages.items():
        supply_role = "inlet" if utility == "water" else "transformer"
        for n in networks:
            table.add_row(*(escape(str(v)) for v in (
                n["id"], say(f"network.kind.{utility}"), n["name"] or "-", n["parent"] or "-",
                ", ".join(n["meters"][supply_role]), len(n["meters"]["customer"]))))
    out.print(table)


def _find(network_id: str) -> tuple[str, dict]:
    """(utility, network) of a DMA or feeder id."""
    def look(api: DeviceApi) -> tuple[str, dict] | None:
        for utility in ("water", "power"):
            try:
                return utility, api.network(utility, network_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return None

    found = _api_call(look)
    if found is None:
        fail(say("network.not_found", id=repr(network_id[:64])), EXIT_NOT_FOUND)
    return found


@app.command("show", help=say("network.show.help"))
def show(network_id: NetworkId, as_json: JsonFlag = False) -> None:
    """One DMA or feeder with all its meters."""
    neutral(as_json)
    _, network = _find(network_id)
    if as_json:
        _print_json(network)
    else:
        _show(network)


@app.command("remove", help=say("network.remove.help"))
def remove(network_id: NetworkId,
           yes: YesFlag = False,
           as_json: JsonFlag = False) -> None:
    """Remove a DMA or feeder; its meters stay registered."""
    neutral(as_json)
    utility, _ = _find(network_id)
    _confirm(say("network.confirm_remove", kind=say(f"network.kind.{utility}"), id=network_id), yes)
    answer = _api_call(lambda api: api.remove_network(utility, network_id))
    if as_json:
        _print_json(answer)
    else:
        out.print(say("network.removed", kind=say(f"network.kind.{utility}"), id=escape(network_id)))
