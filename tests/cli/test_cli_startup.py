"""`city score` from a shell starts with only what it needs (telemetry_cli/main.py): a user timing the command on a
big file should not wait for the API's, Grafana's and InfluxDB's modules, which every command once imported."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OTHER_COMMANDS = ("fastapi", "grafana.boards", "telemetry_shared.influx", "analytics.evaluate")
PROBE = ("import sys\n"
         "from telemetry_cli.main import run\n"
         "sys.argv = ['city', *sys.argv[1:]]\n"
         "try:\n"
         "    run()\n"
         "except SystemExit as exc:\n"
         "    assert not exc.code, exc.code\n"
         f"print(sorted(name for name in {OTHER_COMMANDS!r} if name in sys.modules))\n")


def _city(*args: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_city_score_imports_none_of_the_other_commands_modules(tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * i},{i % 7}\n" for i in range(200)))
    assert _city("score", str(source), "-o", str(target)) == "[]"
    lines = target.read_text().splitlines()
    assert len(lines) == 201 and "anomaly_score" in lines[0]


def test_every_other_command_still_finds_the_whole_app():
    """`city --help` lists every command group (the full app is built for anything but the analytics commands)."""
    listed = subprocess.run([sys.executable, "-m", "telemetry_cli.main", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    for command in ("up", "device", "grafana", "score", "score-eval", "apikey", "water-balance", "citizens"):
        assert f" {command} " in listed.stdout, command
