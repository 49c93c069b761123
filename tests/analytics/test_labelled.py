"""`city score-eval`: the metrics on hand-made cases whose answer is known, and
the command with good and hostile input."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from analytics import csvscore, labelled
from analytics.csvscore import read_table, score_table
from analytics.labelled import LabelError, Scored, evaluate, file_metrics, label_windows, runs
from telemetry_cli.common import EXIT_INVALID, EXIT_NOT_FOUND
from telemetry_cli.main import app

runner = CliRunner()
START = datetime(2025, 3, 3, tzinfo=UTC)


# ---------------------------------------------------------------- metrics by hand


def scores_with(n: int, alarms: dict[int, float]) -> np.ndarray:
    scores = np.zeros(n)
    for row, value in alarms.items():
        scores[row] = value
    return scores


def test_runs_of_labels():
    assert runs(np.array([0, 1, 1, 0, 0, 1, 0, 1, 1], dtype=bool)) == [(1, 2), (5, 5), (7, 8)]
    assert runs(np.zeros(4, dtype=bool)) == []
    assert runs(np.ones(3, dtype=bool)) == [(0, 2)]


def test_a_window_is_found_inside_or_within_the_tolerance_after_it():
    windows = [(10, 19)]
    inside = file_metrics(scores_with(100, {15: 0.9}), windows, 0.5)
    assert (inside.found, inside.false_episodes, inside.delays) == (1, 0, [5])
    late = file_metrics(scores_with(100, {24: 0.9}), windows, 0.5, tolerance=5)
    assert (late.found, late.false_episodes, late.delays) == (1, 0, [14])
    too_late = file_metrics(scores_with(100, {25: 0.9}), windows, 0.5, tolerance=5)
    assert (too_late.found, too_late.false_episodes) == (0, 1)
    before = file_metrics(scores_with(100, {9: 0.9}), windows, 0.5)
    assert (before.found, before.false_episodes) == (0, 1)


def test_the_threshold_is_inclusive():
    assert file_metrics(scores_with(50, {5: 0.5}), [(5, 5)], 0.5).found == 1
    assert file_metrics(scores_with(50, {5: 0.4999}), [(5, 5)], 0.5).found == 0


def test_consecutive_alarmed_rows_are_one_false_episode():
    # rows 30-39 alarmed (one episode), 50 and 52 (two: row 51 is not alarmed), 70-71 (one)
    scores = scores_with(100, {**{r: 0.8 for r in range(30, 40)}, 50: 0.7, 52: 0.9, 70: 0.6, 71: 0.6})
    m = file_metrics(scores, [], 0.5)
    assert m.false_episodes == 4 and m.windows == 0
    assert m.recall is None and m.f1 is None and m.precision == 0.0
    assert m.false_per_10k == pytest.approx(4 / 100 * 1e4)


def test_an_episode_that_touches_a_window_is_not_false_even_if_it_runs_on():
    scores = scores_with(200, {r: 0.9 for r in range(15, 120)})
    m = file_metrics(scores, [(10, 20)], 0.5)
    assert (m.found, m.false_episodes, m.delays) == (1, 0, [5])
    assert m.precision == 1.0 and m.recall == 1.0 and m.f1 == 1.0


def test_precision_recall_f1_and_median_delay_over_files():
    one = Scored("a", scores_with(100, {12: 0.9, 60: 0.9}), [(10, 19), (40, 45)])  # 1 of 2 found, 1 false
    two = Scored("b", scores_with(100, {30: 0.9, 33: 0.6}), [(30, 39)])  # found at delay 0
    three = Scored("c", scores_with(100, {80: 0.95}), [])  # clean file, 1 false
    report = evaluate([one, two, three], threshold=0.5, tolerance=0)
    total = report.total
    assert (total.windows, total.found, total.false_episodes) == (3, 2, 2)
    assert total.precision == pytest.approx(0.5) and total.recall == pytest.approx(2 / 3)
    assert total.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert total.median_delay == 1.0  # delays 2 and 0
    assert [name for name, _ in report.files] == ["a", "b", "c"]
    # The sweep: above 0.95 nothing alarms (F1 0); between 0.61 and 0.90 the same F1 as at 0.5.
    f1 = {t: m.f1 for t, m in report.sweep}
    assert f1[0.99] == 0.0 and f1[0.9] == pytest.approx(total.f1)
    assert report.best_threshold is not None and 0.05 <= report.best_threshold <= 0.9


def test_the_sweep_finds_the_threshold_that_separates_anomalies_from_noise():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.3, 1000)  # background noise up to 0.3
    windows = [(100, 104), (500, 504), (900, 904)]
    for start, _ in windows:
        scores[start + 1] = 0.7  # every anomaly reaches 0.7
    report = evaluate([Scored("x", scores, windows)], threshold=0.2)
    assert report.total.found == 3 and report.total.false_episodes > 10  # 0.2 is inside the noise
    best = next(m for t, m in report.sweep if t == report.best_threshold)
    assert 0.3 < report.best_threshold <= 0.7
    assert (best.found, best.false_episodes, best.f1) == (3, 0, 1.0)


def test_no_windows_anywhere_gives_no_best_threshold():
    report = evaluate([Scored("clean", scores_with(100, {50: 0.9}), [])])
    assert report.best_threshold is None and report.total.false_episodes == 1
    assert report.as_dict()["best"] is None


def test_label_column_parsing():
    table = read_table("timestamp,value,label\n1,1.0,0\n2,1.0,1\n3,1.0,1.0\n4,1.0,0.0\n5,1.0,1\n")
    assert label_windows(table, "label") == [(1, 2), (4, 4)]
    assert label_windows(table, "LABEL") == [(1, 2), (4, 4)]


def test_a_missing_label_column_names_the_files_own_label_column():
    yahoo = "timestamps,value,anomaly,changepoint,trend\n1,1.0,0,0,0\n"
    with pytest.raises(LabelError, match="no label column 'label' .*; try --label-column anomaly$"):
        label_windows(read_table(yahoo), "label")
    with pytest.raises(LabelError, match="; try --label-column Is_Anomaly$"):
        label_windows(read_table("timestamp,value,Is_Anomaly\n1,1.0,0\n"), "label")
    with pytest.raises(LabelError) as plain:
        label_windows(read_table("timestamp,value,changepoint\n1,1.0,0\n"), "label")
    assert "try" not in str(plain.value)


def test_boolean_labels_as_pandas_writes_them():
    table = read_table("timestamp,value,is_anomaly\n1,1.0,False\n2,1.0,True\n3,1.0,true\n4,1.0,FALSE\n5,1.0,True\n")
    assert label_windows(table, "is_anomaly") == [(1, 2), (4, 4)]


@pytest.mark.parametrize("text, column, message", [
    ("timestamp,value,label\n1,1.0,0\n2,1.0,2\n", "label", "line 3: label '2' is not 0 or 1"),
    ("timestamp,value,label\n1,1.0,0\n2,1.0,\n", "label", "line 3: label '' is not 0 or 1"),
    ("timestamp,value,label\n1,1.0,yes\n", "label", "line 2: label 'yes' is not 0 or 1"),
    ("timestamp,value,label\n1,1.0,nan\n", "label", "not 0 or 1"),
    ("timestamp,value\n1,1.0\n", "label", "no label column 'label'"),
    ("1,1.0,0\n2,1.0,1\n", "label", "no header"),
    ("timestamp,value,label\n1,1.0,0\n", "value", "is the column being scored"),
    ("timestamp,value,label\n1,1.0,0\n", "timestamp", "is the timestamp column"),
])
def test_bad_labels_are_refused_with_the_line(text, column, message):
    with pytest.raises(LabelError, match=message):
        label_windows(read_table(text), column)


# ---------------------------------------------------------------- the command


def stamp(i: int) -> str:
    return (START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")


def labelled_csv(n: int = 1500, spikes: tuple[int, ...] = (1200,), seed: int = 0) -> str:
    """A daily curve with noise, spikes of 40 sigma at `spikes`, labelled 1 on the spike and the row after."""
    rng = np.random.default_rng(seed)
    values = 50 + 10 * np.sin(np.arange(n) / 288 * 2 * np.pi) + rng.normal(0, 1, n)
    labels = np.zeros(n, dtype=int)
    for row in spikes:
        values[row] += 40
        labels[row:row + 2] = 1
    lines = ["timestamp,value,label"] + [f"{stamp(i)},{v:.3f},{lab}" for i, (v, lab) in
                                         enumerate(zip(values, labels, strict=True))]
    return "\n".join(lines) + "\n"


def invoke(*args: str):
    return runner.invoke(app, ["score-eval", *args])


def test_cli_finds_the_labelled_spikes_and_scores_as_city_score_does(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(labelled_csv(spikes=(1000, 1300)))
    b.write_text(labelled_csv(seed=1, spikes=(1100,)))
    result = invoke(str(a), str(b), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [f["file"] for f in report["files"]] == [str(a), str(b)]
    assert report["total"]["windows"] == 3 and report["total"]["found"] == 3
    assert report["total"]["false_episodes"] == 0 and report["total"]["f1"] == 1.0
    assert report["total"]["median_delay_rows"] == 0.0
    assert report["best"]["f1"] == 1.0 and len(report["sweep"]) == len(labelled.SWEEP)
    # The same scores as `city score` writes.
    out = tmp_path / "scored.csv"
    assert runner.invoke(app, ["score", str(a), "--out", str(out)]).exit_code == 0
    written = np.array([float(line.split(",")[3]) for line in out.read_text().splitlines()[1:]])
    np.testing.assert_array_equal(written.round(6), score_table(read_table(a.read_text())).round(6))


def test_a_window_in_the_learning_period_is_missed_and_said_so(tmp_path):
    """The scorer's first day is learning (score 0): a spike there is a missed window, counted apart."""
    source = tmp_path / "early.csv"
    source.write_text(labelled_csv(spikes=(100, 1200)))
    result = invoke(str(source), "--json")
    assert result.exit_code == 0, result.output
    total = json.loads(result.stdout)["total"]
    assert total["windows"] == 2 and total["found"] == 1 and total["learning_windows"] == 1
    shown = invoke(str(source))
    assert "1 windows start in a file's learning period" in shown.stdout


