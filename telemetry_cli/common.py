"""What every `city` command shares: exit codes, the two consoles, the --json
flag, and failing with a clear message instead of a traceback."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from telemetry_shared import i18n
from telemetry_shared.settings import Settings

# One exit code per kind of failure, the same in every command, so scripts can tell them apart.
EXIT_FAILED = 1  # the command ran and the answer is "no" (a check failed, something is still refused)
EXIT_INVALID = 2  # bad arguments or configuration (as typer's own usage errors)
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_AUTH = 5
EXIT_UNAVAILABLE = 6  # a server (API, InfluxDB, broker) did not answer

out = Console()
err = Console(stderr=True)

CATALOGUES = Path(__file__).resolve().parent / "i18n"  # the CLI's words: <lang>.json, key -> text with {fields}


@lru_cache(maxsize=4)
def _catalogue(lang: str) -> dict[str, str]:
    return json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))


def say(key: str, **fields: object) -> str:
    """A message or help text of the CLI in the user's language (CITY_LANGUAGE, else the shell's locale, else
    English): from the CLI's catalogues (telemetry_cli/i18n), else the shared ones (api/static/i18n)."""
    lang = i18n.language()
    text = _catalogue(lang).get(key) or _catalogue("en").get(key)
    if text is None:
        return i18n.t(key, lang, **fields)
    return text.format_map(i18n._Keep(fields))


JsonFlag = Annotated[bool, typer.Option("--json", help=say("common.help1"))]


def fail(message: str, code: int) -> NoReturn:
    # a message may quote hostile input: escaped
    err.print(f"[bold red]{say('cli.error')}[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The settings, or a clear configuration error naming the variable."""
    try:
        return Settings()
    except ValueError as exc:
        fail(f"configuration: {exc}", EXIT_INVALID)
