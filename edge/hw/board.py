# A board's sensors, built from the config's "drivers" list. `machine` and
# `network` are imported here, when a board source is built, never at import
# time, so the same agent runs on the unix port and in the simulator.
#
#   "source": "board",
#   "drivers": [{"type": "pulse", "pin": 4, "litres_per_pulse": 10},
#               {"type": "pressure", "adc": 26, "full_scale_bar": 10},
#               {"type": "modbus", "uart": 1, "baud": 9600, "tx": 17, "rx": 16, "address": 1, "de_pin": 5},
#               {"type": "scd4x", "i2c": 0, "scl": 22, "sda": 21},
#               {"type": "loop", "pin": 5}]


class CombinedSource:
    """Several drivers as one source: values merged, quality flags OR-ed.

    A driver that fails (OSError) is left out of this sample; only when all
    fail does read() raise, and the agent skips the sample.
    """

    def __init__(self, drivers):
        self.drivers = drivers
        self.failures = 0

    def read(self):
        values = {}
        quality = 0
        failed = None
        for driver in self.drivers:
            try:
                more, q = driver.read()
            except OSError as exc:
                self.failures += 1
                failed = exc
                continue
            for metric in more:
                values[metric] = more[metric]
            quality |= q
        if not values:
            raise failed or OSError("no drivers")
        return values, quality

    def health(self):
        try:
            import network

            return {"rssi_dbm": network.WLAN(network.STA_IF).status("rssi")}
        except Exception:  # no radio on this port, or not connected
            return {}


def build(config):
    import time

    import machine

    drivers = []
    for spec in config.get("drivers", []):
        kind = spec["type"]
        if kind == "pulse":
            from edge.hw.pulse import PulseWaterMeter

            pin = machine.Pin(spec["pin"], machine.Pin.IN, machine.Pin.PULL_UP)
            drivers.append(PulseWaterMeter(pin, spec.get("litres_per_pulse", 10.0)))
        elif kind == "pressure":
            from edge.hw.pressure import PressureTransducer

            drivers.append(PressureTransducer(machine.ADC(spec["adc"]), spec.get("full_scale_bar", 10.0)))
        elif kind == "modbus":
            from edge.hw.modbus import ModbusEnergyMeter

            uart = machine.UART(spec["uart"], baudrate=spec.get("baud", 9600), tx=spec.get("tx"), rx=spec.get("rx"),
                                timeout=200)
            de_pin = machine.Pin(spec["de_pin"], machine.Pin.OUT) if "de_pin" in spec else None
            drivers.append(ModbusEnergyMeter(uart, spec.get("address", 1), de_pin, time.sleep_ms))
        elif kind == "scd4x":
            from edge.hw.scd4x import SCD4x

            i2c = machine.I2C(spec["i2c"], scl=machine.Pin(spec["scl"]), sda=machine.Pin(spec["sda"]))
            sensor = SCD4x(i2c, sleep_ms=time.sleep_ms)
            sensor.start()
            drivers.append(sensor)
        elif kind == "loop":
            from edge.hw.loop import InductiveLoopCounter

            drivers.append(InductiveLoopCounter(machine.Pin(spec["pin"], machine.Pin.IN)))
        else:
            raise ValueError("unknown driver type: " + str(kind))
    return CombinedSource(drivers)
