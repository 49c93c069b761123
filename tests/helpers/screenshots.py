"""Where the Chromium tests save their screenshots.

docs/screenshots/ only when CITY_UPDATE_SCREENSHOTS=1 (then commit them on purpose); otherwise a
temporary folder, so a test run does not rewrite tracked pictures that differ by a pixel each time."""

import os
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot_dir() -> Path:
    wanted = os.environ.get("CITY_UPDATE_SCREENSHOTS") == "1"
    chosen = DOCS if wanted else Path(tempfile.gettempdir()) / "city-screenshots"
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


SCREENSHOTS = screenshot_dir()
