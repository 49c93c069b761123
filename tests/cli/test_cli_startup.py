"""`city score` from a shell starts with only what it needs (telemetry_cli/main.py): a user timing the command on a
big file should not wait for the API's, Grafana's and InfluxDB's modules, which every command once imported, nor
for pydantic's settings, which it does not read, nor for scipy's ndimage and linalg; and the garbage collector does not
walk the objects of its start again and again and at exit (main.run)."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OTHER_COMMANDS = ("fastapi", "grafana.boards", "telemetry_shared.influx", "analytics.evaluate")
NOT_READ_BY_SCORE = ("telemetry_shared.settings", "pydantic_settings")
# scipy's ndimage (~0.1-0.2 s of its own imports): the drift's running minimum and the profile scale's running means
# are compiled kernels of the same bits (kernels.running_minimum, season_kernels.mean_error_near). scipy.linalg
# (~0.15 s): numba's BLAS probe finds its cython_blas loaded alone (main._blas_probe_answered).
NOT_NEEDED_BY_SCORE = ("scipy.ndimage", "scipy.linalg")
PROBE = ("import gc, json, sys\n"
         "from telemetry_cli.main import run\n"
         "sys.argv = ['city', *sys.argv[1:]]\n"
         "try:\n"
         "    run()\n"
         "except SystemExit as exc:\n"
         "    assert not exc.code, exc.code\n"
         "print(json.dumps({'loaded': sorted(name for name in "
         f"{OTHER_COMMANDS + NOT_READ_BY_SCORE + NOT_NEEDED_BY_SCORE!r} if name in sys.modules), "
         "'frozen': gc.get_freeze_count(), 'tracked': len(gc.get_objects()), 'collecting': gc.isenabled()}))\n")


def _city(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _small_file(tmp_path: Path) -> tuple[Path, Path]:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * i},{i % 7}\n" for i in range(200)))
    return source, target


def test_city_score_imports_none_of_the_other_commands_modules_nor_the_settings_nor_scipys_filters(tmp_path):
    source, target = _small_file(tmp_path)
    assert _city("score", str(source), "-o", str(target))["loaded"] == []
    lines = target.read_text().splitlines()
    assert len(lines) == 201 and "anomaly_score" in lines[0]


def test_city_score_leaves_what_lives_to_the_exit_out_of_the_collectors_walks(tmp_path):
    """Before: ~136,000 tracked objects walked by every full collection and by the collections at exit (~0.4 s of a
    shell's `city score`); now they are frozen, and the collector still runs for what is made afterwards."""
    source, target = _small_file(tmp_path)
    state = _city("score", str(source), "-o", str(target))
    assert state["frozen"] > 50_000, state
    assert state["tracked"] < 1_000, state
    assert state["collecting"], state


def test_numbas_linear_algebra_still_works_after_the_blas_probe_is_answered():
    """The console script loads scipy's cython_blas alone (main._blas_probe_answered): numba still finds BLAS and
    compiles np.dot, and scipy.linalg still imports in the same process."""
    probe = ("import sys\n"
             "import numpy as np\n"
             "from telemetry_cli.main import _blas_probe_answered\n"
             "_blas_probe_answered()\n"
             "assert 'scipy.linalg.cython_blas' in sys.modules and 'scipy.linalg' not in sys.modules\n"
             "import numba\n"
             "product = numba.njit(lambda a, b: np.dot(a, b))(np.arange(6.0).reshape(2, 3), np.ones(3))\n"
             "assert 'scipy.linalg' not in sys.modules\n"
             "from scipy.linalg import cython_blas, solve\n"
             "print(product.tolist(), solve(np.eye(2), np.ones(2)).tolist())\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[3.0,", "12.0]", "[1.0,", "1.0]"]


def test_the_app_invoked_in_a_process_leaves_its_collector_alone(tmp_path):
    """The freezing is the console script's (main.run), not the app's: a test process invoking the app keeps its
    collector as it was."""
    from typer.testing import CliRunner

    from telemetry_cli.main import build

    source, target = _small_file(tmp_path)
    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(build("score"), ["score", str(source), "-o", str(target), "--json"])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == frozen and gc.isenabled()


def test_every_other_command_still_finds_the_whole_app():
    """`city --help` lists every command group (the full app is built for anything but the analytics commands)."""
    listed = subprocess.run([sys.executable, "-m", "telemetry_cli.main", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    for command in ("up", "device", "grafana", "score", "score-eval", "apikey", "water-balance", "citizens"):
        assert f" {command} " in listed.stdout, command
