"""Numba's on-disk cache of compiled kernels, in a folder named by the kernels' source.

Numba checks a cached kernel against the time stamp of the file it is written in, and nothing else. A kernel
that calls a compiled function from another file (`stream_kernels` calls `kernels.holt_step`) keeps the old
machine code after that other file changes: after a `git pull` that changes `holt_step` alone, the engine
would go on scoring with the old arithmetic, silently. So every module here that compiles with `cache=True`
imports this module first, and the cache lives in a folder named by a hash of every such file: a change to
any of them starts a new folder (compiling again once, ~1 minute), and the folders of older sources are removed.

The folder is `__pycache__/numba-<hash>` inside this package, or under the user's cache folder when the package
is not writable (an installed image); `NUMBA_CACHE_DIR`, when set, is used as the base instead.
"""

import hashlib
import os
import shutil
from pathlib import Path

import numba

PACKAGE = Path(__file__).resolve().parent
PREFIX = "numba-"


def source_key(package: Path = PACKAGE) -> str:
    """A hash of every Python file under `package` that uses numba, by path and content."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(package.rglob("*.py")):
        text = path.read_bytes()
        if b"numba" in text:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


def cache_base(package: Path = PACKAGE) -> Path:
    """Where this checkout's versioned folders go (a shared base gets a folder per checkout, so that two
    checkouts never remove each other's)."""
    in_tree = package / "__pycache__"
    if not os.environ.get("NUMBA_CACHE_DIR") and os.access(in_tree if in_tree.exists() else package, os.W_OK):
        return in_tree
    shared = os.environ.get("NUMBA_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    checkout = hashlib.blake2b(str(package).encode(), digest_size=4).hexdigest()
    return Path(shared) / "city-telemetry" / f"{package.name}-{checkout}"


def use_source_keyed_cache(package: Path = PACKAGE) -> Path:
    """Point numba's cache at the folder of the current sources (before any `cache=True` kernel is defined)
    and remove the folders of other sources. Returns the folder."""
    base = cache_base(package)
    folder = base / (PREFIX + source_key(package))
    numba.config.CACHE_DIR = str(folder)
    _remove_stale(base, keep=folder)
    return folder


def _remove_stale(base: Path, keep: Path) -> None:
    # Best effort: another process may be removing the same folder, or it may not be ours to remove.
    try:
        stale = [p for p in base.iterdir() if p.name.startswith(PREFIX) and p != keep and p.is_dir()]
    except OSError:
        return
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


CACHE_FOLDER = use_source_keyed_cache()
