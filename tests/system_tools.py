"""What the browser and QR tests need from the system: Debian's chromium, zbar-tools, node.

Missing tools fail the test with what to install (``scripts/test`` installs them when run
as root): CI runs every test, none is ever skipped for a missing tool.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags chromium keeps dialling out of a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
_PACKAGES = {CHROMIUM: "chromium", "zbarimg": "zbar-tools", "node": "nodejs",
             "gs": "ghostscript"}


def require(tool: str) -> str:
    """The tool's path; fails the test (never skips) when it is not installed."""
    found = tool if Path(tool).is_absolute() and Path(tool).exists() else shutil.which(tool)
    if not found:
        package = _PACKAGES.get(tool, tool)
        pytest.fail(f"{tool} is missing: install Debian's {package} "
                    f"(sudo apt-get install {package}; ./scripts/test does it as root)",
                    pytrace=False)
    return found


def launch(playwright):
    """Debian's chromium, headless, through playwright."""
    return playwright.chromium.launch(executable_path=require(CHROMIUM), args=CHROMIUM_ARGS)
