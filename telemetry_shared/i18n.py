"""Messages in the city's languages for what the servers and the CLI say to people: alert e-mails
and the CLI's messages. One set of catalogues with the pages (api/static/i18n/<lang>.json, JSON:
key -> text with {name} fields), so a rule, a metric or a unit has the same words everywhere.

The language: the caller's choice (an e-mail rule's "language"), else CITY_LANGUAGE, else the
locale of the shell (LC_ALL, LC_MESSAGES, LANG: "id_ID.UTF-8" is Indonesian), else the city
profile's default language. Numbers and times in local form: "1.234,5" and "20-03-2026 08.15 WIB"
in Indonesian, "1,234.5" and "2026-03-20 08:15 WIB" in English.
"""

import datetime as dt
import json
import os
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

CATALOGUES = Path(__file__).resolve().parent.parent / "api" / "static" / "i18n"
LANGUAGES = ("id", "en")
_TIME_FORMAT = {"id": "%d-%m-%Y %H.%M", "en": "%Y-%m-%d %H:%M"}
# Decimals a reading of each metric is shown with: the resolution of the sensors that report it
# (a pressure transducer resolves 0.01 bar, a meter's energy register whole kWh).
RESOLUTION: dict[str, int] = {
    "flow_lps": 1, "pressure_bar": 2, "level_m": 2, "turbidity_ntu": 1, "chlorine_mgl": 2,
    "voltage_v": 1, "current_a": 1, "power_kw": 1, "energy_kwh": 0, "power_factor": 2, "frequency_hz": 2,
    "temperature_c": 1, "humidity_pct": 0, "co2_ppm": 0, "occupancy": 0, "beds_free": 0,
    "vehicle_count": 0, "speed_kmh": 0, "occupancy_pct": 0,
}


@lru_cache(maxsize=4)
def catalogue(language: str) -> dict[str, str]:
    """The catalogue of one language (English for one we do not have)."""
    path = CATALOGUES / f"{language if language in LANGUAGES else 'en'}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def language(choice: str = "", default: str = "en") -> str:
    """The language to speak: the explicit choice, CITY_LANGUAGE, the shell's locale, or default."""
    for candidate in (choice, os.environ.get("CITY_LANGUAGE", ""), os.environ.get("LC_ALL", ""),
                      os.environ.get("LC_MESSAGES", ""), os.environ.get("LANG", "")):
        code = candidate.split("_")[0].split("-")[0].split(".")[0].lower()
        if code in LANGUAGES:
            return code
    return default if default in LANGUAGES else "en"


def t(key: str, lang: str, **fields: object) -> str:
    """The text of key in lang with its {fields} filled; the key itself when no catalogue has it."""
    return fill(catalogue(lang).get(key) or catalogue("en").get(key) or key, fields)


def fill(text: str, fields: dict[str, object]) -> str:
    """A catalogue text with its {fields} filled; a field not given stays as written."""
    return text.format_map(_Keep(fields))


class _Keep(dict):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


def number(value: float | None, decimals: int, lang: str) -> str:
    """1234.5 -> "1,234.5" (en) or "1.234,5" (id)."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}"
    return text.translate(str.maketrans(",.", ".,")) if lang == "id" else text


def local_time(t_ms: int, zone: str, lang: str) -> str:
    """A moment in the city's time zone with its abbreviation (the zone's own: WIB, HST, ...)."""
    moment = dt.datetime.fromtimestamp(t_ms / 1000, ZoneInfo(zone))
    return f"{moment.strftime(_TIME_FORMAT.get(lang, _TIME_FORMAT['en']))} {moment.tzname()}"


def reading(metric: str, value: float | None, lang: str) -> str:
    """A reading with its metric's resolution and unit: "1,20 bar"."""
    from edge import contract

    unit = contract.METRICS[metric][1] if metric in contract.METRICS else ""
    shown = t(f"unit.{unit}", lang) if unit else ""
    text = number(value, RESOLUTION.get(metric, 2), lang)
    return f"{text} {shown}" if shown and value is not None else text
