# A pulse-output water meter (reed switch or open collector, e.g. 10 L per
# pulse) on a GPIO pin. The interrupt handler only counts; read() turns the
# count since the last read into a flow in L/s. Pulses closer than the
# debounce time are contact bounce and are not counted.

try:
    from micropython import const
except ImportError:  # CPython: the simulator and the server-side tests
    def const(value):
        return value

from edge import contract
from edge.clock import ticks_diff, ticks_ms

_DEBOUNCE_MS = const(20)


class PulseWaterMeter:
    def __init__(self, pin, litres_per_pulse=10.0, clock=ticks_ms, max_flow_lps=500.0):
        self.pin = pin
        self.litres_per_pulse = litres_per_pulse
        self.clock = clock
        self.max_flow_lps = max_flow_lps  # more than the pipe can carry: a faulty contact
        self.pulses = 0
        self.last_pulse = None
        self.last_read = clock()
        self.total_litres = 0.0
        trigger = getattr(pin, "IRQ_FALLING", 2)
        pin.irq(handler=self._on_pulse, trigger=trigger)

    def _on_pulse(self, pin):
        # Runs in interrupt context: no allocation, just count.
        now = self.clock()
        if self.last_pulse is not None and ticks_diff(now, self.last_pulse) < _DEBOUNCE_MS:
            return
        self.last_pulse = now
        self.pulses += 1

    def read(self):
        now = self.clock()
        elapsed_ms = ticks_diff(now, self.last_read)
        pulses, self.pulses = self.pulses, 0
        self.last_read = now
        litres = pulses * self.litres_per_pulse
        self.total_litres += litres
        flow = litres * 1000 / elapsed_ms if elapsed_ms > 0 else 0.0
        quality = contract.Q_GOOD
        if flow > self.max_flow_lps:
            quality = contract.Q_OUT_OF_RANGE
        return {"flow_lps": flow}, quality
