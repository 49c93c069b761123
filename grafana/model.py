"""Typed builders for the small part of Grafana's dashboard JSON we use.

grafana-foundation-sdk has no InfluxDB query type, so these few dataclasses
produce the JSON instead: a Dashboard holds Panels (each with InfluxQL
Targets), template Variables and alert Annotations. `to_json()` returns plain
dicts; field names follow Grafana's dashboard schema (schemaVersion 39).
"""

from dataclasses import dataclass, field
from typing import Any

from grafana.datasource import DATASOURCE_REF
from telemetry_shared.settings import get_settings

SCHEMA_VERSION = 39
GRID_WIDTH = 24


@dataclass(frozen=True)
class Threshold:
    value: float | None  # None is the base step
    color: str

    def to_json(self) -> dict[str, Any]:
        return {"color": self.color, "value": self.value}


@dataclass(frozen=True)
class Target:
    """One raw InfluxQL query of a panel."""

    query: str
    alias: str = ""
    result_format: str = "time_series"  # or "table"

    def to_json(self, ref_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "datasource": dict(DATASOURCE_REF),
            "query": self.query,
            "rawQuery": True,
            "refId": ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass(frozen=True)
class Panel:
    """A panel: `kind` is Grafana's panel type (timeseries, stat, table, bargauge)."""

    title: str
    unit: str
    targets: tuple[Target, ...]
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    height: int = 8
    decimals: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    thresholds: tuple[Threshold, ...] = ()
    stack: bool = False
    overrides: tuple[dict[str, Any], ...] = ()  # per-field settings, e.g. a unit for the Time column
    transformations: tuple[dict[str, Any], ...] = ()
    # At most this many points per series: over a day Grafana asks for 5-minute buckets,
    # not 1-minute ones, which keeps a city-sized dashboard quick (bench/bench_dashboards.py).
    max_data_points: int = 300
    min_interval: str = "1m"  # devices report every 10 s to a few minutes; finer buckets are mostly empty
    time_from: str = ""  # a panel's own time range (e.g. "90d" for a long-term trend), whatever the dashboard's
    # What an empty answer shows, for a panel empty on a healthy city by design (no alert raised): "0", not "No data"
    no_value: str = ""

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {"unit": self.unit}
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.no_value:
            defaults["noValue"] = self.no_value
        steps = self.thresholds or (Threshold(None, "green"),)
        defaults["thresholds"] = {"mode": "absolute", "steps": [s.to_json() for s in steps]}
        defaults["custom"] = self._custom()
        return {
            "datasource": dict(DATASOURCE_REF),
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": [dict(o) for o in self.overrides]},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "interval": self.min_interval,
            "maxDataPoints": self.max_data_points,
            "options": self._options(),
            "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
            "timeFrom": self.time_from or None,
            "title": self.title,
            "transformations": [dict(t) for t in self.transformations],
            "type": self.kind,
        }

    def _custom(self) -> dict[str, Any]:
        if self.kind != "timeseries":
            return {}
        return {
            "drawStyle": "line",
            "fillOpacity": 15 if self.stack else 5,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,  # a gap in the line is a gap in the data: show it
            "stacking": {"group": "A", "mode": "normal" if self.stack else "none"},
            "thresholdsStyle": {"mode": "line" if self.thresholds else "off"},
        }

    def _options(self) -> dict[str, Any]:
        if self.kind == "timeseries":
            return {"legend": {"calcs": ["mean", "min", "max"], "displayMode": "table", "placement": "bottom",
                               "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}}
        if self.kind in ("stat", "bargauge"):
            return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "orientation": "horizontal", "colorMode": "value", "graphMode": "area",
                    "textMode": "auto", "displayMode": "gradient"}
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}


def field_unit(field_name: str, unit: str) -> dict[str, Any]:
    """An override giving one field (by name) its own unit."""
    return {"matcher": {"id": "byName", "options": field_name}, "properties": [{"id": "unit", "value": unit}]}


def points_for(regex: str) -> dict[str, Any]:
    """An override drawing the series whose names match `regex` as dots, not a line (e.g. backfilled readings
    over the line of all readings)."""
    return {"matcher": {"id": "byRegexp", "options": regex},
            "properties": [{"id": "custom.drawStyle", "value": "points"}, {"id": "custom.pointSize", "value": 6},
                           {"id": "custom.showPoints", "value": "always"}]}


def rename_by_regex(regex: str, pattern: str) -> dict[str, Any]:
    """A transformation that shortens series names, e.g. a function prefix InfluxDB puts on columns."""
    return {"id": "renameByRegex", "options": {"regex": regex, "renamePattern": pattern}}


@dataclass(frozen=True)
class Variable:
    """A query template variable, multi-valued with an All that matches everything."""

    name: str
    label: str
    query: str

    def to_json(self) -> dict[str, Any]:
        return {
            "allValue": ".*",  # used inside =~ /^$name$/, so All matches every value
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": dict(DATASOURCE_REF),
            "definition": self.query,
            "hide": 0,
            "includeAll": True,
            "label": self.label,
            "multi": True,
            "name": self.name,
            "options": [],
            "query": self.query,
            "refresh": 2,  # on time range change: new devices appear without a reload
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }


@dataclass(frozen=True)
class Annotation:
    """InfluxQL annotations: each row's time is a marker on every time series."""

    name: str
    query: str
    text_column: str
    tags_column: str
    color: str = "red"

    def to_json(self) -> dict[str, Any]:
        return {
            "datasource": dict(DATASOURCE_REF),
            "enable": True,
            "hide": False,
            "iconColor": self.color,
            "name": self.name,
            "query": self.query,
            "tagsColumn": self.tags_column,
            "textColumn": self.text_column,
            # as Grafana's InfluxQL annotation editor stores it
            "target": {"query": self.query, "rawQuery": True, "textEditor": True, "refId": "Anno",
                       "fromAnnotations": True, "tagsColumn": self.tags_column, "textColumn": self.text_column},
        }


BUILTIN_ANNOTATION = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    tags: tuple[str, ...] = ("city",)
    time_from: str = "now-24h"
    refresh: str = "1m"

    def to_json(self) -> dict[str, Any]:
        return {
            "annotations": {"list": [dict(BUILTIN_ANNOTATION)] + [a.to_json() for a in self.annotations]},
            "description": self.description,
            "editable": True,
            "graphTooltip": 1,  # shared crosshair: compare panels at one instant
            "links": [{"asDropdown": True, "icon": "external link", "includeVars": True, "keepTime": True,
                       "tags": ["city"], "targetBlank": False, "title": "City dashboards", "type": "dashboards"}],
            "panels": self._layout(),
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {"list": [v.to_json() for v in self.variables]},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": get_settings().city.spec.time_zone,  # the city's local time
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }

    def _layout(self) -> list[dict[str, Any]]:
        """Place panels left to right, wrapping at Grafana's 24-column grid; ids follow the order."""
        out = []
        x = y = row_height = 0
        for panel_id, panel in enumerate(self.panels, start=1):
            if x + panel.width > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            out.append(panel.to_json(panel_id, x, y))
            x += panel.width
            row_height = max(row_height, panel.height)
        return out