def test_cli_table_for_people(tmp_path):
    source = tmp_path / "site-7.csv"
    source.write_text(labelled_csv())
    result = invoke(str(source))
    assert result.exit_code == 0, result.output
    assert "site-7.csv" in result.stdout and "total" in result.stdout
    assert "Best threshold over all files" in result.stdout


def test_cli_threshold_changes_the_answer(tmp_path):
    source = tmp_path / "noisy.csv"
    rng = np.random.default_rng(3)
    # Student-t noise: some readings far out, none labelled.
    values = 100 + rng.standard_t(2, 3000)
    source.write_text("timestamp,value,label\n" + "".join(f"{stamp(i)},{v:.3f},0\n" for i, v in enumerate(values)))
    low = json.loads(invoke(str(source), "--json", "--threshold", "0.1").stdout)["total"]
    high = json.loads(invoke(str(source), "--json", "--threshold", "0.99").stdout)["total"]
    assert low["false_episodes"] > high["false_episodes"]
    assert low["windows"] == 0 and low["f1"] is None


def test_cli_windows_file_gives_the_same_answer_as_the_label_column(tmp_path):
    source = tmp_path / "site.csv"
    source.write_text(labelled_csv(spikes=(1000, 1300)))
    windows = tmp_path / "windows.csv"
    windows.write_text(f"file,start,end\nsite.csv,{stamp(1000)},{stamp(1001)}\nsite.csv,{stamp(1300)},{stamp(1301)}\n"
                       f"other.csv,{stamp(5)},{stamp(6)}\n")
    by_label = json.loads(invoke(str(source), "--json").stdout)
    by_windows = json.loads(invoke(str(source), "--json", "--windows", str(windows)).stdout)
    assert by_windows["total"] == by_label["total"] and by_windows["total"]["found"] == 2
    assert by_windows["unused_windows"] == 1
    table = invoke(str(source), "--windows", str(windows))
    assert "1 windows name files not given here" in table.stdout


