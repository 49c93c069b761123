# Sensirion SCD4x (SCD40/SCD41) on I2C: CO2 (ppm), temperature and humidity.
# Commands are 16-bit, big-endian; every 16-bit word the sensor returns is
# followed by a CRC-8 (poly 0x31, init 0xFF). A word with a bad CRC is still
# decoded but the reading is flagged Q_CRC_FAILED, never dropped.

try:
    from micropython import const
except ImportError:  # CPython: the simulator and the server-side tests
    def const(value):
        return value

from edge import contract

ADDRESS = const(0x62)
_START_PERIODIC = const(0x21B1)
_READ_MEASUREMENT = const(0xEC05)
_DATA_READY = const(0xE4B8)


def crc8(data, start=0, length=2):
    crc = 0xFF
    for i in range(start, start + length):
        crc ^= data[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def decode_measurement(frame):
    """9 bytes (CO2, T, RH; each a word and its CRC) -> ({metric: value}, quality)."""
    quality = contract.Q_GOOD
    words = []
    for i in (0, 3, 6):
        if crc8(frame, i) != frame[i + 2]:
            quality |= contract.Q_CRC_FAILED
        words.append(frame[i] << 8 | frame[i + 1])
    values = {
        "co2_ppm": float(words[0]),
        "temperature_c": -45 + 175 * words[1] / 65535,
        "humidity_pct": 100 * words[2] / 65535,
    }
    if words[0] == 0 or values["co2_ppm"] > 40000:
        quality |= contract.Q_OUT_OF_RANGE  # 0 ppm is the sensor's "not warmed up" value
    return values, quality


class SCD4x:
    def __init__(self, i2c, address=ADDRESS, sleep_ms=None):
        self.i2c = i2c
        self.address = address
        self.sleep_ms = sleep_ms
        self.cmd = bytearray(2)
        self.frame = bytearray(9)
        self.ready = bytearray(3)

    def _command(self, code):
        self.cmd[0] = code >> 8
        self.cmd[1] = code & 0xFF
        self.i2c.writeto(self.address, self.cmd)
        if self.sleep_ms:
            self.sleep_ms(1)  # the sensor needs 1 ms before a read

    def start(self):
        self._command(_START_PERIODIC)

    def data_ready(self):
        self._command(_DATA_READY)
        self.i2c.readfrom_into(self.address, self.ready)
        return (self.ready[0] << 8 | self.ready[1]) & 0x07FF != 0

    def read(self):
        self._command(_READ_MEASUREMENT)
        self.i2c.readfrom_into(self.address, self.frame)
        return decode_measurement(self.frame)
