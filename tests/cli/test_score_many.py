"""`city score A.csv B.csv ... --out-dir FOLDER`: a folder of exports scored in one command (one start-up, not one a
file); each file's rows exactly as `city score FILE -o OUT` writes them; a bad file reported and the others kept."""

import json
import math

from typer.testing import CliRunner

from telemetry_cli.main import app

runner = CliRunner()


def _export(path, hours: int = 72, spike_at: int | None = None, shift: float = 0.0) -> None:
    lines = ["timestamp,value"]
    for i in range(hours * 12):  # every 5 minutes
        value = 20 + 5 * math.sin(2 * math.pi * i / 288) + shift + 0.3 * math.sin(i * 1.7)
        if i == spike_at:
            value += 30
        lines.append(f"{1767225600 + 300 * i},{value:.3f}")
    path.write_text("\n".join(lines) + "\n")


def _score(*args: str):
    return runner.invoke(app, ["score", *args])


def test_a_folder_of_exports_scores_each_file_as_one_file_alone(tmp_path):
    sources = []
    for name, spike in (("pump-1.csv", 700), ("pump-2.csv", None), ("feeder.csv", 600)):
        _export(tmp_path / name, spike_at=spike, shift=len(sources))
        sources.append(tmp_path / name)
    result = _score(*map(str, sources), "--out-dir", str(tmp_path / "scored"), "--json")
    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert [s["source"] for s in summaries] == [str(s) for s in sources]
    for source, summary in zip(sources, summaries, strict=True):
        alone = tmp_path / f"alone-{source.name}"
        assert _score(str(source), "-o", str(alone)).exit_code == 0
        assert (tmp_path / "scored" / source.name).read_bytes() == alone.read_bytes()
        assert summary["out"] == str(tmp_path / "scored" / source.name) and summary["rows"] == 864
    assert summaries[0]["max_score"] > 0.9 and summaries[2]["max_score"] > 0.9  # the spikes are found in each
    assert summaries[1]["max_score"] < 0.5


def test_a_bad_file_among_many_is_named_and_the_others_are_still_scored(tmp_path):
    _export(tmp_path / "good.csv")
    (tmp_path / "broken.csv").write_text("timestamp,value\nnot a time,1\n")
    _export(tmp_path / "also-good.csv")
    names = ("good.csv", "broken.csv", "also-good.csv")
    result = _score(*(str(tmp_path / n) for n in names), "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "broken.csv" in result.stderr and "not a time" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["also-good.csv", "good.csv"]
    assert "good.csv" in result.stdout and "also-good.csv" in result.stdout


def test_refused_before_anything_is_written(tmp_path):
    _export(tmp_path / "a.csv")
    (tmp_path / "other").mkdir()
    _export(tmp_path / "other" / "a.csv")
    out = tmp_path / "out"
    cases = {
        "no output given": [str(tmp_path / "a.csv")],
        "both outputs": [str(tmp_path / "a.csv"), "-o", str(tmp_path / "x.csv"), "--out-dir", str(out)],
        "several files to one --out": [str(tmp_path / "a.csv"), str(tmp_path / "other" / "a.csv"), "-o",
                                       str(tmp_path / "x.csv")],
        "two files of one name": [str(tmp_path / "a.csv"), str(tmp_path / "other" / "a.csv"), "--out-dir", str(out)],
        "the input written over": [str(tmp_path / "a.csv"), "--out-dir", str(tmp_path)],
    }
    for case, args in cases.items():
        result = _score(*args)
        assert result.exit_code == 2, case
        assert result.stderr.strip(), case
        assert not out.exists() and not (tmp_path / "x.csv").exists(), case
    assert _score(str(tmp_path / "a.csv"), "--out-dir", str(tmp_path)).stderr.count("a.csv") == 1
    original = (tmp_path / "a.csv").read_text()
    assert original.startswith("timestamp,value\n") and "anomaly_score" not in original


def test_the_messages_speak_bahasa_indonesia(tmp_path, monkeypatch):
    monkeypatch.setenv("CITY_LANGUAGE", "id")
    _export(tmp_path / "a.csv")
    result = _score(str(tmp_path / "a.csv"))
    assert result.exit_code == 2 and "berikan --out" in result.stderr