def test_a_window_reaching_past_the_file_is_cut_to_it(tmp_path):
    source = tmp_path / "site.csv"
    source.write_text(labelled_csv(n=1300, spikes=(1290,)))
    windows = tmp_path / "w.csv"
    windows.write_text(f"file,start,end\nsite.csv,{stamp(1290)},{stamp(5000)}\n")
    report = json.loads(invoke(str(source), "--json", "--windows", str(windows)).stdout)
    assert report["total"]["windows"] == 1 and report["total"]["found"] == 1


@pytest.mark.parametrize("windows_text, message", [
    ("", "is empty"),
    ("name,from,to\nsite.csv,1,2\n", "must name the columns file, start and end"),
    (f"file,start,end\nsite.csv,{stamp(10)}\n", "line 2: 2 fields"),
    ("file,start,end\nsite.csv,yesterday,today\n", "line 2: timestamp 'yesterday' is not a date"),
    (f"file,start,end\nsite.csv,{stamp(20)},{stamp(10)}\n", "line 2: the window ends before it starts"),
    ("file,start,end\nsite.csv,2031-01-01 00:00:00,2031-01-02 00:00:00\n",
     "windows line 2: no row of site.csv falls inside the window"),
    ("file,start,end\nsite.csv,1990-01-01 00:00:00,1990-01-02 00:00:00\n", "the file spans 2025-03-03"),
    ("file,start,end\nsite.csv,\x00,\x01\n", "NUL"),
    ('file,start,end\n"site.csv,1,2\n', "line"),
])
def test_cli_hostile_windows_files(tmp_path, windows_text, message):
    source = tmp_path / "site.csv"
    source.write_text(labelled_csv(n=400, spikes=(300,)))
    windows = tmp_path / "w.csv"
    windows.write_text(windows_text)
    result = invoke(str(source), "--windows", str(windows))
    assert result.exit_code == EXIT_INVALID, result.output
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("timestamp,value\n2025-01-01 00:00:00,1\n", "no label column 'label'"),
    ("timestamp,value,label\n2025-01-01 00:00:00,1,0\n2025-01-01 00:05:00,1,5\n", "line 3: label '5' is not 0 or 1"),
    ("timestamp,value,label\n2025-01-01 00:00:00,abc,0\n", "line 2: value 'abc' is not a number"),
    ("timestamp,value,label\nnot-a-time,1,0\n", "line 2: cannot read timestamp"),
    ("timestamp,value,label\n2025-01-01 00:00:00,1\n", "2 fields"),
    (b"\xff\xfe\x00b\x00a\x00d", "not UTF-8"),
])
def test_cli_hostile_csvs_name_the_file_and_line(tmp_path, text, message):
    good = tmp_path / "good.csv"
    good.write_text(labelled_csv(n=400, spikes=(300,)))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = invoke(str(good), str(bad))
    assert result.exit_code == EXIT_INVALID, result.output
    flat = " ".join(result.output.split())
    assert message in flat and "bad.csv" in flat


