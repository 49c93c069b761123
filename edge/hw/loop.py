# An inductive-loop vehicle detector's output on a GPIO pin (high while a
# vehicle is over the loop). Rising edges count vehicles; the time the pin is
# high gives the occupancy; a single loop estimates speed from the mean
# on-time and an effective vehicle length (car plus loop, ~6.5 m).

try:
    from micropython import const
except ImportError:  # CPython: the simulator and the server-side tests
    def const(value):
        return value

from edge import contract
from edge.clock import ticks_diff, ticks_ms

_MIN_ON_MS = const(40)  # shorter pulses are interference, not vehicles


class InductiveLoopCounter:
    def __init__(self, pin, clock=ticks_ms, effective_length_m=6.5):
        self.pin = pin
        self.clock = clock
        self.effective_length_m = effective_length_m
        self.count = 0
        self.on_ms = 0
        self.rose_at = None
        self.last_read = clock()
        rising = getattr(pin, "IRQ_RISING", 1)
        falling = getattr(pin, "IRQ_FALLING", 2)
        pin.irq(handler=self._on_edge, trigger=rising | falling)

    def _on_edge(self, pin):
        now = self.clock()
        if pin.value():
            self.rose_at = now
        elif self.rose_at is not None:
            on = ticks_diff(now, self.rose_at)
            self.rose_at = None
            if on >= _MIN_ON_MS:
                self.count += 1
                self.on_ms += on

    def read(self):
        now = self.clock()
        elapsed = ticks_diff(now, self.last_read)
        count, on_ms = self.count, self.on_ms
        self.count = 0
        self.on_ms = 0
        self.last_read = now
        values = {"vehicle_count": float(count),
                  "occupancy_pct": min(100.0, 100.0 * on_ms / elapsed) if elapsed > 0 else 0.0}
        quality = contract.Q_GOOD
        if count:
            mean_on_s = on_ms / count / 1000
            speed = self.effective_length_m / mean_on_s * 3.6
            if speed > 250:
                quality = contract.Q_OUT_OF_RANGE
                speed = 250.0
            values["speed_kmh"] = speed
        return values, quality
