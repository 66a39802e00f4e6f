"""The browser the dashboard's tests and benchmark drive: Debian's chromium through Playwright,
never a downloaded build (scripts/install.sh installs it), with nothing in the background
reaching the internet."""

from __future__ import annotations

from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def launch(playwright: Playwright) -> Browser:
    """Headless chromium from apt."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
