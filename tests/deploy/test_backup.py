"""deploy/backup.py on real SQLite databases in WAL mode, while a writer keeps writing."""

import json
import sqlite3
import threading
from pathlib import Path

from deploy import backup


def make_db(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE devices (id TEXT PRIMARY KEY, note TEXT)")
    db.executemany("INSERT INTO devices VALUES (?, ?)", [(f"wtr-{i:05d}", "x" * 200) for i in range(rows)])
    db.commit()
    db.close()


def test_backs_up_every_database_while_one_is_being_written(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    (data / "mosquitto").mkdir(parents=True)
    make_db(data / "registry.sqlite3", 20_000)
    make_db(data / "api.sqlite3", 10)
    stop = threading.Event()

    def writer() -> None:
        db = sqlite3.connect(data / "registry.sqlite3", timeout=30)
        n = 0
        while not stop.is_set() and n < 5000:
            db.execute("INSERT INTO devices VALUES (?, ?)", (f"new-{n}", "y"))
            db.commit()
            n += 1
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        code = backup.main(["--data-dir", str(data), "--dest", str(tmp_path / "backups"), "--json"])
    finally:
        stop.set()
        thread.join(30)
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(r["database"] for r in result["databases"]) == ["api.sqlite3", "registry.sqlite3"]
    copy = sqlite3.connect(Path(result["folder"]) / "registry.sqlite3")
    assert copy.execute("SELECT count(*) FROM devices WHERE id LIKE 'wtr-%'").fetchone()[0] == 20_000
    copy.close()


def test_a_corrupt_database_is_reported_and_the_others_still_copied(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make_db(data / "registry.sqlite3", 5)
    (data / "deadletter.sqlite3").write_bytes(b"not a database at all" * 100)
    assert backup.main(["--data-dir", str(data), "--dest", str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "deadletter.sqlite3" in out and "FAILED" in out
    assert "registry.sqlite3" in out and out.count(" ok") == 1


def test_missing_data_folder_or_unwritable_destination_fail_clearly(tmp_path: Path, capsys) -> None:
    assert backup.main(["--data-dir", str(tmp_path / "nope"), "--dest", str(tmp_path / "b")]) == 1
    assert "no data folder" in capsys.readouterr().err
    data = tmp_path / "data"
    data.mkdir()
    make_db(data / "registry.sqlite3", 1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert backup.main(["--data-dir", str(data), "--dest", str(blocker / "sub")]) == 1
    assert "backup:" in capsys.readouterr().err


def test_an_empty_data_folder_is_not_a_successful_backup(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    assert backup.main(["--data-dir", str(tmp_path / "data"), "--dest", str(tmp_path / "b")]) == 1
    assert "no *.sqlite3" in capsys.readouterr().err
