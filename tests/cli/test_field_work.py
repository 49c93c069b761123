"""The technician's day with a real device: flash (the dry run, and the very files
it writes running under the real `micropython` binary), a retained config the
agent applies, `watch`, and `commission` passing and failing for real reasons."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from edge import contract
from telemetry_cli.flash import ca_to_der, firmware_files, plan_flash
from tests.cli.test_device_cli import add
from tests.security.support import connect

ROOT = Path(__file__).resolve().parents[2]


def test_flash_dry_run_lists_every_file_and_changes_nothing(city):
    add(city, "wtr-0100", "water", "--interval-ms", "2000")
    before = city.registry.get("wtr-0100").credential_hash
    result = city.run("flash", "wtr-0100", "--port", "/dev/ttyUSB7", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    on_board = [f["board_path"] for f in plan["files"]]
    expected = sorted("edge/" + str(p.relative_to(ROOT / "edge").with_suffix(".mpy"))
                      for p in (ROOT / "edge").rglob("*.py") if "__pycache__" not in p.parts)
    assert sorted(on_board[:-3]) == expected and on_board[-3:] == ["ca.der", "main.py", "config.json"]
    assert "edge/contract.mpy" in on_board and "edge/agent.mpy" in on_board and "edge/mqtt.mpy" in on_board
    assert plan["config"] == {"device_id": "wtr-0100", "kind": "water", "server": "127.0.0.1",
                              "port": city.mosquitto.tls_port, "user": "wtr-0100", "interval_ms": 2000,
                              "batch_size": 1, "source": "synthetic", "password": "<issued when flashing>",
                              "ca_path": "ca.der", "buffer_capacity": 30, "spool_path": "spool.jsonl",
                              "spool_capacity": 8640}
    command = plan["command"]
    assert command[:4] == ["mpremote", "connect", "/dev/ttyUSB7", "exec"] and command[-2:] == ["+", "reset"]
    copies = [(command[i + 1], command[i + 2]) for i, word in enumerate(command) if word == "cp"]
    assert copies == [(f"<staging>/{path}", f":{path}") for path in on_board]  # every file to its own path
    table = city.run("flash", "wtr-0100", "--dry-run")
    assert table.exit_code == 0 and "edge/agent.mpy" in table.stdout and "config.json" in table.stdout
    assert city.registry.get("wtr-0100").credential_hash == before  # no new credentials on a dry run


def test_flash_needs_a_ca_or_an_explicit_plain_mqtt(city, tmp_path):
    add(city, "wtr-0102")
    missing = city.run("flash", "wtr-0102", "--ca-file", str(tmp_path / "nope.pem"), "--dry-run")
    assert missing.exit_code == 2 and "--plain-mqtt" in missing.output and "--ca-file" in missing.output
    (tmp_path / "junk.pem").write_text("hello")
    junk = city.run("flash", "wtr-0102", "--ca-file", str(tmp_path / "junk.pem"), "--dry-run")
    assert junk.exit_code == 2 and "not a CA certificate" in junk.output
    (tmp_path / "big.der").write_bytes(b"\x30" * (64 * 1024 + 1))
    for endless in ("/dev/zero", str(tmp_path / "big.der")):  # a device that never ends, a DER-looking 64 KB + 1
        huge = city.run("flash", "wtr-0102", "--ca-file", endless, "--dry-run")
        said = " ".join(huge.output.split())  # as the terminal folds it
        assert huge.exit_code == 2 and "larger than 64 KB: not a CA certificate" in said, said
    plain = city.run("flash", "wtr-0102", "--plain-mqtt", "--dry-run", "--json")
    config = json.loads(plain.stdout)["config"]
    assert config["tls"] is False and config["port"] == city.mosquitto.port and "ca_path" not in config


def test_flash_without_a_board_fails_clearly(city):
    add(city, "wtr-0101")
    result = city.run("flash", "wtr-0101", "--port", "/dev/no-such-board", "--yes")
    assert result.exit_code == 1
    assert "mpremote failed" in result.output and "flash again" in result.output


def test_flashed_files_run_the_agent_which_applies_its_config_and_commissions(city, micropython_bin, tmp_path):
    password = add(city, "wtr-0200", "water", "--interval-ms", "1000")["password"]
    configured = city.run("config", "set", "wtr-0200", "--interval-ms", "1000", "--batch-size", "2")
    assert configured.exit_code == 0, configured.output
    device = city.run("show", "wtr-0200", "--json")
    plan = plan_flash(json.loads(device.stdout), "/dev/null", "127.0.0.1", city.mosquitto.tls_port,
                      json.loads(device.stdout)["config"], ca_der=ca_to_der(city.ca_file.read_bytes()),
                      server_hostname="localhost")
    board = tmp_path / "board"
    plan.stage(board, password)  # exactly the tree `flash` copies to the board
    assert (board / "main.py").read_text().startswith("from edge.main import main")
    assert len(list((board / "edge").rglob("*.mpy"))) == len(firmware_files())  # compiled, as a board gets it
    assert not list((board / "edge").rglob("*.py"))
    agent = subprocess.Popen([micropython_bin, "-m", "edge.main", "config.json", "6"], cwd=board,
                             env=dict(os.environ, MICROPYPATH=f"{board}:.frozen"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        watched = city.run("watch", "wtr-0200", "--count", "3", "--timeout", "20", "--json")
        if watched.exit_code != 0:
            agent.kill()
        assert watched.exit_code == 0, watched.output + agent.communicate()[0]
        events = [json.loads(line) for line in watched.stdout.splitlines()]
        telemetry = [e for e in events if e["event"] == "telemetry"]
        assert telemetry and all(len(e["samples"]) == 2 for e in telemetry)  # the retained config was applied
        assert any(e["event"] == "status" and e["state"] == "online" for e in events)
        result = city.run("commission", "wtr-0200", "--readings", "3", "--timeout", "30", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["passed"] and {c["name"] for c in report["checks"] if c["ok"]} >= {
            "birth message", "readings arrive", "within bounds", "device clock", "encrypted link"}
        link = next(c for c in report["checks"] if c["name"] == "encrypted link")
        assert "TLS" in link["detail"]
    finally:
        agent.kill()
        agent.wait(10)


def test_commission_fails_on_out_of_bounds_readings(city):
    password = add(city, "pwr-0300", "power")["password"]

    def install_a_miswired_meter() -> None:
        time.sleep(1.0)
        meter = connect(city.mosquitto.port, "pwr-0300", password)
        meter.publish(contract.status_topic("pwr-0300"), contract.encode_status("online", "0.1.0", battery_v=3.9),
                      retain=True)
        now = int(time.time() * 1000)
        meter.publish(contract.telemetry_topic("pwr-0300"),
                      contract.encode_telemetry(0, [(now, {"voltage_v": 231.0, "frequency_hz": 500.0})], "0.1.0"))
        meter.stop()

    threading.Thread(target=install_a_miswired_meter, daemon=True).start()
    result = city.run("commission", "pwr-0300", "--readings", "1", "--timeout", "15")
    assert result.exit_code == 1, result.output
    assert "within bounds" in result.output and "FAIL" in result.output and "frequency_hz" in result.output
    assert "battery 3.9 V" in result.output and "not commissioned" in result.output


def test_commission_of_a_device_that_never_speaks_fails(city):
    add(city, "trf-0400", "traffic")
    result = city.run("commission", "trf-0400", "--timeout", "2", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["passed"]
    assert {c["name"]: c["detail"] for c in report["checks"]}["birth message"] == "no birth message"


def test_the_folder_making_code_sent_to_the_board_runs_under_micropython(micropython_bin, tmp_path):
    """The `exec` part of the flash command, run by the real interpreter, twice (a re-flash)."""
    plan = plan_flash({"id": "wtr-0001", "kind": "water"}, "/dev/ttyACM0", "127.0.0.1", 1883, None)
    code = plan.command(tmp_path)[4]
    for _ in range(2):
        done = subprocess.run([micropython_bin, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        (tmp_path / "edge" / "agent.py").write_text("an older flash's source")  # would shadow agent.mpy
    assert (tmp_path / "edge").is_dir() and (tmp_path / "edge" / "hw").is_dir()
    done = subprocess.run([micropython_bin, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and not (tmp_path / "edge" / "agent.py").exists()
