"""The on-disk spool: batches of line protocol kept while InfluxDB is away.

One gzip file per batch, named by an increasing number so replay keeps the
order they arrived in. A file is written to a temporary name, fsynced, renamed
and the folder fsynced: after `append` returns, a power cut cannot lose it,
so the worker may ack the MQTT messages it came from. Bounded in bytes: when
full, `append` raises SpoolFull and the worker holds its messages unacked
(the broker keeps them) instead of dropping anything.
"""

import fcntl
import gzip
import os
import socket
from pathlib import Path

SUFFIX = ".lp.gz"
LOCK_FILE = "worker.lock"  # held (flock) by the one process that uses the spool: a worker or a retirement


class SpoolFull(Exception):
    """The spool reached its bound; nothing was written."""


class SpoolBusy(Exception):
    """Another process holds the spool (its text says which: host and pid)."""


def hold_spool(folder: Path | str) -> int:
    """Take the spool folder for this process, or raise SpoolBusy naming who has it.

    An exclusive flock, so it ends with the process however the process ends; the returned file
    descriptor holds it (close it to let go). One worker identity per spool: a second worker
    under the same CITY_INGEST_WORKER_ID, or a worker started while its identity is retired,
    refuses to start instead of taking the same broker session and files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise SpoolBusy(f"{folder} is in use by {holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode(), 0)  # who holds it, for an operator
    return fd


class Spool:
    def __init__(self, folder: Path | str, max_bytes: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        for leftover in self.folder.glob("*.tmp"):  # a crash between write and rename: never acked
            leftover.unlink()
        self.files = sorted(self.folder.glob(f"*{SUFFIX}"))
        self.bytes = sum(f.stat().st_size for f in self.files)
        self.next_number = int(self.files[-1].name.split(".")[0]) + 1 if self.files else 0

    def __len__(self) -> int:
        return len(self.files)

    def append(self, lines: list[str]) -> None:
        """Store one batch durably (fsynced) or raise SpoolFull."""
        data = gzip.compress(("\n".join(lines) + "\n").encode(), 1)
        if self.bytes + len(data) > self.max_bytes:
            raise SpoolFull(f"spool {self.folder} holds {self.bytes} bytes; bound {self.max_bytes}")
        final = self.folder / f"{self.next_number:016d}{SUFFIX}"
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.folder)
        self.next_number += 1
        self.files.append(final)
        self.bytes += len(data)

    def oldest(self) -> tuple[Path, list[str]] | None:
        """The first batch still to replay (it stays until `remove`)."""
        if not self.files:
            return None
        path = self.files[0]
        text = gzip.decompress(path.read_bytes()).decode()
        return path, [line for line in text.split("\n") if line]

    def remove(self, path: Path) -> None:
        size = path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        self.files.remove(path)
        self.bytes -= size


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
