"""Sensor drivers under the real `micropython` binary with fake buses (the bus
object is the hardware boundary): Modbus CRC and register decoding from real
example frames, the SCD4x datasheet frame, ADC, pulse and loop arithmetic.
CPython must agree, since the simulator runs the same code."""

import json

from edge import contract
from edge.agent import Agent
from tests.conftest import ROOT
from tests.edge import hw_check
from tests.edge.test_contract_micropython import run_micropython

EXPECTED = {
    "modbus": {
        "crc_spec_example": "8776",  # the Modbus spec's example: 11 03 00 6B 00 03 -> CRC 76 87
        "request": "01040000000271cb",  # SDM120: read 2 input registers from 0 at address 1
        "values": {"voltage_v": 230.2, "current_a": 5.0, "power_kw": 1.15, "power_factor": 0.95,
                   "frequency_hz": 50.01, "energy_kwh": 2500.5},
        "quality": 0,
        "crc_bad_quality": contract.Q_CRC_FAILED,  # decoded, kept, flagged
        "silent": "modbus: no reply from meter 1",
        "exception": "modbus: exception 2 from meter 1",
        "short": "modbus: short reply (4 of 9 bytes)",
    },
    "scd4x": {"crc_beef": "92", "values": {"co2_ppm": 500.0, "temperature_c": 25.0, "humidity_pct": 37.0},
              "quality": 0, "bad_crc_quality": contract.Q_CRC_FAILED, "bad_crc_co2": 500.0, "command": "ec05",
              "address": 0x62},
    "pressure": {"mid": [5.0, 0], "broken_wire": [0.0, contract.Q_OUT_OF_RANGE]},
    "pulse": {"flow": [30.0, 0], "fast": [400.0, contract.Q_OUT_OF_RANGE], "total_litres": 1300.0},
    "loop": {"values": {"vehicle_count": 10.0, "occupancy_pct": 6.67, "speed_kmh": 58.5}, "quality": 0},
    "combined": {"partial": ["pressure_bar"], "all_broken": "no answer"},
    "q": [contract.Q_OUT_OF_RANGE, contract.Q_CRC_FAILED],
}


def test_drivers_under_micropython(micropython_bin, edge_dir):
    output = run_micropython(micropython_bin, edge_dir, str(ROOT / "tests" / "edge" / "hw_check.py"))
    assert json.loads(output.strip().splitlines()[-1]) == EXPECTED


def test_drivers_under_cpython_agree():
    assert json.loads(json.dumps(hw_check.results())) == EXPECTED


class _SilentClient:
    def set_callback(self, callback) -> None:
        pass

    def set_last_will(self, *args) -> None:
        pass


def test_agent_skips_a_failed_sensor_read_and_keeps_flags():
    agent = Agent({"device_id": "pwr-tt-0009"}, hw_check.CombinedSource([hw_check.Broken()]), _SilentClient())
    agent.sample()
    assert agent.read_errors == 1 and len(agent.buffer) == 0
    meter = hw_check.ModbusEnergyMeter(hw_check.FakeUART({0x0000: b"\x43\x66\x33\x34", 0x0006: b"\x40\xa0\x00\x00",
                                                          0x000C: b"\x44\x8f\xc0\x00", 0x001E: b"\x3f\x73\x33\x33",
                                                          0x0046: b"\x42\x48\x0a\x3d", 0x0156: b"\x45\x1c\x48\x00"},
                                                         corrupt=(0x0000,)))
    agent = Agent({"device_id": "pwr-tt-0009"}, meter, _SilentClient())
    agent.sample()
    raw = agent.next_message()
    batch = contract.decode_telemetry(raw, "power", json.loads(raw)["r"][0][0])
    assert batch.samples[0][2] == contract.Q_CRC_FAILED  # the doubtful reading travels with its flag
    assert abs(batch.samples[0][1]["voltage_v"] - 230.2) < 1e-4  # a float32 on the wire
