"""A local certificate authority for the broker's TLS listener, made with the
`openssl` command line (Debian's openssl, already on every machine that runs
Mosquitto): EC P-256 keys, which a small board verifies far faster and in less
memory than RSA.

`./dev up` (and the tests) keep one under the data folder, created on first
start: the CA's certificate goes onto every device's flash (DER, `ca.der`,
what MicroPython's mbedTLS reads), the server certificate and key to Mosquitto.
A deployment with its own PKI puts its files in deploy/certs instead.
"""

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from telemetry_shared.servers import find_binary

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True)
class TlsFiles:
    folder: Path

    @property
    def ca_crt(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_der(self) -> Path:
        return self.folder / "ca.der"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_crt(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca_crt, self.ca_der, self.server_crt, self.server_key))


def _openssl(*args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([find_binary("openssl"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def new_key(path: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
    path.chmod(0o600)


def new_ca(folder: Path, name: str = "City telemetry local CA") -> TlsFiles:
    """A self-signed CA in folder (ca.key, ca.crt, ca.der)."""
    files = TlsFiles(folder)
    folder.mkdir(parents=True, exist_ok=True)
    new_key(files.ca_key)
    _openssl("req", "-x509", "-new", "-key", str(files.ca_key), "-sha256", "-days", str(CA_DAYS),
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(files.ca_crt))
    _openssl("x509", "-in", str(files.ca_crt), "-outform", "der", "-out", str(files.ca_der))
    return files


def issue_server_cert(ca: TlsFiles, cert: Path, key: Path, hosts: list[str],
                      start: str | None = None, end: str | None = None) -> None:
    """A server certificate for hosts (DNS names or IPs) signed by ca.

    start/end: validity as YYYYMMDDHHMMSSZ (default: now for SERVER_DAYS); the
    tests use them for an expired certificate."""
    new_key(key)
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    with tempfile.TemporaryDirectory(prefix="city-ca-") as tmp:
        work = Path(tmp)
        (work / "index.txt").write_text("")
        (work / "serial.txt").write_text(os.urandom(8).hex().upper() + "\n")  # random: no two certificates share one
        (work / "ca.cnf").write_text(
            "[ca]\ndefault_ca = local\n[local]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial.txt\n"
            "default_md = sha256\npolicy = anything\nunique_subject = no\n"
            f"default_days = {SERVER_DAYS}\n[anything]\ncommonName = supplied\n")
        (work / "ext.cnf").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={hosts[0]}", "-out", "server.csr", cwd=work)
        dates = (["-startdate", start] if start else []) + (["-enddate", end] if end else [])
        _openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", str(ca.ca_crt), "-keyfile", str(ca.ca_key),
                 "-in", "server.csr", "-extfile", "ext.cnf", "-out", str(cert), *dates, cwd=work)


def ensure_local_ca(folder: Path, hosts: list[str] | None = None) -> TlsFiles:
    """The local CA and server certificate in folder, made on first use and kept after."""
    files = TlsFiles(folder)
    if files.complete():
        return files
    new_ca(folder)
    issue_server_cert(files, files.server_crt, files.server_key, hosts or ["localhost", "127.0.0.1"])
    return files
