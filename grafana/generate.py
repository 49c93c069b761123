"""Render the dashboards to JSON files, and check the committed files are current."""

import json
from pathlib import Path
from typing import Any

from grafana.boards import all_dashboards

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def render(dashboard: dict[str, Any]) -> str:
    """Stable text: sorted keys and a final newline, so a diff shows only real changes."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text for every dashboard."""
    return {f"{board.uid}.json": render(board.to_json()) for board in all_dashboards()}


def write_all(out_dir: Path = DASHBOARD_DIR) -> dict[str, str]:
    """Write every dashboard; returns file name -> "created", "updated" or "unchanged"."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = {}
    for name, text in rendered().items():
        path = out_dir / name
        old = path.read_text() if path.exists() else None
        if old != text:
            path.write_text(text)
        outcome[name] = "unchanged" if old == text else ("created" if old is None else "updated")
    return outcome


def stale_files(out_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Files that differ from what the code generates, are missing, or are left over."""
    expected = rendered()
    stale = [name for name, text in expected.items()
             if not (out_dir / name).exists() or (out_dir / name).read_text() != text]
    if out_dir.exists():
        stale += sorted(p.name for p in out_dir.glob("*.json") if p.name not in expected)
    return stale
