"""Container health checks for the Python services (docker-compose.yml `healthcheck`).

    python -m deploy.healthcheck http http://127.0.0.1:8000/health
    python -m deploy.healthcheck mqtt 1883     # this container holds a live connection to the broker

Exit 0 when healthy, 1 (with the reason on stderr) when not.
"""

import sys
import urllib.error
import urllib.request

TCP_ESTABLISHED = "01"


def http_ok(url: str, timeout_s: float = 3.0) -> bool:
    if not url.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def connected_to_port(port: int, tables: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")) -> bool:
    """Whether this network namespace has an established TCP connection to `port` (the broker's)."""
    wanted = f":{port:04X}"
    for table in tables:
        try:
            with open(table) as rows:
                next(rows, None)  # header
                for row in rows:
                    fields = row.split()
                    if len(fields) > 3 and fields[2].endswith(wanted) and fields[3] == TCP_ESTABLISHED:
                        return True
        except OSError:
            continue
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("http", "mqtt"):
        print("usage: python -m deploy.healthcheck http URL | mqtt PORT", file=sys.stderr)
        return 2
    if args[0] == "http":
        healthy = http_ok(args[1])
    else:
        try:
            healthy = connected_to_port(int(args[1]))
        except ValueError:
            print(f"not a port: {args[1][:20]!r}", file=sys.stderr)
            return 2
    if not healthy:
        print(f"unhealthy: {args[0]} {args[1][:200]}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
