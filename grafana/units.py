"""Grafana unit ids for the contract's units, so axes read "3.1 bar", not "3.1"."""

from edge import contract

# contract unit -> Grafana unit id ("suffix:" shows the text as is where Grafana has no unit of its own)
GRAFANA_UNITS = {
    "L/s": "suffix: L/s",
    "bar": "pressurebar",
    "m": "lengthm",
    "NTU": "suffix: NTU",
    "mg/L": "suffix: mg/L",
    "V": "volt",
    "A": "amp",
    "kW": "kwatt",
    "kWh": "kwatth",
    "": "none",
    "Hz": "hertz",
    "degC": "celsius",
    "%": "percent",
    "ppm": "ppm",
    "people": "suffix: people",
    "beds": "suffix: beds",
    "vehicles": "suffix: vehicles",
    "km/h": "velocitykmh",
}


def unit_of(metric: str) -> str:
    """The Grafana unit of a contract metric; a KeyError names a metric or unit without one."""
    return GRAFANA_UNITS[contract.METRICS[metric][1]]
