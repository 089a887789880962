"""The course website (`tlcourse site`) and the Colab cell every lesson starts with.

Fast tests check the pieces: the lesson table read from the lessons, the Colab address and cell, the check
that rejects a lesson without the cell, the error for lessons not yet executed, a page's notebook. One test
builds the whole site from the session's smoke-executed lessons and reads it in chromium over file:// (no
server, no network): every page loads with its title and its images, "next" walks from the landing page
through every lesson, the badge and the download are there, and the console stays free of errors.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import time
import types
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import jupytext
import nbformat
import pytest
import tomllib
from browser import launch_browser, require_browser, save_screenshot
from conftest import REPO, LessonRunner

from tlcourse.course import site
from tlcourse.course.cli import main
from tlcourse.course.colab import colab_cell, colab_url, source_url
from tlcourse.course.lessons import Lesson, list_lessons
from tlcourse.course.pairing import lesson_sources, pair_problems, sync_lessons

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

NOTEBOOKS = REPO / "notebooks"
LESSONS = list_lessons(NOTEBOOKS)
SOURCE = "https://github.com/tlcourse/tlcourse"


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


# ---- the Colab cell ---------------------------------------------------------------------------------------------


def test_the_repository_address_is_declared_once_in_pyproject() -> None:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Source"] == SOURCE == source_url()
    assert colab_url("01_lenet.ipynb") == (
        "https://colab.research.google.com/github/tlcourse/tlcourse/blob/main/notebooks/01_lenet.ipynb"
    )
    assert f'"tlcourse @ git+{SOURCE}"' in colab_cell()


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.id)
def test_every_lesson_starts_with_the_colab_cell_before_its_parameters(lesson) -> None:
    for notebook in (jupytext.read(lesson.path.with_suffix(".py")), nbformat.read(lesson.path, as_version=4)):
        code = _code_cells(notebook)
        assert code[0].source == colab_cell(), f"{lesson.id}: run `tlcourse lessons sync`"
        assert "parameters" in code[1].metadata.get("tags", []), f"{lesson.id}: the parameters cell must come next"


def test_the_colab_cell_does_nothing_outside_colab_and_installs_the_course_on_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    assert "google.colab" not in sys.modules
    exec(colab_cell(), {})
    assert calls == []  # not on Colab: no subprocess at all

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(colab_cell(), {})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", f"tlcourse @ git+{SOURCE}"]]


def test_papermill_still_injects_the_parameters_after_the_parameters_cell() -> None:
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = load_notebook_node(str(NOTEBOOKS / "01_lenet.ipynb"))  # as papermill.execute_notebook reads it
    injected = _code_cells(parameterize_notebook(notebook, {"SMOKE": True}))
    assert injected[0].source == colab_cell()
    assert [cell.metadata.get("tags", []) for cell in injected[:3]] == [[], ["parameters"], ["injected-parameters"]]
    assert "SMOKE = True" in injected[2].source


def test_lessons_check_rejects_a_lesson_without_the_colab_cell_and_sync_puts_it_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "01_lenet.py"
    text = (NOTEBOOKS / "01_lenet.py").read_text()
    cell = f"# %%\n{colab_cell()}\n\n"
    assert text.count(cell) == 1
    source.write_text(text.replace(cell, ""))
    jupytext.write(jupytext.read(source), source.with_suffix(".ipynb"), fmt="ipynb")  # a pair in sync, without the cell
    problems = pair_problems(source)
    assert len(problems) == 1 and "not the Colab install cell" in problems[0], problems
    assert main(["lessons", "check", "--notebooks", str(tmp_path)]) == 1
    assert "01_lenet.py: the first code cell is not the Colab install cell" in capsys.readouterr().out

    assert sync_lessons(tmp_path) == [source.with_suffix(".ipynb")]
    assert source.read_text() == text  # inserted where the lesson has it: after the title, before the parameters
    assert pair_problems(source) == []
    assert main(["lessons", "check", "--notebooks", str(tmp_path)]) == 0


def test_lessons_sync_replaces_an_outdated_colab_cell(tmp_path: Path) -> None:
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"00_start_here{suffix}", tmp_path)
    source = tmp_path / "00_start_here.py"
    text = source.read_text()
    source.write_text(text.replace(colab_cell(), colab_cell("https://github.com/an-old/address")))
    assert any("Colab" in problem for problem in pair_problems(source))
    sync_lessons(tmp_path)
    assert source.read_text() == text and pair_problems(source) == []


def test_lessons_sync_keeps_a_first_cell_of_the_authors_that_mentions_colab(tmp_path: Path) -> None:
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"00_start_here{suffix}", tmp_path)
    source = tmp_path / "00_start_here.py"
    own = 'import sys\nIN_COLAB = "google.colab" in sys.modules\nDATA = "/content" if IN_COLAB else "data"'
    source.write_text(source.read_text().replace(colab_cell(), own))
    sync_lessons(tmp_path)
    text = source.read_text()
    assert own in text and text.index(colab_cell()) < text.index(own), "the author's cell was replaced"


def test_every_lesson_source_passes_the_check() -> None:
    problems = [problem for source in lesson_sources(NOTEBOOKS) for problem in pair_problems(source)]
    assert problems == []


# ---- the pieces of the site -------------------------------------------------------------------------------------


def _heading(source: Path) -> str:
    return re.search(r"^# # (.+)$", source.read_text(), re.M).group(1)


def test_the_lesson_table_is_read_from_the_lessons() -> None:
    entries = site.lesson_entries(LESSONS)
    assert [entry.lesson.id for entry in entries] == [lesson.id for lesson in LESSONS]
    table = site.lesson_table(entries).splitlines()
    assert len(table) == 2 + len(LESSONS)
    for entry, row in zip(entries, table[2:]):
        number, title = _heading(entry.lesson.path.with_suffix(".py")).split(" · ", 1)
        assert entry.lesson.number == number and entry.title == title
        assert entry.sections and not {"Parameters", "Summary", "Exercises"} & set(entry.sections)
        assert row.startswith(f"| {number} | [{title}]({entry.lesson.id}.ipynb) | {entry.sections[0]}")
        assert colab_url(entry.lesson.path.name) in row and f'href="notebooks/{entry.lesson.path.name}" download' in row
    lenet = next(entry for entry in entries if entry.lesson.id == "01_lenet")
    assert lenet.title == "LeNet-5: the network that started it" and "The data: MNIST" in lenet.sections


def test_a_new_lesson_gets_its_row_without_editing_a_list(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 42 · A made-up lesson | with a pipe\n\nIntro.\n\n```\n## not a section\n```"),
        nbformat.v4.new_markdown_cell("## Parameters"), nbformat.v4.new_markdown_cell("## 1. First part"),
        nbformat.v4.new_markdown_cell("## 2. Second part\n\ntext"), nbformat.v4.new_markdown_cell("## Summary"),
    ])  # fmt: skip
    nbformat.write(notebook, tmp_path / "42_made_up.ipynb")
    [entry] = site.lesson_entries(list_lessons(tmp_path))
    assert entry.title == "A made-up lesson | with a pipe" and entry.sections == ("First part", "Second part")
    assert "[A made-up lesson \\| with a pipe](42_made_up.ipynb) | First part · Second part |" in site.lesson_table([entry])


def test_the_landing_page_promise_comes_from_the_readme() -> None:
    title, promise = site.course_promise(REPO / "README.md")
    readme = (REPO / "README.md").read_text()
    assert readme.startswith(f"# {title}\n")
    assert promise.startswith("A Jupyter course on the convolutional networks") and promise.split()[-1] in readme


def test_lessons_not_executed_yet_are_named_with_the_command_that_makes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(NOTEBOOKS / "00_start_here.ipynb", runs)
    with pytest.raises(site.MissingLessonsError) as raised:
        site.build_site(output=tmp_path / "site", runs=runs, smoke=True, run_missing=False, notebooks=NOTEBOOKS)
    message = str(raised.value)
    assert [lesson.id for lesson in raised.value.missing] == [lesson.id for lesson in LESSONS[1:]]
    assert "01_lenet, 02_alexnet_vgg" in message and f"`tlcourse run --smoke --output {runs} 01 02 03" in message
    assert not (tmp_path / "site").exists()
    code = main(["site", "--smoke", "--runs", str(runs), "--no-run-missing", "--output", str(tmp_path / "site")])
    assert code == 2 and "have no executed notebook" in capsys.readouterr().err


def test_a_folder_that_is_not_a_site_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.txt").write_text("mine")
    with pytest.raises(site.SiteError, match="is not a site"):
        site._replace_output(tmp_path / "built", tmp_path / "site")
    assert (tmp_path / "site" / "notes.txt").read_text() == "mine"


def _executed_like_papermill() -> nbformat.NotebookNode:
    """A small notebook as papermill leaves it: Colab cell, parameters, injected parameters, a tqdm bar."""
    new_code, new_markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    bar = nbformat.v4.new_output("display_data", data={
        site.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0},
        "text/plain": "epoch 1/1:   0%|          | 0/4 [00:00<?, ?batch/s]"})  # fmt: skip
    other = nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "slider"}, "text/plain": "IntSlider()"})
    notebook = nbformat.v4.new_notebook(cells=[
        new_markdown("# 07 · A lesson\n\nIntro with $x^2$."),
        new_code(colab_cell()),
        new_code("SMOKE = False", metadata={"tags": ["parameters"]}),
        new_code("# Parameters\nSMOKE = True\n", metadata={"tags": ["injected-parameters"]}),
        new_code("fit()", outputs=[bar, other]),
    ])  # fmt: skip
    model = lambda name, **state: {"model_name": name, "state": state}
    notebook.metadata["papermill"] = {"parameters": {"SMOKE": True}, "end_time": "2026-01-02T03:04:05"}
    notebook.metadata["widgets"] = {site.WIDGET_STATE: {"state": {
        "box": model("HBoxModel", children=["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]),
        "a": model("HTMLModel", value="epoch\u20071/1:\u2007100%"), "b": model("FloatProgressModel", value=4.0, max=4.0),
        "c": model("HTMLModel", value="\u20074/4\u2007[00:01&lt;00:00,\u20073.9batch/s]"),
        "slider": model("IntSliderModel", value=3)}}}  # fmt: skip
    return notebook


def test_a_lesson_page_has_its_badges_static_progress_bars_and_labelled_parameters() -> None:
    lesson = next(lesson for lesson in LESSONS if lesson.id == "07_feature_extraction")
    page = site.page_notebook(_executed_like_papermill(), lesson)
    title = page.cells[0].source
    assert title.startswith("# 07 · A lesson\n\n<p class=\"tlcourse-badges\">")
    assert f'href="{colab_url("07_feature_extraction.ipynb")}"' in title and 'src="_static/colab-badge.svg"' in title
    assert 'href="notebooks/07_feature_extraction.ipynb" download' in title and "tlcourse run --smoke" in title
    assert "google.colab" not in "".join(cell.source for cell in page.cells)
    assert "widgets" not in page.metadata
    bar, other = page.cells[-1].outputs
    assert bar.data == {"text/html": '<div class="tlcourse-progress"><span>epoch\u20071/1:\u2007100%</span>'
                                     '<progress value="4" max="4"></progress>'
                                     "<span>\u20074/4\u2007[00:01&lt;00:00,\u20073.9batch/s]</span></div>"}  # fmt: skip
    assert other.data == {"text/plain": "IntSlider()"}
    note = next(i for i, cell in enumerate(page.cells) if "injected-parameters" in cell.metadata.get("tags", [])) - 1
    assert page.cells[note].cell_type == "markdown" and "injected by papermill" in page.cells[note].source


# ---- the whole site, in a browser ---------------------------------------------------------------------------------


class _Assets(HTMLParser):
    """The addresses a page loads by itself: src of any element, href of <link>."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name in ("src", "srcset", "data-src", "poster") or (tag == "link" and name == "href")):
                self.loaded.append(value)


