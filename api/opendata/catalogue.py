"""The open-data catalogue: each open dataset described once (`describe`), then written as a CKAN package
(`ckan_package`, what CKAN's action API answers) and as DCAT (`dcat_catalog`, JSON-LD, DCAT-AP's mandatory
and recommended properties). Only `datasets.open_datasets` enters it: a closed dataset has no entry.

Titles and descriptions in Indonesian and English (CKAN: `title`/`notes` in the profile's default language,
`title_translated`/`notes_translated` with both, as ckanext-fluent has them; DCAT: one literal per language).
Licence CC BY 4.0; publisher from the profile's `open_data.publisher` (else the city's name); temporal
coverage from the first row a dataset has to the newest the policy publishes; spatial coverage the
profile's district boundaries; distributions: CSV and JSON of each month of the coverage (the newest
MAX_MONTHS), with accessURL (the dataset's page of periods) and downloadURL.

Public functions: `describe(services, dataset, base_url)`, `ckan_package(...)`, `dcat_catalog(...)`,
`dcat_dataset(...)`, `coverage(services)`.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api.opendata import datasets, policy
from api.opendata.datasets import Dataset
from telemetry_shared.influx import InfluxError, quote_ident

if TYPE_CHECKING:
    from api.services import ApiServices

LICENCE_ID = "cc-by"
LICENCE_TITLE = "Creative Commons Attribution 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
MAX_MONTHS = 12
ORGANIZATION = "city"  # the one CKAN organization: the city's publisher
FORMATS = {"csv": ("CSV", "text/csv"), "json": ("JSON", "application/json"),
           "ngsild": ("JSON_LD", "application/ld+json")}  # NGSI-LD (FIWARE Smart Data Models) is JSON-LD
EU = "http://publications.europa.eu/resource/authority/"
FREQUENCY = {"PT1H": "HOURLY", "P1D": "DAILY", "": "CONT"}  # EU frequency authority: hourly, daily, continuous
THEME = {"water": "ENVI", "power": "ENER", "building": "REGI", "traffic": "TRAN", "": "GOVE"}  # EU data themes
LANGUAGE_IRI = {"id": EU + "language/IND", "en": EU + "language/ENG"}
CONTEXT = {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
           "foaf": "http://xmlns.com/foaf/0.1/", "vcard": "http://www.w3.org/2006/vcard/ns#",
           "xsd": "http://www.w3.org/2001/XMLSchema#", "locn": "http://www.w3.org/ns/locn#",
           "gsp": "http://www.opengis.net/ont/geosparql#"}


@dataclass(frozen=True)
class Entry:
    """One open dataset as the catalogue shows it."""

    dataset: Dataset
    titles: dict[str, str]  # language -> text
    descriptions: dict[str, str]
    keywords: dict[str, list[str]]
    start_ms: int | None  # the first row (None: no data yet)
    end_ms: int  # the newest moment the policy publishes
    months: list[str]  # YYYY-MM of the distributions, newest first
    page_url: str  # the dataset's page (accessURL)


def _languages(services: "ApiServices") -> list[str]:
    profile = services.settings.city
    return [profile.spec.default_language] + [lang for lang in ("id", "en") if lang != profile.spec.default_language]


def publisher_names(services: "ApiServices") -> dict[str, str]:
    profile = services.settings.city
    chosen = profile.open_data.publisher
    return chosen.name.model_dump() if chosen else {"id": profile.name, "en": profile.name}


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def _first_rows(services: "ApiServices") -> dict[str, int]:
    """dataset id -> the time of its first row, one InfluxDB request for every readings dataset."""
    from ingest.rollup import retention_policies

    open_ = datasets.open_datasets(services.settings.city)
    try:
        has_rollups = datasets.ROLLUP_RP in retention_policies(services.influx)
    except InfluxError:
        return {}
    wanted, statements = [], []
    for d in open_:
        if d.source != "readings" or (d.policy.mode == "aggregated" and not has_rollups):
            continue
        source = (f"{quote_ident(datasets.ROLLUP_RP)}.{quote_ident(d.kind + '_1h')}" if d.policy.mode == "aggregated"
                  else quote_ident(d.kind))
        field = d.metric + "_mean" if d.policy.mode == "aggregated" else d.metric
        wanted.append(d.id)
        statements.append(f"SELECT first({quote_ident(field)}) FROM {source}")
    first: dict[str, int] = {}
    if statements:
        for dataset_id, result in zip(wanted, services.influx.raw(";".join(statements)), strict=True):
            for series in result.get("series", []):
                first[dataset_id] = series["values"][0][0]
    found = services.db.query("SELECT min(requested_ms) FROM complaints")
    if found and found[0][0] is not None:
        first[datasets.COMPLAINTS_ID] = found[0][0]
    return first


def coverage(services: "ApiServices") -> dict[str, int]:
    """dataset id -> its first row's time; cached like the public figures (a few seconds)."""
    key = "opendata-coverage:" + policy.fingerprint(services.settings.city)
    return services.public.get(key, lambda: _first_rows(services))


