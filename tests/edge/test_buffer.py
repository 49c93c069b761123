"""The offline queue: RAM ring plus spool file, oldest first, bounded, drops counted."""

from pathlib import Path

from edge.buffer import SampleBuffer


def _sample(i: int, hist: bool = True) -> tuple:
    return (1_000 + i, {"flow_lps": float(i)}, 0, hist)


def _drain(buffer: SampleBuffer, n: int = 7) -> list[tuple]:
    out = []
    while len(buffer):
        out += buffer.take(n)
    return out


def test_ram_only_drops_oldest_and_counts():
    buffer = SampleBuffer(capacity=5)
    for i in range(8):
        buffer.append(_sample(i))
    assert buffer.dropped == 3
    assert [s[0] for s in _drain(buffer)] == [1003, 1004, 1005, 1006, 1007]


def test_spool_keeps_order_across_ram_and_flash(tmp_path: Path):
    buffer = SampleBuffer(capacity=4, spool_path=str(tmp_path / "spool"), spool_capacity=100)
    for i in range(30):
        buffer.append(_sample(i))
    assert len(buffer) == 30 and buffer.dropped == 0
    assert buffer.spool.count > 0
    taken = _drain(buffer)
    assert [s[0] for s in taken] == list(range(1000, 1030))
    assert taken[3] == (1003, {"flow_lps": 3.0}, 0, True)
    assert (tmp_path / "spool").read_text() == ""


def test_spool_full_drops_the_oldest(tmp_path: Path):
    buffer = SampleBuffer(capacity=4, spool_path=str(tmp_path / "spool"), spool_capacity=10)
    for i in range(40):
        buffer.append(_sample(i))
    kept = [s[0] for s in _drain(buffer)]
    assert buffer.dropped == 40 - len(kept)
    assert kept == sorted(kept) and kept[-1] == 1039
    assert len(kept) <= 14


def test_take_never_mixes_history_and_live(tmp_path: Path):
    buffer = SampleBuffer(capacity=4, spool_path=str(tmp_path / "spool"))
    for i in range(6):
        buffer.append(_sample(i, hist=True))
    for i in range(6, 9):
        buffer.append(_sample(i, hist=False))
    runs = []
    while len(buffer):
        head = buffer.head_hist()
        batch = buffer.take(100)
        assert {s[3] for s in batch} == {head}
        runs.append([s[0] for s in batch])
    assert sum(runs, []) == list(range(1000, 1009))


def test_spool_survives_a_reboot(tmp_path: Path):
    path = str(tmp_path / "spool")
    buffer = SampleBuffer(capacity=2, spool_path=path)
    for i in range(9):
        buffer.append(_sample(i))
    on_flash = buffer.spool.count
    rebooted = SampleBuffer(capacity=2, spool_path=path)  # RAM is gone, the spool is not
    assert len(rebooted) == on_flash > 0
    assert [s[0] for s in _drain(rebooted)] == list(range(1000, 1000 + on_flash))
