"""What `city device flash` writes to a MicroPython board, and the mpremote
command that writes it: the firmware (edge/), a main.py that starts the agent,
and the device's config.json with its broker credentials."""

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

EDGE_DIR = Path(__file__).resolve().parent.parent / "edge"
BOARD_MAIN = 'from edge.main import main\n\nmain("/config.json")\n'
REDACTED = "<issued when flashing>"


@dataclass
class FlashPlan:
    port: str
    config: dict
    firmware: list[tuple[Path, str]] = field(default_factory=list)  # (file here, path on the board)

    def files(self) -> list[dict]:
        """Everything that lands on the board, with sizes; the password is never listed."""
        rows = [{"board_path": remote, "source": str(local), "bytes": local.stat().st_size}
                for local, remote in self.firmware]
        rows.append({"board_path": "main.py", "source": "(generated)", "bytes": len(BOARD_MAIN)})
        rows.append({"board_path": "config.json", "source": "(generated)", "bytes": len(self.config_json(REDACTED))})
        return rows

    def config_json(self, password: str) -> str:
        return json.dumps(self.config | {"password": password}, indent=1, sort_keys=True)

    def stage(self, folder: Path, password: str) -> None:
        """Lay the board's files out in `folder` exactly as they go on the flash."""
        for local, remote in self.firmware:
            target = folder / remote
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        (folder / "main.py").write_text(BOARD_MAIN)
        (folder / "config.json").write_text(self.config_json(password))

    def command(self, folder: Path) -> list[str]:
        """One mpremote run: make the folders (an existing one is fine: re-flashing), copy every
        file to its explicit board path, then reset the board so it starts the agent."""
        folders = sorted({str(parent) for _, remote in self.firmware for parent in Path(remote).parents} - {"."})
        mkdirs = f"import os\nfor d in {tuple(folders)!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n"
        command = ["mpremote", "connect", self.port, "exec", mkdirs]
        for remote in [remote for _, remote in self.firmware] + ["main.py", "config.json"]:
            command += ["+", "fs", "cp", str(folder / remote), ":" + remote]
        return command + ["+", "reset"]


def firmware_files(edge_dir: Path = EDGE_DIR) -> list[tuple[Path, str]]:
    """The firmware's Python files (no caches, no tests), as (local, board path)."""
    files = sorted(p for p in edge_dir.rglob("*.py") if "__pycache__" not in p.parts)
    return [(p, "edge/" + p.relative_to(edge_dir).as_posix()) for p in files]


def plan_flash(device: dict, port: str, mqtt_host: str, mqtt_port: int, config: dict | None,
               source: str = "synthetic") -> FlashPlan:
    """The files for one device; `config` is the device's last published config, if any."""
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
    }
    return FlashPlan(port=port, config=board_config, firmware=firmware_files())
