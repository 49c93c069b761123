"""What every `city` command shares: exit codes, the two consoles, the --json
flag, and failing with a clear message instead of a traceback."""

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

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of a table")]


def say(key: str, **fields: object) -> str:
    """A message of the CLI in the user's language (CITY_LANGUAGE, else the shell's locale, else English)."""
    return i18n.t(key, i18n.language(), **fields)


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