def test_cli_missing_files_oversized_files_and_bad_options(tmp_path, monkeypatch):
    source = tmp_path / "site.csv"
    source.write_text(labelled_csv(n=400, spikes=(300,)))
    missing = invoke(str(tmp_path / "nope.csv"))
    assert missing.exit_code == EXIT_NOT_FOUND and "nope.csv: no such file" in " ".join(missing.output.split())
    no_windows = invoke(str(source), "--windows", str(tmp_path / "nowhere.csv"))
    assert no_windows.exit_code == EXIT_NOT_FOUND
    folder = invoke(str(tmp_path))
    assert folder.exit_code == EXIT_INVALID
    assert invoke(str(source), "--threshold", "1.5").exit_code == EXIT_INVALID
    assert invoke(str(source), "--tolerance", "-1").exit_code == EXIT_INVALID
    assert invoke().exit_code == EXIT_INVALID  # no file at all
    monkeypatch.setattr(csvscore, "MAX_BYTES", 1000)
    huge = invoke(str(source))
    assert huge.exit_code == EXIT_INVALID and "larger than" in huge.output
    monkeypatch.setattr(labelled, "MAX_WINDOW_BYTES", 10)
    windows = tmp_path / "w.csv"
    windows.write_text("file,start,end\nsite.csv,1,2\n")
    monkeypatch.setattr(csvscore, "MAX_BYTES", 512 * 1024 * 1024)
    big_windows = invoke(str(source), "--windows", str(windows))
    assert big_windows.exit_code == EXIT_INVALID and "larger than" in big_windows.output


