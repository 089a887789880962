"""A real browser for the tests: Debian's chromium driven by Playwright (never a downloaded browser).

Shared by tests/test_browser.py (JupyterLab), tests/test_hub.py (the classroom) and tests/test_site.py (the
website). A failing page saves a full-page screenshot and names it in the failure message.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import IN_CI

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def has_playwright() -> bool:
    """Playwright's Python package is installed (the test extra)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def require_browser() -> None:
    """Skip (fail in CI) unless Debian's chromium and Playwright are both there."""
    missing = [what for what, ok in (("chromium", Path(CHROMIUM).exists()), ("playwright", has_playwright())) if not ok]
    if missing:
        message = f"browser tests need {' and '.join(missing)} (apt-get install chromium; pip install -e '.[test]')"
        if IN_CI:
            pytest.fail("CI must run the browser tests: " + message)
        pytest.skip(message)


@contextmanager
def launch_browser() -> Iterator[Browser]:
    """Debian's chromium, headless."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"],
                                     headless=True)  # fmt: skip
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def open_page(browser: Browser, screenshot: Path) -> Iterator[Page]:
    """A new page; on a failure a full-page screenshot is saved to ``screenshot`` and named in the message."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        yield page
    except Exception as error:
        raise AssertionError(f"{error}\n{save_screenshot(page, screenshot)}") from error
    finally:
        page.close()


def save_screenshot(page: Page, screenshot: Path) -> str:
    """Save a full-page screenshot; returns the line that names it for a failure message (or why there is none)."""
    try:
        page.screenshot(path=str(screenshot), full_page=True)
        return f"screenshot of the page: {screenshot}"
    except Exception as error:  # keep the test's own error visible
        return f"(no screenshot: {error})"
