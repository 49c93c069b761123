# A ratiometric pressure transducer on an ADC: 0.5 V at 0 bar, 4.5 V at full
# scale, read through a divider (5 V sensor, 3.3 V ADC). Below 0.4 V means a
# broken wire, above 4.6 V a short: the reading is kept, clamped and flagged
# Q_OUT_OF_RANGE so the server sees the doubt instead of a silent gap.

try:
    from micropython import const
except ImportError:  # CPython: the simulator and the server-side tests
    def const(value):
        return value

from edge import contract

_FULL_SCALE_U16 = const(65535)


class PressureTransducer:
    def __init__(self, adc, full_scale_bar=10.0, vref=3.3, divider=5.0 / 3.3, v_zero=0.5, v_span=4.0, samples=8):
        self.adc = adc
        self.full_scale_bar = full_scale_bar
        self.volts_per_count = vref * divider / _FULL_SCALE_U16
        self.v_zero = v_zero
        self.v_span = v_span
        self.samples = samples  # averaged, against ADC noise

    def volts(self):
        total = 0
        for _ in range(self.samples):
            total += self.adc.read_u16()
        return total / self.samples * self.volts_per_count

    def read(self):
        volts = self.volts()
        bar = (volts - self.v_zero) / self.v_span * self.full_scale_bar
        quality = contract.Q_GOOD
        if volts < self.v_zero - 0.1 or volts > self.v_zero + self.v_span + 0.1:
            quality = contract.Q_OUT_OF_RANGE
        bar = min(max(bar, 0.0), self.full_scale_bar)
        return {"pressure_bar": bar}, quality
