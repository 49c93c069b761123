# Drives every hardware driver through fake buses (the hardware boundary) and
# prints one JSON line of results. Runs under the real `micropython` binary
# and under CPython; the test compares both with the expected values.
# Usage: micropython hw_check.py  (with the firmware on the path)

import json

from edge import contract
from edge.hw.board import CombinedSource
from edge.hw.loop import InductiveLoopCounter
from edge.hw.modbus import ModbusEnergyMeter, check_reply, crc16, request
from edge.hw.pressure import PressureTransducer
from edge.hw.pulse import PulseWaterMeter
from edge.hw.scd4x import SCD4x, crc8


class FakeClock:
    def __init__(self):
        self.now = 1000

    def __call__(self):
        return self.now


class FakePin:
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self):
        self.handler = None
        self.level = 0

    def irq(self, handler=None, trigger=0):
        self.handler = handler

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = level


class FakeUART:
    """An SDM120 on RS-485: answers read-input-register requests from a register map."""

    def __init__(self, registers, corrupt=(), silent=(), exception=()):
        self.registers = registers  # register -> 4 bytes (big-endian float)
        self.corrupt = corrupt
        self.silent = silent
        self.exception = exception
        self.reply = b""
        self.requests = []

    def write(self, frame):
        frame = bytes(frame)
        self.requests.append(frame)
        register = frame[2] << 8 | frame[3]
        if register in self.silent:
            self.reply = b""
            return
        if register in self.exception:
            body = bytes((frame[0], 0x84, 2))
        else:
            body = bytes((frame[0], 0x04, 4)) + self.registers[register]
        crc = crc16(body)
        self.reply = body + bytes((crc & 0xFF, crc >> 8))
        if register in self.corrupt:
            self.reply = self.reply[:-1] + bytes(((self.reply[-1] + 1) & 0xFF,))

    def readinto(self, buf):
        n = min(len(buf), len(self.reply))
        buf[:n] = self.reply[:n]
        return n or None


class FakeI2C:
    def __init__(self, frame):
        self.frame = frame
        self.written = []

    def writeto(self, address, data):
        self.written.append((address, bytes(data)))

    def readfrom_into(self, address, buf):
        buf[:] = self.frame[:len(buf)]


class FakeADC:
    def __init__(self, counts):
        self.counts = counts

    def read_u16(self):
        return self.counts


class Broken:
    def read(self):
        raise OSError("no answer")


def hexs(data):
    return "".join(f"{b:02x}" for b in data)


def modbus_results():
    sdm120 = {0x0000: b"\x43\x66\x33\x34", 0x0006: b"\x40\xa0\x00\x00", 0x000C: b"\x44\x8f\xc0\x00",
              0x001E: b"\x3f\x73\x33\x33", 0x0046: b"\x42\x48\x0a\x3d", 0x0156: b"\x45\x1c\x48\x00"}
    out = {
        "crc_spec_example": f"{crc16(bytes((0x11, 0x03, 0x00, 0x6B, 0x00, 0x03))):04x}",
        "request": hexs(request(1, 4, 0, 2, bytearray(8))),
    }
    values, quality = ModbusEnergyMeter(FakeUART(sdm120)).read()
    out["values"] = dict((k, round(values[k], 3)) for k in values)
    out["quality"] = quality
    out["crc_bad_quality"] = ModbusEnergyMeter(FakeUART(sdm120, corrupt=(0x000C,))).read()[1]
    for name, uart in (("silent", FakeUART(sdm120, silent=(0x0046,))),
                       ("exception", FakeUART(sdm120, exception=(0x0000,)))):
        try:
            ModbusEnergyMeter(uart).read()
            out[name] = "no error"
        except OSError as exc:
            out[name] = str(exc)
    try:
        check_reply(b"\x01\x04\x04\x43", 1, 4, 2)
        out["short"] = "no error"
    except OSError as exc:
        out["short"] = str(exc)
    return out


def scd4x_results():
    # The datasheet's example reply: CO2 500 ppm, 25 degC, 37 %RH, each word with its CRC.
    frame = bytes((0x01, 0xF4, 0x33, 0x66, 0x67, 0xA2, 0x5E, 0xB9, 0x3C))
    i2c = FakeI2C(frame)
    values, quality = SCD4x(i2c).read()
    bad_values, bad_quality = SCD4x(FakeI2C(frame[:8] + b"\x00")).read()
    return {"crc_beef": "{:02x}".format(crc8(b"\xbe\xef")), "values": dict((k, round(values[k], 2)) for k in values),
            "quality": quality, "bad_crc_quality": bad_quality, "bad_crc_co2": bad_values["co2_ppm"],
            "command": hexs(i2c.written[0][1]), "address": i2c.written[0][0]}


def pressure_results():
    per_volt = 65535 / 5.0  # 5 V through the divider to a 3.3 V ADC
    mid = PressureTransducer(FakeADC(int(2.5 * per_volt))).read()
    broken_wire = PressureTransducer(FakeADC(int(0.1 * per_volt))).read()
    return {"mid": [round(mid[0]["pressure_bar"], 2), mid[1]],
            "broken_wire": [broken_wire[0]["pressure_bar"], broken_wire[1]]}


def pulse_results():
    clock, pin = FakeClock(), FakePin()
    meter = PulseWaterMeter(pin, 10.0, clock)
    for _ in range(30):
        clock.now += 328
        pin.handler(pin)
        clock.now += 5
        pin.handler(pin)  # contact bounce, 5 ms later: not a pulse
    clock.now += 10  # 30 pulses of 10 L in exactly 10 s
    flow = meter.read()
    meter.max_flow_lps = 200.0  # a DN100 main carries well under this
    for _ in range(100):
        clock.now += 25
        pin.handler(pin)  # 1000 L in 2.5 s: 400 L/s, a faulty contact, kept but flagged
    fast = meter.read()
    return {"flow": [round(flow[0]["flow_lps"], 2), flow[1]], "fast": [round(fast[0]["flow_lps"], 1), fast[1]],
            "total_litres": meter.total_litres}


def loop_results():
    clock, pin = FakeClock(), FakePin()
    counter = InductiveLoopCounter(pin, clock)
    for _ in range(10):
        clock.now += 5600
        pin.level = 1
        pin.handler(pin)
        clock.now += 400
        pin.level = 0
        pin.handler(pin)
    pin.level = 1
    pin.handler(pin)
    clock.now += 10  # a 10 ms glitch: not a vehicle
    pin.level = 0
    pin.handler(pin)
    clock.now -= 10  # read exactly 60 s after the start
    values, quality = counter.read()
    return {"values": dict((k, round(values[k], 2)) for k in values), "quality": quality}


def combined_results():
    good = PressureTransducer(FakeADC(int(2.5 * 65535 / 5.0)))
    values, _ = CombinedSource([Broken(), good]).read()
    try:
        CombinedSource([Broken()]).read()
        all_broken = "no error"
    except OSError as exc:
        all_broken = str(exc)
    return {"partial": sorted(values), "all_broken": all_broken}


def results():
    return {"modbus": modbus_results(), "scd4x": scd4x_results(), "pressure": pressure_results(),
            "pulse": pulse_results(), "loop": loop_results(), "combined": combined_results(),
            "q": [contract.Q_OUT_OF_RANGE, contract.Q_CRC_FAILED]}


if __name__ == "__main__":
    print(json.dumps(results()))
