"""Online backups of the platform's SQLite databases (registry, API keys and alerts,
dead letters...): every *.sqlite3 under CITY_DATA_DIR, copied with SQLite's backup
API while the services keep writing, then checked with `PRAGMA integrity_check`.

    docker compose exec api python -m deploy.backup            # into /backups/<UTC time>/

InfluxDB is backed up by its own tool (see deploy/README.md). Exit 0 when every
database was copied and checks out, 1 otherwise (the others are still copied).
"""

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

PAGES_PER_STEP = 1024  # copy in steps, so a writer is never held up for long


def backup_one(source: Path, target: Path) -> dict:
    started = time.perf_counter()
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst, pages=PAGES_PER_STEP)
                check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        return {"database": source.name, "ok": False, "error": str(exc)[:200]}
    return {"database": source.name, "ok": check == "ok", "bytes": target.stat().st_size,
            "seconds": round(time.perf_counter() - started, 3), "integrity": check[:200]}


def backup_all(data_dir: Path, dest_root: Path) -> tuple[Path, list[dict]]:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no data folder at {data_dir} (CITY_DATA_DIR)")
    dest = dest_root / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=False)
    sources = sorted(p for p in data_dir.rglob("*.sqlite3") if dest_root not in p.parents)
    return dest, [backup_one(p, dest / p.relative_to(data_dir).as_posix().replace("/", "__")) for p in sources]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Back up every SQLite database under the data folder, online.")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("CITY_DATA_DIR", "/var/lib/city")))
    parser.add_argument("--dest", type=Path, default=Path("/backups/sqlite"))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        dest, results = backup_all(args.data_dir, args.dest)
    except OSError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"folder": str(dest), "databases": results}))
    else:
        print(f"backup in {dest}")
        for r in results:
            state = "ok" if r["ok"] else f"FAILED: {r.get('error') or r.get('integrity')}"
            print(f"  {r['database']:<28} {r.get('bytes', 0):>12,} bytes  {state}")
    if not results:
        print(f"backup: no *.sqlite3 under {args.data_dir}", file=sys.stderr)
        return 1
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