def _remote_assets(output: Path) -> list[str]:
    remote = []
    for page in sorted(output.rglob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text())
        remote += [f"{page.name}: {url}" for url in parser.loaded if re.match(r"\s*(https?:)?//", url)]
    for sheet in sorted(output.rglob("*.css")):
        remote += [f"{sheet.name}: {url}" for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", sheet.read_text())]
    return remote


@contextmanager
def _screenshot_on_failure(page: Page, folder: Path) -> Iterator[list[str]]:
    """Yields a one-item list naming the page under test; a failure saves its screenshot and names it."""
    current = ["landing"]
    try:
        yield current
    except Exception as error:
        where = save_screenshot(page, folder / f"site_{current[0]}.png")
        raise AssertionError(f"{current[0]}: {error}\n{where}") from error


READY = """() => {
  if (document.readyState !== 'complete' || ![...document.images].every(image => image.complete)) return false;
  if (!window.MathJax) return true;  // pages without math do not load it
  // after MathJax's start (its first typesetting) and whatever it queued since; the hook must return nothing
  return !!MathJax.Hub && new Promise(done => MathJax.Hub.Register.StartupHook('End', () => { MathJax.Hub.Queue(() => done(true)); }));
}"""
BROKEN_IMAGES = "() => [...document.images].filter(image => !(image.naturalWidth > 0)).map(image => image.src)"


def _follow(page: Page, link: Locator, target: str) -> None:
    """Click a link and wait until the page it leads to, ``target``, has loaded its images and typeset its math."""
    link.click()
    page.wait_for_url(re.compile(rf"/{re.escape(target)}(#.*)?$"), timeout=30_000)
    page.wait_for_function(READY, timeout=30_000)


def _check_lesson_page(page: Page, entry: site.LessonEntry, executed: nbformat.NotebookNode) -> int:
    """One lesson page: title, every image loaded, math typeset, badge, download; returns its number of images."""
    lesson = entry.lesson
    assert entry.title in page.locator("article h1").first.inner_text()
    assert entry.title in page.title()
    assert page.evaluate(BROKEN_IMAGES) == []
    figures = page.locator("article .cell_output img").count()
    assert figures >= site.figure_count(executed), f"{figures} images on the page, {site.figure_count(executed)} in the notebook"
    badge = page.locator("article a.tlcourse-colab")
    assert badge.get_attribute("href") == colab_url(lesson.path.name)
    assert badge.locator("img").evaluate("image => image.naturalWidth") > 0
    if "$" in "".join(cell.source for cell in executed.cells if cell.cell_type == "markdown"):
        assert page.locator("article .MathJax, article .MathJax_Display").count() > 0, "no math typeset"
    href = page.locator("article a.tlcourse-download").get_attribute("href")
    assert href == f"notebooks/{lesson.path.name}"  # a browser shows a file:// notebook: served, it downloads (below)
    _assert_clean_lesson(Path(urllib.parse.urlparse(page.url).path).parent / href, lesson)
    return figures


def _assert_clean_lesson(path: Path, lesson: Lesson) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert [cell.source for cell in notebook.cells] == [cell.source for cell in nbformat.read(lesson.path, as_version=4).cells]
    assert not any(cell.outputs or cell.execution_count for cell in _code_cells(notebook))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no line per request on the test's output
        pass


@contextmanager
def _static_host(folder: Path) -> Iterator[str]:
    """The folder served over HTTP on 127.0.0.1, as any static host would; yields its base URL."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder))) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


@pytest.mark.timeout(1800)  # the lessons run here (about 8 minutes on 2 cores) unless other tests ran them already
def test_the_site_built_from_the_smoke_lessons_reads_offline_in_a_browser(
    smoke_lesson: LessonRunner, shared_data_root: Path, tmp_path: Path
) -> None:
    require_browser()
    runs = {lesson.id: smoke_lesson(lesson.id) for lesson in LESSONS}
    assert [lesson for lesson, run in runs.items() if not run.ok] == [], "a smoke lesson failed: the site would show its error"
    folders = {Path(run.output_notebook).parent for run in runs.values()}
    assert len(folders) == 1, folders
    messages: list[str] = []
    start = time.perf_counter()
    built = site.build_site(output=tmp_path / "site", runs=folders.pop(), smoke=True, run_missing=False,
                            notebooks=NOTEBOOKS, say=messages.append)  # fmt: skip
    build_seconds = time.perf_counter() - start
    assert built.index == (tmp_path / "site" / "index.html").resolve() and built.ran == []
    assert built.warnings == [], "\n".join(built.warnings)
    assert _remote_assets(built.index.parent) == []
    entries = site.lesson_entries(LESSONS)
    executed = {entry.lesson.id: nbformat.read(runs[entry.lesson.id].output_notebook, as_version=4) for entry in entries}

    errors: list[str] = []
    start = time.perf_counter()
    with launch_browser() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        served: list[str] = []  # the static host's address, once it runs: the only one the pages may reach
        remote = lambda url: re.match(r"(https?|wss?)://", url) is not None and not (served and url.startswith(served[0]))
        context.route(remote, lambda route: (errors.append(f"network: {route.request.url}"), route.abort()))
        page = context.new_page()
        page.on("console", lambda message: message.type == "error" and errors.append(f"console: {message.text}"))
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        page.on("requestfailed", lambda request: "ERR_ABORTED" not in (request.failure or "")
                and errors.append(f"failed: {request.url} {request.failure}"))  # fmt: skip
        figures = 0
        with _screenshot_on_failure(page, tmp_path) as current:
            page.goto(built.index.as_uri())
            page.wait_for_function(READY, timeout=30_000)
            assert page.locator("article h1").first.inner_text().startswith("tlcourse")
            assert page.locator("article table tbody tr").count() == len(entries)
            sidebar = page.locator("nav.bd-links a.reference.internal")
            assert [sidebar.nth(i).get_attribute("href") for i in range(1, sidebar.count())] == [e.page for e in entries]
            assert page.evaluate(BROKEN_IMAGES) == []
            for entry in entries:  # "next" from the landing page through every lesson
                current[0] = entry.lesson.id
                _follow(page, page.locator("a.right-next"), entry.page)
                figures += _check_lesson_page(page, entry, executed[entry.lesson.id])
            assert page.locator("a.right-next").count() == 0  # the last lesson
            current[0] = "sidebar"
            _follow(page, sidebar.first, "index.html")  # back to the landing page from the sidebar
            _follow(page, page.get_by_role("link", name=entries[1].title, exact=True).first, entries[1].page)  # a table row
            assert errors == [], "\n".join(errors)

            current[0] = "served"  # the same files from a static host: "Download notebook" downloads the lesson
            with _static_host(built.index.parent) as base:
                served.append(base)
                page.goto(f"{base}{entries[1].page}")
                page.wait_for_function(READY, timeout=30_000)
                with page.expect_download() as download:
                    page.locator("article a.tlcourse-download").click()
                assert download.value.suggested_filename == entries[1].lesson.path.name
                _assert_clean_lesson(Path(download.value.path()), entries[1].lesson)
                assert page.evaluate(BROKEN_IMAGES) == [] and errors == [], "\n".join(errors)
    browser_seconds = time.perf_counter() - start
    print(f"site of {len(entries)} lessons built in {build_seconds:.1f} s, read in chromium in {browser_seconds:.1f} s "
          f"({figures} figures); {'; '.join(messages) or 'no warnings'}")  # fmt: skip
    assert figures >= 3 * len(entries), f"only {figures} figures on {len(entries)} lesson pages"
    assert build_seconds < 180 and browser_seconds < 180
