"""`city apikey create|list|revoke|role`: API keys for people and services.

Works on this machine's API database (CITY_API_DB_PATH, by default
CITY_DATA_DIR/api.sqlite3), the same file the API reads, so a key made here
works at once. The key is printed once, at creation; only its hash is kept.

Exit codes: see the table in telemetry_cli/README.md (3 no such key, 2 bad input).
"""

import json
import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from api.auth import KEY_NAME_PATTERN, KeyStore
from api.auth import STAFF_ROLES as ROLES  # hospital keys are made per hospital by the API
from api.db import ApiDb
from telemetry_cli.common import EXIT_INVALID, EXIT_NOT_FOUND, JsonFlag, fail, out, say
from telemetry_shared.settings import Settings

NAME = re.compile(KEY_NAME_PATTERN)

app = typer.Typer(help=say("apikey.help1"), no_args_is_help=True)

def _store() -> KeyStore:
    try:
        settings = Settings()
    except ValueError as exc:
        fail(f"configuration: {exc}", EXIT_INVALID)
        raise  # unreachable
    return KeyStore(ApiDb(settings.api_db_file))


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else ""


@app.command(help=say("apikey.create.help"))
def create(name: Annotated[str, typer.Argument(help=say("apikey.help2"))],
           role: Annotated[str, typer.Option(help=say("cli.one_of", choices=", ".join(ROLES)))],
           as_json: JsonFlag = False) -> None:
    """Create a key and print it (the only time it is shown)."""
    if not NAME.match(name) or len(name) > 64:
        fail(f"bad name {name[:40]!r}: 1 to 64 ASCII letters, digits, spaces and . @ _ -", EXIT_INVALID)
    if role not in ROLES:
        fail(f"bad role {role[:40]!r}: one of {', '.join(ROLES)}", EXIT_INVALID)
    created = _store().create(name, role)
    if as_json:
        out.print_json(created.model_dump_json())
        return
    out.print(f"API key for [bold]{created.name}[/] ({created.role}), id {created.id}:")
    out.print(created.key, highlight=False, soft_wrap=True)
    out.print("[dim]Store it now: it is not shown again. Send it as `Authorization: Bearer <key>`.[/]")


@app.command("list", help=say("apikey.list_keys.help"))
def list_keys(as_json: JsonFlag = False) -> None:
    """List keys (never the secrets)."""
    keys, total = _store().list(limit=100_000)
    if as_json:
        out.print_json(json.dumps({"data": [k.model_dump() for k in keys], "count": total}))
        return
    table = Table(title=f"{total} API keys")
    for column in ("id", "name", "role", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(key.id, key.name, key.role, _when(key.created_ms), _when(key.revoked_ms))
    out.print(table)


@app.command(help=say("apikey.revoke.help"))
def revoke(key_id: Annotated[str, typer.Argument(help=say("apikey.help3"))]) -> None:
    """Revoke a key; it stops working at once."""
    if not re.fullmatch(r"[0-9a-f]{8}", key_id):
        fail(f"bad key id {key_id[:40]!r}: 8 hex digits", EXIT_INVALID)
    if not _store().revoke(key_id):
        fail(f"no live API key {key_id}", EXIT_NOT_FOUND)
    out.print(f"revoked {key_id}")


@app.command(help=say("apikey.role.help"))
def role(key_id: Annotated[str, typer.Argument(help=say("apikey.help4"))],
         new_role: Annotated[str, typer.Argument(metavar="ROLE",
                                                 help=say("cli.one_of", choices=", ".join(ROLES)))]) -> None:
    """Give a key another role; its open streams end within seconds and reconnect with the new role."""
    if not re.fullmatch(r"[0-9a-f]{8}", key_id):
        fail(f"bad key id {key_id[:40]!r}: 8 hex digits", EXIT_INVALID)
    if new_role not in ROLES:
        fail(f"bad role {new_role[:40]!r}: one of {', '.join(ROLES)}", EXIT_INVALID)
    if _store().set_role(key_id, new_role) is None:
        fail(f"no live API key {key_id}", EXIT_NOT_FOUND)
    out.print(f"{key_id} is now {new_role}")
