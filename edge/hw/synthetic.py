# A synthetic sensor: plausible readings for each kind from a daily curve in
# local time plus noise. Used on the MicroPython unix port and as the
# simplest source in the simulator; firmware-sim has the detailed city models.
# The grid's nominal values and the local time offset come from the device's
# config ("grid": [volts, hertz], "utc_offset_h"), which the platform writes from
# the city profile; the defaults serve a bare board with neither.

import math
import random

from edge.clock import utc_ms

DEFAULT_GRID = (230.0, 50.0)
DEFAULT_OFFSET_H = 7


def _noise(scale):
    return (random.getrandbits(16) / 65536.0 - 0.5) * 2 * scale


def _day_phase(t_ms, offset_h):
    """0..1 through the local day."""
    return ((t_ms + offset_h * 3600000) % 86400000) / 86400000.0


def _bump(phase, centre, width):
    d = min(abs(phase - centre), 1 - abs(phase - centre))
    return math.exp(-(d / width) ** 2)


class SyntheticSource:
    def __init__(self, kind, clock=utc_ms, grid=None, utc_offset_h=None):
        self.kind = kind
        self.clock = clock
        self.nominal_v, self.nominal_hz = grid or DEFAULT_GRID
        self.offset_h = DEFAULT_OFFSET_H if utc_offset_h is None else utc_offset_h
        self.energy_kwh = 1000.0

    def read(self):
        phase = _day_phase(self.clock(), self.offset_h)
        return getattr(self, "_" + self.kind)(phase), 0

    def health(self):
        return {"rssi_dbm": -60 + int(_noise(10))}

    def _water(self, phase):
        demand = 0.3 + _bump(phase, 0.27, 0.06) + 0.7 * _bump(phase, 0.79, 0.07)
        return {
            "flow_lps": round(20 * demand + _noise(0.5), 2),
            "pressure_bar": round(4.2 - 1.2 * demand + _noise(0.05), 3),
            "chlorine_mgl": round(0.6 + _noise(0.03), 3),
        }

    def _power(self, phase):
        load = 0.4 + 0.6 * _bump(phase, 0.8, 0.1) + 0.3 * _bump(phase, 0.55, 0.15)
        power_kw = 80 * load + _noise(2)
        self.energy_kwh += power_kw / 360.0
        return {
            "voltage_v": round(self.nominal_v * (1 - 0.026 * load + _noise(0.0065)), 2),
            "current_a": round(power_kw * 1000 / self.nominal_v / 3, 2),
            "power_kw": round(power_kw, 2),
            "energy_kwh": round(self.energy_kwh, 3),
            "frequency_hz": round(self.nominal_hz + _noise(0.05), 3),
        }

    def _building(self, phase):
        occupied = _bump(phase, 0.52, 0.18)
        return {
            "temperature_c": round(24 + 3 * (1 - occupied) + _noise(0.2), 2),
            "humidity_pct": round(65 + _noise(3), 1),
            "co2_ppm": round(450 + 500 * occupied + _noise(20), 0),
        }

    def _traffic(self, phase):
        rush = _bump(phase, 0.31, 0.05) + _bump(phase, 0.71, 0.06)
        return {
            "vehicle_count": float(int(10 + 90 * rush + _noise(5) + 5)),
            "speed_kmh": round(55 - 30 * rush + _noise(3), 1),
            "occupancy_pct": round(5 + 40 * rush + _noise(2), 1),
        }
