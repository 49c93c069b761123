"""`city apikey create|list|revoke|role`: API keys for people and services.

Works on this machine's API database (CITY_API_DB_PATH, by default
CITY_DATA_DIR/api.sqlite3), the same file the API reads, so a key made here
works at once. The key is printed once, at creation; only its hash is kept.

Exit codes: see the table in telemetry_cli/README.md (3 no such key, 2 bad input).
"""

import json
import re
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from api.auth import KEY_NAME_PATTERN, KeyStore
from api.auth import STAFF_ROLES as ROLES  # hospital keys are made per hospital by the API
from api.db import ApiDb
from telemetry_cli.common import EXIT_INVALID, EXIT_NOT_FOUND, JsonFlag, fail, local_time, out, say
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
    return local_time(ms) if ms else ""


@app.command(help=say("apikey.create.help"))
def create(name: Annotated[str, typer.Argument(help=say("apikey.help2"))],
           role: Annotated[str, typer.Option(help=say("cli.one_of", choices=", ".join(ROLES)))],
           as_json: JsonFlag = False) -> None:
    """Create a key and print it (the only time it is shown)."""
    if not NAME.match(name) or len(name) > 64:
        fail(say("apikey.bad_name", name=repr(name[:40])), EXIT_INVALID)
    if role not in ROLES:
        fail(say("apikey.bad_role", role=repr(role[:40]), choices=", ".join(ROLES)), EXIT_INVALID)
    created = _store().create(name, role)
    if as_json:
        out.print_json(created.model_dump_json())
        return
    out.print(say("apikey.created", name=f"[bold]{escape(created.name)}[/]", role=created.role, id=created.id))
    out.print(created.key, highlight=False, soft_wrap=True)
    out.print(f"[dim]{escape(say('apikey.store_now'))}[/]")


@app.command("list", help=say("apikey.list_keys.help"))
def list_keys(as_json: JsonFlag = False) -> None:
    """List keys (never the secrets)."""
    keys, total = _store().list(limit=100_000)
    if as_json:
        out.print_json(json.dumps({"data": [k.model_dump() for k in keys], "count": total}))
        return
    table = Table(title=say("apikey.title", n=total))
    for column in ("id", "name", "role", "created", "revoked"):
        table.add_column(say(f"apikey.col.{column}"))
    for key in keys:
        table.add_row(key.id, key.name, key.role, _when(key.created_ms), _when(key.revoked_ms))
    out.print(table)


@app.command(help=say("apikey.revoke.help"))
def revoke(key_id: Annotated[str, typer.Argument(help=say("apikey.help3"))]) -> None:
    """Revoke a key; it stops working at once."""
    if not re.fullmatch(r"[0-9a-f]{8}", key_id):
        fail(say("apikey.bad_id", id=repr(key_id[:40])), EXIT_INVALID)
    if not _store().revoke(key_id):
        fail(say("apikey.not_found", id=key_id), EXIT_NOT_FOUND)
    out.print(say("apikey.revoked", id=key_id))


@app.command(help=say("apikey.role.help"))
def role(key_id: Annotated[str, typer.Argument(help=say("apikey.help4"))],
         new_role: Annotated[str, typer.Argument(metavar="ROLE",
                                                 help=say("cli.one_of", choices=", ".join(ROLES)))]) -> None:
    """Give a key another role; its open streams end within seconds and reconnect with the new role."""
    if not re.fullmatch(r"[0-9a-f]{8}", key_id):
        fail(say("apikey.bad_id", id=repr(key_id[:40])), EXIT_INVALID)
    if new_role not in ROLES:
        fail(say("apikey.bad_role", role=repr(new_role[:40]), choices=", ".join(ROLES)), EXIT_INVALID)
    if _store().set_role(key_id, new_role) is None:
        fail(say("apikey.not_found", id=key_id), EXIT_NOT_FOUND)
    out.print(say("apikey.role_set", id=key_id, role=new_role))
