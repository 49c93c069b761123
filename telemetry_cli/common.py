"""What every `city` command shares: exit codes, the two consoles, the --json
flag, and failing with a clear message instead of a traceback."""

import json
import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

from telemetry_shared import i18n

if TYPE_CHECKING:  # imported where used: `city score` need not import pydantic's settings (~0.14 s)
    from telemetry_shared.settings import Settings

# One exit code per kind of failure, the same in every command, so scripts can tell them apart.
EXIT_FAILED = 1  # the command ran and the answer is "no" (a check failed, something is still refused)
EXIT_INVALID = 2  # bad arguments or configuration (as typer's own usage errors)
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_AUTH = 5
EXIT_UNAVAILABLE = 6  # a server (API, InfluxDB, broker) did not answer

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error message stays on one line (a long path too), for grep

CATALOGUES = Path(__file__).resolve().parent / "i18n"  # the CLI's words: <lang>.json, key -> text with {fields}


@lru_cache(maxsize=4)
def _catalogue(lang: str) -> dict[str, str]:
    return json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))


_forced: list[str] = []  # ["en"] while a --json command runs (neutral)


def neutral(as_json: bool) -> None:
    """--json output is for scripts and stays language-neutral: its words English, its numbers plain
    JSON numbers, its times Unix ms. Call it first in a command with --json; `city` resets it per command."""
    _forced[:] = ["en"] if as_json else []


def language() -> str:
    """The user's language: CITY_LANGUAGE, else the shell's locale (LANG=id_ID.UTF-8), else English."""
    return _forced[0] if _forced else i18n.language()


def say(key: str, /, **fields: object) -> str:
    """A message or help text of the CLI in the user's language (CITY_LANGUAGE, else the shell's locale, else
    English): from the CLI's catalogues (telemetry_cli/i18n), else the shared ones (api/static/i18n)."""
    lang = language()
    text = _catalogue(lang).get(key) or _catalogue("en").get(key)
    if text is None:
        return i18n.t(key, lang, **fields)
    return i18n.fill(text, fields)


JsonFlag = Annotated[bool, typer.Option("--json", help=say("common.help1"))]


def fail(message: str, code: int) -> NoReturn:
    # a message may quote hostile input: escaped
    err.print(f"[bold red]{say('cli.error')}[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def load_settings() -> "Settings":
    """The settings, or a clear configuration error naming the variable."""
    from telemetry_shared.settings import Settings

    try:
        return Settings()
    except ValueError as exc:
        fail(say("cli.configuration", error=exc), EXIT_INVALID)


def number(value: float | None, decimals: int) -> str:
    """A number for people: "1.234,5" in Indonesian, "1,234.5" in English."""
    return i18n.number(value, decimals, language())


def city_zone() -> str:
    """The city's zone for times shown to people (the profile's; a fixed CITY_UTC_OFFSET_HOURS as Etc/GMT)."""
    return _city_zone(os.environ.get("CITY_PROFILE", ""), os.environ.get("CITY_UTC_OFFSET_HOURS", ""))


@lru_cache(maxsize=8)
def _city_zone(profile: str, offset: str) -> str:  # keyed by what decides it: one profile read per command
    from telemetry_shared.alert_text import zone_name
    from telemetry_shared.settings import Settings

    try:
        settings = Settings()
    except ValueError:
        return "UTC"  # the command itself reports a bad configuration
    return zone_name(settings.local_zone, settings.utc_offset_hours or 0)


_CLOCK = {"id": "%H.%M.%S", "en": "%H:%M:%S"}
_SHORT = {"id": "%d-%m %H.%M", "en": "%m-%d %H:%M"}


def local_time(t_ms: int, clock_only: bool = False, short: bool = False) -> str:
    """A moment in the city's zone for people: "20-03-2026 11.00 WIB" (id), "2026-03-20 11:00 WIB" (en);
    clock_only: "11.00.05 WIB"; short (table cells under a title naming the zone): "20-03 11.00"."""
    lang = language()
    if not (clock_only or short):
        return i18n.local_time(t_ms, city_zone(), lang)
    moment = datetime.fromtimestamp(t_ms / 1000, ZoneInfo(city_zone()))
    if short:
        return moment.strftime(_SHORT.get(lang, _SHORT["en"]))
    return f"{moment.strftime(_CLOCK.get(lang, _CLOCK['en']))} {moment.tzname()}"


def zone_abbreviation() -> str:
    """The city zone's name as people write it now: WIB, HST, CEST."""
    return datetime.now(ZoneInfo(city_zone())).tzname() or city_zone()


def decimal(value: float) -> str:
    """A reported value as it came (3.9, not 3.90), with the decimal comma in Indonesian."""
    text = f"{value:g}"
    return text.replace(".", ",") if language() == "id" else text
