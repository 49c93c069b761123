"""Settings that document themselves: every setting in telemetry_shared/settings.py
carries a description, and the settings tables of the component READMEs match
the settings object both ways: every setting has a row (in the README of the
component it belongs to) and every `CITY_*` row names a real setting. When one
is missing, the failure prints the exact row to paste."""

import re
from pathlib import Path

from pydantic_core import PydanticUndefined

from telemetry_shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Where a setting's row goes, by the start of its name; the first match wins; the rest: the top README.
OWNERS = (
    ("api/README.md", ("api_host", "api_port", "api_db_path", "api_mqtt_user", "api_escalate", "api_silent",
                       "api_public", "api_opendata", "api_notify", "api_sensor", "api_hospital", "api_citizen",
                       "api_alarm", "smtp_",
                       "registry_path")),
    ("telemetry_cli/README.md", ("api_url", "api_token", "broker_", "device_", "mqtt_tls_port")),
    ("ingest/README.md", ("ingest_", "raw_retention", "rollup_")),
    ("analytics/README.md", ("analytics_",)),
    ("grafana/README.md", ("grafana_",)),
)
DEFAULT_README = "README.md"
TABLE_ROW = re.compile(r"^\|\s*(`CITY_[A-Z0-9_]+`[^|]*)\|")
NAME = re.compile(r"`CITY_([A-Z0-9_]+)`")


def env_name(field: str) -> str:
    return f"CITY_{field.upper()}"


def owner(field: str) -> str:
    for readme, prefixes in OWNERS:
        if field.startswith(prefixes):
            return readme
    return DEFAULT_README


def documented(readme: str) -> set[str]:
    """The settings named in the first cell of the README's table rows."""
    names: set[str] = set()
    for line in (ROOT / readme).read_text().splitlines():
        match = TABLE_ROW.match(line)
        if match:
            names |= {name.lower() for name in NAME.findall(match.group(1))}
    return names


def suggested_row(field: str) -> str:
    info = Settings.model_fields[field]
    default = info.default if info.default is not PydanticUndefined else "(required)"
    default = "(none)" if default in ("", None) else default
    return f"| `{env_name(field)}` | `{default}` | {info.description or 'WHAT IT DOES'} |"


def test_every_setting_has_a_description() -> None:
    missing = [name for name, info in Settings.model_fields.items() if not (info.description or "").strip()]
    assert missing == [], ("these settings need Field(..., description=...) in telemetry_shared/settings.py: "
                           + ", ".join(missing))


def test_every_setting_has_a_row_in_its_components_readme() -> None:
    missing = {}
    for field in Settings.model_fields:
        readme = owner(field)
        if field not in documented(readme):
            missing.setdefault(readme, []).append(suggested_row(field))
    message = "\n".join(f"add to the settings table of {readme}:\n" + "\n".join(rows)
                        for readme, rows in missing.items())
    assert not missing, message


def test_every_readme_row_names_a_real_setting() -> None:
    readmes = {readme for readme, _ in OWNERS} | {DEFAULT_README}
    unknown = [f"{readme}: `{env_name(name)}`" for readme in sorted(readmes) for name in sorted(documented(readme))
               if name not in Settings.model_fields]
    assert unknown == [], ("these README rows name no setting of telemetry_shared/settings.py (renamed or "
                           "removed? fix or delete the row): " + ", ".join(unknown))


def test_the_row_suggestion_is_a_row_the_check_reads() -> None:
    row = suggested_row("api_port")
    assert TABLE_ROW.match(row) and "api_port" in {n.lower() for n in NAME.findall(row)}
