"""Browser tests: headless Chromium from the OS packages (`make browser-deps`), driven by Playwright.

Playwright drives /usr/bin/chromium (never a browser it downloads itself), with a fresh profile per test
and no background traffic. Tests skip with the reason when Chromium or Playwright is absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facesearch.settings import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page(tmp_path):
    """A page of a fresh headless Chromium (its own --user-data-dir under tmp_path)."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip(
            "Chromium is not installed: run `make browser-deps` (OS packages chromium, chromium-driver)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed: `make browser-deps`"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            # The console forbids eval (its CSP); Playwright's wait_for_function needs it in tests only.
            bypass_csp=True,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            context.close()


def shot(page, name: str) -> Path:
    """Save a full-page screenshot of the current step under build/screenshots/."""
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