def months_between(services: "ApiServices", start_ms: int, end_ms: int) -> list[str]:
    """The local months holding [start_ms, end_ms), newest first."""
    zone = services.settings.city.zone
    first = dt.datetime.fromtimestamp(start_ms / 1000, zone)
    last = dt.datetime.fromtimestamp(max(start_ms, end_ms - 1) / 1000, zone)
    out, year, month = [], last.year, last.month
    while (year, month) >= (first.year, first.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def describe(services: "ApiServices", dataset: Dataset, base_url: str, now_ms: int | None = None) -> Entry:
    now = now_ms if now_ms is not None else _now_ms()
    city = services.settings.city.name
    start = coverage(services).get(dataset.id)
    end = policy.visible_until_ms(dataset.policy, now)
    months = months_between(services, start, end)[:MAX_MONTHS] if start is not None and start < end else []
    return Entry(dataset=dataset,
                 titles={lang: _capital(dataset.title(lang, city)) for lang in ("id", "en")},
                 descriptions={lang: _capital(dataset.description(lang, city)) for lang in ("id", "en")},
                 keywords={lang: dataset.keywords(lang) for lang in ("id", "en")},
                 start_ms=start, end_ms=end, months=months,
                 page_url=f"{base_url}/opendata/datasets/{dataset.id}")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def download_url(base_url: str, dataset_id: str, period: str, fmt: str) -> str:
    return f"{base_url}/opendata/download/{dataset_id}/{period}.{fmt}"


def _iso(t_ms: int | None) -> str | None:
    if t_ms is None:
        return None
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ CKAN


def ckan_organization(services: "ApiServices", base_url: str) -> dict[str, Any]:
    names = publisher_names(services)
    lang = services.settings.city.spec.default_language
    chosen = services.settings.city.open_data.publisher
    return {"id": ORGANIZATION, "name": ORGANIZATION, "title": names[lang], "display_name": names[lang],
            "title_translated": names, "description": "", "type": "organization", "state": "active",
            "is_organization": True, "approval_status": "approved", "image_url": "",
            "created": "2026-01-01T00:00:00", "package_count": len(datasets.open_datasets(services.settings.city)),
            "extras": [{"key": "url", "value": chosen.url if chosen else base_url}]}


def ckan_package(services: "ApiServices", entry: Entry, base_url: str) -> dict[str, Any]:
    """A CKAN package dict (the fields CKAN 2.9-2.11 answer for package_show)."""
    d = entry.dataset
    lang = services.settings.city.spec.default_language
    names = publisher_names(services)
    modified = _iso(entry.end_ms)
    created = _iso(entry.start_ms) or modified
    resources = []
    for month in entry.months:
        for fmt, (label, media_type) in FORMATS.items():
            resources.append({
                "id": f"{d.id}-{month}-{fmt}", "package_id": d.id, "name": f"{d.id} {month} ({label})",
                "description": entry.titles[lang] + f" ({month})", "format": label, "mimetype": media_type,
                "url": download_url(base_url, d.id, month, fmt), "url_type": None, "state": "active",
                "created": created, "last_modified": modified, "resource_type": None, "size": None,
                "position": len(resources)})
    tags = [{"id": keyword, "name": keyword, "display_name": keyword, "state": "active", "vocabulary_id": None}
            for keyword in dict.fromkeys(entry.keywords[lang] + entry.keywords["en" if lang == "id" else "id"])]
    extras = {"frequency": d.frequency or "continuous", "temporal_start": _iso(entry.start_ms) or "",
              "temporal_end": _iso(entry.end_ms) or "", "spatial": json.dumps(_spatial(services)),
              "publication_mode": d.policy.mode, "language": ",".join(_languages(services)),
              "columns": ",".join(d.columns), "unit": d.unit, "dcat_theme": EU + "data-theme/" + THEME[d.kind]}
    if d.policy.mode == "aggregated":
        extras["k_min_contributors"] = str(d.policy.k)
    if d.policy.mode == "raw":
        extras["delay_hours"] = str(d.policy.delay_ms // datasets.HOUR_MS)
    return {
        "id": d.id, "name": d.id, "title": entry.titles[lang], "notes": entry.descriptions[lang],
        "title_translated": entry.titles, "notes_translated": entry.descriptions,
        "type": "dataset", "state": "active", "private": False, "isopen": True,
        "license_id": LICENCE_ID, "license_title": LICENCE_TITLE, "license_url": LICENCE_URL,
        "author": names[lang], "author_email": _email(services), "maintainer": names[lang],
        "maintainer_email": _email(services), "url": entry.page_url, "version": "1.0",
        "metadata_created": created, "metadata_modified": modified, "owner_org": ORGANIZATION,
        "organization": ckan_organization(services, base_url), "groups": [], "relationships_as_object": [],
        "relationships_as_subject": [], "tags": tags, "num_tags": len(tags), "resources": resources,
        "num_resources": len(resources), "extras": [{"key": k, "value": v} for k, v in extras.items()],
    }


def _email(services: "ApiServices") -> str:
    chosen = services.settings.city.open_data.publisher
    return chosen.email if chosen else ""


def _spatial(services: "ApiServices") -> dict[str, Any]:
    """The profile's districts as one GeoJSON MultiPolygon (the city's extent)."""
    polygons = []
    for district in services.settings.city.districts:
        geometry = district.geojson
        polygons += [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return {"type": "MultiPolygon", "coordinates": polygons}


# ------------------------------------------------------------------ DCAT (JSON-LD)


def _texts(texts: dict[str, str]) -> list[dict[str, str]]:
    return [{"@value": text, "@language": lang} for lang, text in texts.items()]


def _agent(services: "ApiServices", base_url: str) -> dict[str, Any]:
    agent: dict[str, Any] = {"@id": f"{base_url}/opendata#publisher", "@type": "foaf:Agent",
                             "foaf:name": _texts(publisher_names(services))}
    chosen = services.settings.city.open_data.publisher
    if chosen and chosen.url:
        agent["foaf:homepage"] = {"@id": chosen.url}
    return agent


def _wkt(services: "ApiServices") -> str:
    lon0, lat0, lon1, lat1 = services.settings.city.bounds()
    return f"POLYGON(({lon0} {lat0}, {lon1} {lat0}, {lon1} {lat1}, {lon0} {lat1}, {lon0} {lat0}))"


def dcat_dataset(services: "ApiServices", entry: Entry, base_url: str) -> dict[str, Any]:
    d = entry.dataset
    contact: dict[str, Any] = {"@type": "vcard:Organization", "vcard:fn": publisher_names(services)["en"]}
    if _email(services):
        contact["vcard:hasEmail"] = {"@id": f"mailto:{_email(services)}"}
    distributions = []
    for month in entry.months:
        for fmt, (label, media_type) in FORMATS.items():
            distributions.append({
                "@id": download_url(base_url, d.id, month, fmt), "@type": "dcat:Distribution",
                "dct:title": f"{d.id} {month} ({label})", "dct:description": _texts(entry.titles),
                "dcat:accessURL": {"@id": entry.page_url},
                "dcat:downloadURL": {"@id": download_url(base_url, d.id, month, fmt)},
                "dcat:mediaType": {"@id": f"http://www.iana.org/assignments/media-types/{media_type}"},
                "dct:format": {"@id": EU + "file-type/" + label},
                "dct:license": {"@id": LICENCE_URL},
            })
    out: dict[str, Any] = {
        "@id": entry.page_url, "@type": "dcat:Dataset", "dct:identifier": d.id,
        "dct:title": _texts(entry.titles), "dct:description": _texts(entry.descriptions),
        "dcat:keyword": [{"@value": k, "@language": lang} for lang, words in entry.keywords.items() for k in words],
        "dcat:theme": {"@id": EU + "data-theme/" + THEME[d.kind]},
        "dct:publisher": _agent(services, base_url), "dcat:contactPoint": contact,
        "dct:license": {"@id": LICENCE_URL}, "dct:accessRights": {"@id": EU + "access-right/PUBLIC"},
        "dct:language": [{"@id": LANGUAGE_IRI[lang]} for lang in _languages(services)],
        "dct:accrualPeriodicity": {"@id": EU + "frequency/" + FREQUENCY[d.frequency]},
        "dct:spatial": {"@type": "dct:Location",
                        "dcat:bbox": {"@value": _wkt(services), "@type": "gsp:wktLiteral"},
                        "locn:geometry": {"@value": json.dumps(_spatial(services)),
                                          "@type": "https://www.iana.org/assignments/media-types/application/vnd.geo+json"}},
        "dcat:landingPage": {"@id": entry.page_url},
        "dcat:distribution": distributions,
    }
    if d.frequency:
        out["dcat:temporalResolution"] = {"@value": d.frequency, "@type": "xsd:duration"}
    if entry.start_ms is not None:
        out["dct:temporal"] = {"@type": "dct:PeriodOfTime",
                               "dcat:startDate": {"@value": _iso(entry.start_ms), "@type": "xsd:dateTime"},
                               "dcat:endDate": {"@value": _iso(entry.end_ms), "@type": "xsd:dateTime"}}
        out["dct:modified"] = {"@value": _iso(entry.end_ms), "@type": "xsd:dateTime"}
    return out


def dcat_catalog(services: "ApiServices", base_url: str) -> dict[str, Any]:
    city = services.settings.city.name
    from telemetry_shared.i18n import t

    entries = [describe(services, d, base_url) for d in datasets.open_datasets(services.settings.city)]
    return {
        "@context": CONTEXT, "@id": f"{base_url}/opendata/catalog.jsonld", "@type": "dcat:Catalog",
        "dct:title": _texts({lang: t("opendata.catalog.title", lang, city=city) for lang in ("id", "en")}),
        "dct:description": _texts({lang: t("opendata.catalog.description", lang) for lang in ("id", "en")}),
        "dct:publisher": _agent(services, base_url), "dct:license": {"@id": LICENCE_URL},
        "dct:language": [{"@id": LANGUAGE_IRI[lang]} for lang in _languages(services)],
        "foaf:homepage": {"@id": f"{base_url}/opendata"},
        "dct:spatial": {"@type": "dct:Location", "dcat:bbox": {"@value": _wkt(services), "@type": "gsp:wktLiteral"}},
        "dcat:themeTaxonomy": {"@id": EU + "data-theme"},
        "dcat:dataset": [dcat_dataset(services, entry, base_url) for entry in entries],
    }

