"""`city citizens rekey|expire`: the citizens' complaints kept in this machine's API database
(CITY_API_DB_PATH, the file the API reads).

- `rekey`: after the contact key was changed (the new one in CITY_API_CITIZEN_CONTACT_KEY, the former ones
  in CITY_API_CITIZEN_CONTACT_OLD_KEYS), every sealed contact is opened with whichever key sealed it and
  sealed again with the new one, its hash made again; run it until it reports 0 left on a former key, then
  drop the former keys. Safe to run while the API runs, and again.
- `expire`: retention now (the API does it at start and hourly): photos older than
  CITY_API_CITIZEN_PHOTO_KEEP_DAYS, closed complaints' contacts older than CITY_API_CITIZEN_CONTACT_KEEP_DAYS.

Exit codes: 1 when a contact no key opens was found (a former key missing), 2 bad configuration.
"""

import json

import typer
from rich.table import Table

from api.citizens.complaints import ComplaintStore
from api.citizens.protect import ContactVault
from api.db import ApiDb, now_ms
from telemetry_cli.common import EXIT_FAILED, EXIT_INVALID, JsonFlag, fail, load_settings, neutral, out, say

app = typer.Typer(help=say("citizens.help"), no_args_is_help=True)
DAY_MS = 86_400_000


def _store() -> tuple[ComplaintStore, float, float]:
    settings = load_settings()
    old_keys = [k.strip() for k in settings.api_citizen_contact_old_keys.split(",") if k.strip()]
    try:
        vault = ContactVault(settings.api_citizen_contact_key, settings.environment == "production", old_keys)
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID)
    store = ComplaintStore(ApiDb(settings.api_db_file), vault, settings.api_citizen_per_address_per_hour,
                           settings.api_citizen_per_contact_per_day)
    return store, settings.api_citizen_photo_keep_days, settings.api_citizen_contact_keep_days


def _table(title: str, rows: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column(say("citizens.col.what"))
    table.add_column(say("citizens.col.count"), justify="right")
    for key, value in rows.items():
        table.add_row(say(f"citizens.{key}"), str(value))
    return table


@app.command(help=say("citizens.rekey.help"))
def rekey(as_json: JsonFlag = False) -> None:
    """Seal every contact again under the current key."""
    neutral(as_json)
    store, _, _ = _store()
    resealed, current, unreadable = store.rekey()
    rows = {"resealed": resealed, "current": current, "unreadable": unreadable}
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        out.print(_table(say("citizens.rekey.title"), rows))
    if unreadable:
        fail(say("citizens.unreadable", n=unreadable), EXIT_FAILED)


@app.command(help=say("citizens.expire.help"))
def expire(as_json: JsonFlag = False) -> None:
    """Delete what is past its retention now."""
    neutral(as_json)
    store, photo_days, contact_days = _store()
    photos, contacts = store.expire(now_ms(), int(photo_days * DAY_MS), int(contact_days * DAY_MS))
    rows = {"photos": photos, "contacts": contacts}
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        out.print(_table(say("citizens.expire.title"), rows))
