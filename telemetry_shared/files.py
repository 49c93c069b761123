"""Reading a file a user named, bounded.

A path's size cannot be trusted to bound a read: /dev/zero, a pipe or /dev/stdin report 0 bytes
and never end, and a file can grow while it is read. So every file a command reads whole is read
through `read_bounded`, which stops one byte past its limit.
"""

from pathlib import Path


class FileTooLarge(ValueError):
    """The file holds more than the reader's limit."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path} is larger than {_readable(limit)}")
        self.path = path
        self.limit = limit


def _readable(limit: int) -> str:
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit % size == 0:
            return f"{limit // size:,} {unit}"
    return f"{limit:,} bytes"


def read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes; FileTooLarge past `limit` bytes, OSError as open and read raise it."""
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, limit)
    return data


def read_bounded_text(path: Path, limit: int, encoding: str = "utf-8") -> str:
    """read_bounded decoded; UnicodeDecodeError where the bytes are not `encoding`."""
    return read_bounded(path, limit).decode(encoding)