def test_too_many_rows_and_too_many_files(tmp_path, monkeypatch):
    source = tmp_path / "site.csv"
    source.write_text(labelled_csv(n=400, spikes=(300,)))
    monkeypatch.setattr(csvscore, "MAX_ROWS", 100)
    result = invoke(str(source))
    assert result.exit_code == EXIT_INVALID and "more than 100 rows" in result.output
    monkeypatch.setattr(csvscore, "MAX_ROWS", 5_000_000)
    monkeypatch.setattr(labelled, "MAX_FILES", 2)
    result = invoke(str(source), str(source), str(source))
    assert result.exit_code == EXIT_INVALID and "at most 2 in one run" in result.output


def test_a_header_only_file_has_no_windows_and_no_alarms(tmp_path):
    source = tmp_path / "empty-but-labelled.csv"
    source.write_text("timestamp,value,label\n")
    report = json.loads(invoke(str(source), "--json").stdout)
    assert report["total"]["rows"] == 0 and report["total"]["windows"] == 0 and report["best"] is None


def test_many_files_show_progress_and_all_are_counted(tmp_path):
    paths = []
    for i in range(4):
        path = tmp_path / f"f{i}.csv"
        path.write_text(labelled_csv(n=600, spikes=(500,), seed=i))
        paths.append(str(path))
    result = invoke(*paths)
    assert result.exit_code == 0, result.output
    assert all(f"f{i}.csv" in result.stdout for i in range(4))
    report = json.loads(invoke(*paths, "--json").stdout)
    assert report["total"]["windows"] == 4 and report["total"]["found"] == 4


def test_the_bench_corpus_through_the_command_labels_and_windows_agree(tmp_path):
    """bench/csv_corpus.py writes a label column and windows.csv for the same anomalies: both give one answer."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "csv_corpus.py"
    spec = importlib.util.spec_from_file_location("csv_corpus", path)
    corpus_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus_module)
    corpus = corpus_module.make_corpus(seed=5, per_anomaly=1, clean=1)
    again = corpus_module.make_corpus(seed=5, per_anomaly=1, clean=1)
    assert [s.values.tolist() for s in corpus] == [s.values.tolist() for s in again]  # seeded
    assert {s.anomaly for s in corpus} == {*corpus_module.ANOMALIES, "clean"}
    corpus_module.write_corpus(corpus, tmp_path)
    files = sorted(str(p) for p in tmp_path.glob("0*.csv"))
    by_label = json.loads(invoke(*files, "--json").stdout)
    by_windows = json.loads(invoke(*files, "--json", "--windows", str(tmp_path / "windows.csv")).stdout)
    assert by_label["total"]["windows"] == sum(len(s.windows) for s in corpus) >= 7
    assert by_windows["total"] == by_label["total"]
    for series, row in zip(corpus, by_label["files"], strict=True):
        assert row["windows"] == len(series.windows) and row["rows"] == series.values.size


def test_the_bench_corpus_read_hourly_keeps_its_files_and_is_read_every_hour():
    """csv_corpus' intervals_min (bench_csv_generality --intervals): the same families and anomalies, each file read
    every 60 minutes; the default draws are the corpus' own."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "csv_corpus.py"
    spec = importlib.util.spec_from_file_location("csv_corpus", path)
    corpus_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus_module)
    default = corpus_module.make_corpus(seed=5, per_anomaly=1, clean=1)
    named = corpus_module.make_corpus(5, 1, 1, corpus_module.INTERVALS_MIN)
    hourly = corpus_module.make_corpus(5, 1, 1, (60,))
    assert [s.values.tolist() for s in default] == [s.values.tolist() for s in named]
    assert [s.name for s in hourly] == [s.name for s in default]
    assert {s.interval_min for s in hourly} == {60} and len({s.interval_min for s in default}) > 1
    for series in hourly:
        hours = np.diff(series.times_ms).mean() / 3_600_000  # a few are irregular (exponential gaps) or lost rows
        assert 0.8 < hours < 1.5, series.name
