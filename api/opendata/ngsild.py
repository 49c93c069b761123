"""NGSI-LD: a dataset's published rows as entities of the FIWARE Smart Data Models, for FIWARE tools
(a context broker's batch upsert, QuantumLeap, ...). One of the download formats (downloads.FORMATS:
`/opendata/download/<dataset>/<period>.ngsild`), so it gets exactly the rows the policy lets out (the
columns of the CSV, nothing more) and streams them with bounded memory.

One entity a row (normalized NGSI-LD, `application/ld+json`, a JSON array as the batch operations take):
- `id`: a URN, `urn:ngsi-ld:<Type>:<city>:<dataset>:<district>:<time>` (a raw reading adds its row number,
  as two sensors without a public name may share a district and a time);
- `type` and `@context`: the Smart Data Model's type and its context, with the NGSI-LD core context;
- `dateObserved` (and, for a district-hour, `dateObservedFrom`/`dateObservedTo`); every measured
  property carries `observedAt` and, where UN/CEFACT has one, `unitCode`;
- `location`: a GeoProperty, the district's boundary from the city profile (a cell is a district, and a
  raw reading is published with its district only, never a device's position); `areaServed`: the
  district's name; `address.addressLocality`: the city; `dataProvider`: the publisher.

Types (KINDS): water -> WaterConsumptionObserved (dataModel.WaterConsumption), power -> ACMeasurement
(dataModel.Energy; single phase), traffic -> TrafficFlowObserved (dataModel.Transportation), building ->
IndoorEnvironmentObserved (dataModel.Environment), complaints -> KeyPerformanceIndicator
(dataModel.KeyPerformanceIndicator). Each metric's attribute is the model's own where it has one
(ATTRIBUTES); a metric the model lacks keeps a name of ours (`flowRate`, `pressure`, `bedsFree`, ...),
which NGSI-LD allows. An aggregated cell's min and max (`minFlowRate`, ...), sum (`flowRateSum`), device
and reading counts are properties too: the same figures as the CSV's columns.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from telemetry_shared.city import CityProfile

if TYPE_CHECKING:
    from api.opendata.datasets import Dataset

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
SDM = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"
CHUNK_ENTITIES = 500
HOUR_S = 3600


@dataclass(frozen=True)
class Model:
    type: str
    subject: str  # the Smart Data Models subject (repository dataModel.<subject>)
    required: tuple[str, ...]  # the model's schema.json "required" (tests/api/opendata/test_ngsild.py checks them)


KINDS = {
    "water": Model("WaterConsumptionObserved", "WaterConsumption", ("id", "type")),
    "power": Model("ACMeasurement", "Energy", ("id", "type", "location", "dateObserved", "phaseType")),
    "traffic": Model("TrafficFlowObserved", "Transportation", ("id", "type", "dateObserved")),
    "building": Model("IndoorEnvironmentObserved", "Environment", ("id", "type", "dateObserved", "location")),
    "": Model("KeyPerformanceIndicator", "KeyPerformanceIndicator", ("id", "type")),
}

# metric -> (attribute, scale to the model's unit, UN/CEFACT unit code or "", shape): shape "L1" puts the
# value under the single phase of ACMeasurement's per-phase objects
ATTRIBUTES: dict[str, tuple[str, float, str, str]] = {
    "flow_lps": ("flowRate", 1.0, "G51", ""),  # litre per second; WaterConsumptionObserved has only min/max flow
    "pressure_bar": ("pressure", 1.0, "BAR", ""),
    "level_m": ("level", 1.0, "MTR", ""),
    "turbidity_ntu": ("turbidity", 1.0, "", ""),
    "chlorine_mgl": ("chlorine", 1.0, "M1", ""),  # milligram per litre
    "voltage_v": ("phaseVoltage", 1.0, "VLT", "L1"),
    "current_a": ("current", 1.0, "AMP", "L1"),
    "power_kw": ("totalActivePower", 1000.0, "WTT", ""),  # the model counts in watts
    "energy_kwh": ("totalActiveEnergyImport", 1.0, "KWH", ""),
    "power_factor": ("totalPowerFactor", 1.0, "", ""),
    "frequency_hz": ("frequency", 1.0, "HTZ", ""),
    "vehicle_count": ("intensity", 1.0, "", ""),
    "speed_kmh": ("averageVehicleSpeed", 1.0, "KMH", ""),
    "occupancy_pct": ("occupancy", 0.01, "C62", ""),  # the model's occupancy is a fraction 0..1
    "temperature_c": ("temperature", 1.0, "CEL", ""),
    "humidity_pct": ("relativeHumidity", 0.01, "C62", ""),  # a fraction, as the model's examples
    "co2_ppm": ("co2", 1.0, "59", ""),  # parts per million
    "occupancy": ("peopleCount", 1.0, "", ""),
    "beds_free": ("bedsFree", 1.0, "", ""),
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _prop(value: Any, observed: str | None = None, unit: str = "") -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "Property", "value": value}
    if observed:
        prop["observedAt"] = observed
    if unit:
        prop["unitCode"] = unit
    return prop


def _when(iso: str) -> dict[str, Any]:
    return _prop({"@type": "DateTime", "@value": iso})


def _hour_after(iso: str) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=HOUR_S)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Entities:
    """Rows of one dataset -> NGSI-LD entities (see the module docstring)."""

    def __init__(self, dataset: "Dataset", profile: CityProfile):
        self.dataset = dataset
        self.model = KINDS[dataset.kind]
        self.city = _slug(profile.name)
        self.city_name = profile.name
        self.lang = profile.spec.default_language
        chosen = profile.open_data.publisher  # as the catalogue names the publisher
        self.publisher = chosen.name.model_dump()[self.lang] if chosen else profile.name
        self.places = {d.slug: (d.geojson, d.name(self.lang)) for d in profile.districts}
        self.context = [SDM.format(self.model.subject), CORE_CONTEXT]

    def _common(self, district: str, key: str) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "id": f"urn:ngsi-ld:{self.model.type}:{self.city}:{self.dataset.id}:{district or 'city'}:{key}",
            "type": self.model.type,
            "address": _prop({"addressLocality": self.city_name}),
            "dataProvider": _prop(self.publisher),
        }
        geometry, name = self.places.get(district, (None, district))
        if geometry is not None:
            entity["location"] = {"type": "GeoProperty", "value": geometry}
        if name:
            entity["areaServed"] = _prop(name)
        return entity

    def reading(self, row: dict[str, Any], n: int) -> dict[str, Any]:
        """A row of an aggregated (district x hour) or raw (one reading) readings dataset."""
        time = row["time"]
        key = re.sub(r"[-:]", "", time) + ("" if "devices" in row else f":{n}")
        entity = self._common(row["district"], key)
        entity["dateObserved"] = _when(time)
        attribute, scale, unit, shape = ATTRIBUTES[self.dataset.metric]

        def value(v: float | None) -> Any:
            if v is None:
                return None
            scaled = round(v * scale, 6)
            return {shape: scaled} if shape else scaled

        entity[attribute] = _prop(value(row["value"]), time, unit)
        if "devices" in row:  # a district-hour: its span, spread and how many sensors stand behind it
            entity["dateObservedFrom"] = _when(time)
            entity["dateObservedTo"] = _when(_hour_after(time))
            for extreme in ("min", "max"):
                if row.get(extreme) is not None:
                    entity[f"{extreme}{attribute[0].upper()}{attribute[1:]}"] = _prop(value(row[extreme]), time, unit)
            if row.get("sum") is not None:  # the sum of the sensors' hourly means (a district's total flow)
                entity[f"{attribute}Sum"] = _prop(value(row["sum"]), time, unit)
            entity["numberOfDevices"] = _prop(row["devices"], time)
            entity["numberOfReadings"] = _prop(row.get("readings"), time)
        elif row.get("sensor"):
            entity["name"] = _prop(row["sensor"])  # the public name an admin gave the sensor, never its id
        if self.model.type == "ACMeasurement":
            entity["phaseType"] = _prop("singlePhase")
        return entity

    def complaint(self, row: dict[str, Any]) -> dict[str, Any]:
        """A cell of complaints-daily (district x day x category) as a KPI: complaints received that day."""
        day = row["date"]
        entity = self._common(row["district"], f"{day.replace('-', '')}:{_slug(row['category'])}")
        entity |= {
            "name": _prop(f"complaints {row['category']}"),
            "category": _prop(["quantitative"]),
            "process": _prop(f"citizen complaints: {row['category']}"),
            "calculationFrequency": _prop("daily"),
            "calculationMethod": _prop("automatic"),
            "calculationPeriod": _prop({"from": day, "to": day}),
            "kpiValue": _prop(row["received"], f"{day}T00:00:00Z"),
            "answered": _prop(row["answered"]),
            "medianHoursToAnswer": _prop(row["median_hours_to_answer"], unit="HUR"),
            "area": _prop(self.places.get(row["district"], (None, row["district"]))[1]),
        }
        return entity

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for n, row in enumerate(rows):
            entity = self.complaint(row) if self.dataset.source == "complaints" else self.reading(row, n)
            entity["@context"] = self.context
            yield entity


def write(dataset: "Dataset", period: str, rows: Iterable[dict[str, Any]], profile: CityProfile) -> Iterator[bytes]:
    """The file: `[entity, ...]`, in chunks of CHUNK_ENTITIES."""
    yield b"["
    batch: list[bytes] = []
    first = True
    for entity in Entities(dataset, profile)(rows):
        batch.append(orjson.dumps(entity))
        if len(batch) >= CHUNK_ENTITIES:
            yield (b"" if first else b",") + b",".join(batch)
            first = False
            batch.clear()
    if batch:
        yield (b"" if first else b",") + b",".join(batch)
    yield b"]"
