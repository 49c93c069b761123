# An energy meter over Modbus RTU on a UART (RS-485), such as the Eastron
# SDM120 / SDM630: IEEE 754 32-bit floats in input registers, read with
# function 0x04. Frames carry a CRC-16 (poly 0xA001, init 0xFFFF, low byte
# first). A reply with a bad CRC is still decoded but flagged Q_CRC_FAILED;
# no reply at all raises OSError (the agent skips that sample).

import struct

try:
    from micropython import const
except ImportError:  # CPython: the simulator and the server-side tests
    def const(value):
        return value

from edge import contract

_READ_INPUT = const(0x04)
# Input registers of the SDM120/SDM630 (each value is two registers).
_REG_VOLTAGE = const(0x0000)
_REG_CURRENT = const(0x0006)
_REG_POWER_W = const(0x000C)
_REG_PF = const(0x001E)
_REG_FREQ = const(0x0046)
_REG_ENERGY = const(0x0156)

# (metric, register, scale to our unit)
_MAP = (
    ("voltage_v", _REG_VOLTAGE, 1.0),
    ("current_a", _REG_CURRENT, 1.0),
    ("power_kw", _REG_POWER_W, 0.001),
    ("power_factor", _REG_PF, 1.0),
    ("frequency_hz", _REG_FREQ, 1.0),
    ("energy_kwh", _REG_ENERGY, 1.0),
)


def crc16(data, length=None):
    """Modbus CRC-16 over data[:length]."""
    crc = 0xFFFF
    n = len(data) if length is None else length
    for i in range(n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def request(address, function, register, count, out):
    """Fill out (8 bytes) with a read request; returns out."""
    out[0] = address
    out[1] = function
    out[2] = register >> 8
    out[3] = register & 0xFF
    out[4] = count >> 8
    out[5] = count & 0xFF
    crc = crc16(out, 6)
    out[6] = crc & 0xFF
    out[7] = crc >> 8
    return out


def check_reply(frame, address, function, count):
    """Returns quality (Q_GOOD or Q_CRC_FAILED); raises OSError when the frame is not a reply at all."""
    if len(frame) >= 5 and frame[0] == address and frame[1] == function | 0x80:
        raise OSError("modbus: exception %d from meter %d" % (frame[2], address))
    size = 5 + 2 * count
    if len(frame) < size:
        raise OSError("modbus: short reply (%d of %d bytes)" % (len(frame), size))
    if frame[0] != address or frame[1] != function or frame[2] != 2 * count:
        raise OSError("modbus: unexpected reply")
    crc = crc16(frame, size - 2)
    if frame[size - 2] != crc & 0xFF or frame[size - 1] != crc >> 8:
        return contract.Q_CRC_FAILED
    return contract.Q_GOOD


def float_at(frame, offset):
    """The big-endian IEEE 754 float at frame[offset:offset + 4]."""
    return struct.unpack(">f", bytes(frame[offset:offset + 4]))[0]


class ModbusEnergyMeter:
    def __init__(self, uart, address=1, de_pin=None, sleep_ms=None):
        self.uart = uart
        self.address = address
        self.de_pin = de_pin  # RS-485 driver enable, when the transceiver needs one
        self.sleep_ms = sleep_ms
        self.tx = bytearray(8)
        self.rx = bytearray(9)  # one float: address, function, byte count, 4 data bytes, CRC

    def _wait(self, ms):
        if self.sleep_ms:
            self.sleep_ms(ms)

    def read_float(self, register):
        """One float register pair; returns (value, quality)."""
        request(self.address, _READ_INPUT, register, 2, self.tx)
        if self.de_pin is not None:
            self.de_pin.value(1)
        self.uart.write(self.tx)
        if self.de_pin is not None:
            self.de_pin.value(0)
        self._wait(20)
        got = self.uart.readinto(self.rx)
        if not got:
            raise OSError("modbus: no reply from meter %d" % self.address)
        quality = check_reply(memoryview(self.rx)[:got], self.address, _READ_INPUT, 2)
        return float_at(self.rx, 3), quality

    def read(self):
        values = {}
        quality = 0
        for metric, register, scale in _MAP:
            value, q = self.read_float(register)
            values[metric] = value * scale
            quality |= q
        for metric in values:
            lo, hi = contract.METRICS[metric][2], contract.METRICS[metric][3]
            if not lo <= values[metric] <= hi or values[metric] != values[metric]:
                quality |= contract.Q_OUT_OF_RANGE
                values[metric] = min(hi, max(lo, values[metric])) if values[metric] == values[metric] else lo
        return values, quality
