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
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
from browser import launch_browser, open_page, require_browser
from conftest import REPO, free_port, wait_until_up

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ASSIGNMENT = "a02_conv_arithmetic"
LESSON = "00_start_here"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (with token) of a JupyterLab serving lesson 00 in smoke mode and the a02 solution."""
    require_browser()
    root = tmp_path_factory.mktemp("lab")
    lesson = nbformat.read(REPO / "notebooks" / f"{LESSON}.ipynb", as_version=4)
    parameters = next(c for c in lesson.cells if "parameters" in c.metadata.get("tags", []))
    assert "SMOKE = False" in parameters.source
    parameters.source = parameters.source.replace("SMOKE = False", "SMOKE = True")
    nbformat.write(lesson, root / f"{LESSON}.ipynb")
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, root / ASSIGNMENT)
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                             nbformat.v4.new_code_cell("raise ValueError('boom')")])  # fmt: skip
    broken.metadata["kernelspec"] = lesson.metadata["kernelspec"]
    nbformat.write(broken, root / "broken.ipynb")
    settings = root / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the page (no virtual scrolling), so that the test sees all outputs
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    news = root / ".settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend draws figures
    for variable, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython")):
        env[variable] = str(root / ".home" / folder)  # the user's own Jupyter settings and kernels stay out
    log = (root / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={root / '.settings'}",
         f"--LabApp.workspaces_dir={root / '.workspaces'}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(lambda: urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2), server, "JupyterLab",
                      root / "jupyterlab.log")  # fmt: skip
        # each test opens its page in its own, fresh workspace (no state restored from another test)
        yield f"{url}/lab/workspaces/{{workspace}}/tree/{{path}}?reset&token={token}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser(lab: str) -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright (never a downloaded browser)."""
    with launch_browser() as chromium:
        yield chromium


KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""
RUN_FINISHED = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  let code = 0, done = 0;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    code++;
    if (cell.executionCount) done++;
    for (let j = 0; j < cell.outputs.length; j++) {
      const output = cell.outputs.get(j).toJSON();
      if (output.output_type === 'error') return `error in cell ${i}: ${output.ename}: ${output.evalue}`;
    }
  }
  return code > 0 && done === code && panel.sessionContext.session.kernel.status === 'idle' ? 'done' : false;
}"""
IMAGES_LOADED = """() => {
  const images = [...document.querySelectorAll('.jp-RenderedImage img')];
  return images.length > 0 && images.every(image => image.complete && image.naturalWidth > 0) ? images.length : false;
}"""


@pytest.mark.timeout(600)
def test_lesson_00_runs_all_in_jupyterlab_with_figures_and_progress_widgets(lab: str, browser: Browser,
                                                                            tmp_path: Path) -> None:  # fmt: skip
    with open_page(browser, tmp_path / "lesson_00.png") as page:
        page.goto(lab.format(workspace="lesson", path=f"{LESSON}.ipynb"))
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        start = time.perf_counter()
        # start Run All without waiting for it in evaluate() (which has no timeout); poll the model instead
        page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        outcome = page.wait_for_function(RUN_FINISHED, timeout=300_000, polling=1000).json_value()
        seconds = time.perf_counter() - start
        assert outcome == "done", outcome
        figures = page.wait_for_function(IMAGES_LOADED, timeout=30_000).json_value()
        assert figures >= 2, figures
        bars = page.locator(".jp-OutputArea-output .widget-hprogress")  # ipywidgets' horizontal progress bar
        assert bars.count() >= 1, "no tqdm progress bar rendered as a widget"
        table = page.locator(".jp-OutputArea-output", has_text="History(")  # the table fit prints when it is done
        assert table.count() == 1 and "| epoch |" in table.first.inner_text(), "fit's per-epoch table is missing"
        print(f"lesson 00 (smoke) ran in the browser in {seconds:.1f} s: {figures} figures, {bars.count()} bars")


@pytest.mark.timeout(300)
def test_an_error_in_a_cell_is_reported_with_its_cell(lab: str, browser: Browser, tmp_path: Path) -> None:
    """The check the lesson test relies on, shown to fail: a cell that raises is found, with its message."""
    with open_page(browser, tmp_path / "broken.png") as page:
        page.goto(lab.format(workspace="broken", path="broken.ipynb"))
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        outcome = page.wait_for_function(RUN_FINISHED, timeout=120_000, polling=500).json_value()
        assert outcome == "error in cell 1: ValueError: boom", outcome


@pytest.mark.timeout(600)
def test_validate_button_reports_success_on_the_solution(lab: str, browser: Browser, tmp_path: Path) -> None:
    with open_page(browser, tmp_path / "validate.png") as page:
        page.goto(lab.format(workspace="validate", path=f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"))
        button = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .validate-button")  # the open notebook's
        button.wait_for(timeout=120_000)
        assert "Validate" in button.inner_text()
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        button.click()
        page.get_by_text("Success! Your notebook passes all the tests.").wait_for(timeout=300_000)
