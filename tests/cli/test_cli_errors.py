"""A CLI error stays on one line, for a script, a pipe or a log: a long path quoted in it is not broken over
lines where stderr is not a terminal (rich wraps such output at 80 columns)."""

import os
import subprocess
import sys

import pytest

from telemetry_cli.common import EXIT_NOT_FOUND


@pytest.mark.parametrize("lang", ["en", "id"])
def test_an_error_quoting_a_long_path_stays_on_one_line(tmp_path, lang):
    missing = tmp_path / ("a-folder-with-a-long-name-" * 4) / "readings.csv"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"CITY_LANGUAGE": lang}
    done = subprocess.run([sys.executable, "-m", "telemetry_cli.main", "score-eval", str(missing)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == EXIT_NOT_FOUND, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"{missing}:" in lines[0], done.stderr
