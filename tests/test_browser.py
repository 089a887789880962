"""The course as a student meets it: a real JupyterLab in a real browser (Playwright driving Debian's chromium).

One JupyterLab server on 127.0.0.1 serves a temporary folder with lesson 00 (its parameters cell set to
smoke mode) and the a02 solution. The tests Run All on the lesson and read what the page shows (no error
output, every figure loaded as an image, tqdm's progress bars rendered as widgets), then press the Validate
button nbgrader adds to an assignment's toolbar. A failing test saves a screenshot and names it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from conftest import IN_CI, REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASSIGNMENT = "a02_conv_arithmetic"
LESSON = "00_start_here"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_browser() -> None:
    missing = [what for what, ok in (("chromium", Path(CHROMIUM).exists()), ("playwright", _has_playwright())) if not ok]
    if missing:
        message = f"browser tests need {' and '.join(missing)} (apt-get install chromium; pip install -e '.[test]')"
        if IN_CI:
            pytest.fail("CI must run the browser tests: " + message)
        pytest.skip(message)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (with token) of a JupyterLab serving lesson 00 in smoke mode and the a02 solution."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    lesson = nbformat.read(REPO / "notebooks" / f"{LESSON}.ipynb", as_version=4)
    parameters = next(c for c in lesson.cells if "parameters" in c.metadata.get("tags", []))
    assert "SMOKE = False" in parameters.source
    parameters.source = parameters.source.replace("SMOKE = False", "SMOKE = True")
    nbformat.write(lesson, root / f"{LESSON}.ipynb")
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, root / ASSIGNMENT)
    settings = root / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the page (no virtual scrolling), so that the test sees all outputs
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    news = root / ".settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend draws figures
    log = (root / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={root / '.settings'}", f"--LabApp.workspaces_dir={root / '.workspaces'}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: see {root / 'jupyterlab.log'}")
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not answer within a minute: see {root / 'jupyterlab.log'}")
        yield f"{url}/lab/tree/{{path}}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


@contextmanager
def _screenshot_on_failure(page, path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException as error:
        page.screenshot(path=str(path), full_page=True)
        raise AssertionError(f"{error}\nscreenshot of the page: {path}") from error


KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""
RUN_FINISHED = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (document.querySelector('[data-mime-type="application/vnd.jupyter.error"]')) return 'error';
  const cells = panel.content.model.cells;
  let code = 0, done = 0;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type === 'code') { code++; if (cell.executionCount) done++; }
  }
  return code > 0 && done === code && panel.sessionContext.session.kernel.status === 'idle' ? 'done' : false;
}"""


def test_lesson_00_runs_all_in_jupyterlab_with_figures_and_progress_widgets(lab: str, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with _screenshot_on_failure(page, tmp_path / "lesson_00.png"):
        page.goto(lab.format(path=f"{LESSON}.ipynb"))
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        start = time.perf_counter()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        outcome = page.wait_for_function(RUN_FINISHED, timeout=300_000, polling=1000).json_value()
        seconds = time.perf_counter() - start
        errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]')
        assert outcome == "done" and errors.count() == 0, errors.all_inner_texts()[:1]
        images = page.locator(".jp-RenderedImage img")
        assert images.count() >= 2, images.count()
        unloaded = page.evaluate(
            "() => [...document.querySelectorAll('.jp-RenderedImage img')].filter(i => !(i.complete && i.naturalWidth > 0)).length"
        )
        assert unloaded == 0, f"{unloaded} figure(s) did not load"
        bars = page.locator(".jp-OutputArea-output .widget-hprogress")  # ipywidgets' horizontal progress bar
        assert bars.count() >= 1, "no tqdm progress bar rendered as a widget"
        assert page.locator(".jp-OutputArea-output.jp-RenderedMarkdown").count() >= 1  # rendered prose of the run
        print(f"lesson 00 (smoke) ran in the browser in {seconds:.1f} s: {images.count()} figures, {bars.count()} bars")


def test_validate_button_reports_success_on_the_solution(lab: str, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with _screenshot_on_failure(page, tmp_path / "validate.png"):
        page.goto(lab.format(path=f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"))
        button = page.locator(".validate-button").first
        button.wait_for(timeout=120_000)
        assert "Validate" in button.inner_text()
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        button.click()
        page.get_by_text("Success! Your notebook passes all the tests.").wait_for(timeout=300_000)
