"""The wire contract under the real `micropython` binary: same golden outcomes as CPython."""

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import FIXTURES
from tests.edge.golden_check import outcomes, status_outcomes

HERE = Path(__file__).resolve().parent


def run_micropython(micropython_bin: str, flash: Path, script: str, *args: str, timeout: float = 30) -> str:
    env = dict(os.environ, MICROPYPATH=f"{flash}:.frozen")
    done = subprocess.run([micropython_bin, script, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=flash)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_golden_payloads_same_under_micropython(micropython_bin, edge_dir):
    output = run_micropython(micropython_bin, edge_dir, str(HERE / "golden_check.py"), str(FIXTURES))
    on_device = json.loads(output.strip().splitlines()[-1])
    assert on_device["telemetry"] == outcomes(str(FIXTURES))[1]
    assert on_device["status"] == status_outcomes(str(FIXTURES))[1]
    assert {"file": "valid_water_boot.json", "kind": "water", "samples": 1, "readings": 2, "rejects": [],
            "boot": 1234567} in outcomes(str(FIXTURES))[0]


def test_encoding_on_device_decodes_on_server(micropython_bin, edge_dir, tmp_path):
    script = tmp_path / "encode.py"
    script.write_text(
        "from edge import contract\n"
        "import sys\n"
        "raw = contract.encode_telemetry(9, [(1796000000000, {'co2_ppm': 812.0, 'humidity_pct': 71.5}, 0),"
        " (1796000005000, {'co2_ppm': 830.0}, contract.Q_CRC_FAILED)], '0.1.0', True, 2, 2147483647)\n"
        "sys.stdout.write(raw.decode())\n"
        "print()\n"
        "print(contract.telemetry_topic('bld-0007'))\n"
        "try:\n"
        "    contract.telemetry_topic('BAD/+')\n"
        "except contract.ContractError as e:\n"
        "    print(e.reason)\n"
    )
    raw, topic, refusal = run_micropython(micropython_bin, edge_dir, str(script)).strip().splitlines()
    from edge import contract

    batch = contract.decode_telemetry(raw.encode(), "building", 1796000010000)
    assert (batch.seq, batch.hist, batch.dropped, batch.boot) == (9, True, 2, 2147483647)
    assert batch.samples == [(1796000000000, {"co2_ppm": 812.0, "humidity_pct": 71.5}, 0),
                             (1796000005000, {"co2_ppm": 830.0}, contract.Q_CRC_FAILED)]
    assert topic == "city/v1/dev/bld-0007/telemetry"
    assert refusal == "bad_device_id"
