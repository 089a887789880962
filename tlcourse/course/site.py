"""The course as a static website: ``tlcourse site`` turns the executed lessons into HTML.

The pages are the notebooks that ``tlcourse run`` executed (``runs/full/``, or ``runs/smoke/`` with
``--smoke``), rendered by Sphinx with MyST-NB and sphinx-book-theme; nothing is executed during the build
and nothing is downloaded, at build time or when the pages are read: MathJax (from the PyPI package
``jupyter-server-mathjax``), the theme's scripts, fonts and the Colab badge are all files of the site.
It opens from disk (``file://.../index.html``) and from any static host (e.g. GitHub Pages).

Each lesson page starts with an "Open in Colab" badge and a link to download the clean lesson notebook
(copied into the site's ``notebooks/``); tqdm's progress bars (widgets, which would need widget scripts
from a CDN) are drawn as they ended, in plain HTML; papermill's injected-parameters cell is labelled.
"""

from __future__ import annotations

import copy
import html
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from tlcourse.course.colab import colab_url, source_url
from tlcourse.course.lessons import Lesson, default_runs, list_lessons, notebooks_dir, run_lesson
from tlcourse.course.site_assets import COLAB_BADGE, COLAB_BADGE_FILE, SITE_CSS, SITE_CSS_FILE

__all__ = [
    "LessonEntry",
    "MissingLessonsError",
    "SiteBuild",
    "SiteError",
    "build_site",
    "course_promise",
    "figure_count",
    "lesson_entries",
    "lesson_table",
    "missing_lessons",
    "page_notebook",
]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
SITE_MARKER = ".tlcourse-site"  # an output folder holding it is a site this command built, safe to replace
CLEAN_FOLDER = "notebooks"  # the site's folder of downloadable (unexecuted) lesson notebooks
ASSIGNMENTS_ANCHOR = "graded-assignments-students"  # README's "Graded assignments (students)" on GitHub
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"  # the one combined configuration jupyter-server-mathjax ships
_SKIPPED_SECTIONS = {"parameters", "summary", "exercises"}
# MathJax 2's MathML output declares these @font-face rules on TeX fonts that jupyter-server-mathjax does not ship:
# each becomes a local() font (absent, so the browser uses the next font), not a request for a missing file.
_MATHJAX_TEX_FONT_FACES = {
    f"@font-face /*{number}*/": {"font-family": f"MathJax_{name}-WEB", "src": f"local('MathJax_{name}')",
                                 **({"font-weight": "bold"} if bold else {})}
    for number, (name, bold) in enumerate([("Caligraphic", False), ("Caligraphic", True), ("AMS", False),
                                           ("Script", False), ("Fraktur", False), ("Fraktur", True)], start=1)
}  # fmt: skip


class SiteError(RuntimeError):
    """The website cannot be built as asked (the message says why and what to do)."""


class MissingLessonsError(SiteError):
    """Lessons have no executed notebook in the runs folder and were not to be run."""

    def __init__(self, missing: Sequence[Lesson], runs: Path, smoke: bool) -> None:
        self.missing = list(missing)
        numbers = " ".join(lesson.number for lesson in self.missing)
        command = f"tlcourse run{' --smoke' if smoke else ''} --output {runs} {numbers}"
        super().__init__(
            f"{len(self.missing)} lesson(s) have no executed notebook in {runs}/: "
            f"{', '.join(lesson.id for lesson in self.missing)}. Make them with `{command}`, "
            "or let `tlcourse site` run them (drop --no-run-missing)."
        )


@dataclass(frozen=True)
class LessonEntry:
    """One row of the landing page: a lesson's number, title and sections, read from the lesson itself."""

    lesson: Lesson
    title: str
    sections: tuple[str, ...]

    @property
    def page(self) -> str:
        """The page's file name in the site."""
        return f"{self.lesson.id}.html"


@dataclass
class SiteBuild:
    """What ``build_site`` made: the landing page, the lessons it holds, the time it took and Sphinx's warnings."""

    index: Path
    lessons: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)


def _markdown_lines(notebook: nbformat.NotebookNode) -> list[str]:
    """Every line of the notebook's markdown cells, fenced code blocks left out."""
    lines, fenced = [], False
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced:
                lines.append(line)
    return lines


def lesson_heading(notebook: nbformat.NotebookNode) -> str:
    """The first level-1 heading of a lesson, e.g. "01 · LeNet-5: the network that started it"."""
    for line in _markdown_lines(notebook):
        if line.startswith("# "):
            return line[2:].strip()
    raise SiteError("the lesson has no level-1 heading (# Title) in its markdown")


def lesson_title(notebook: nbformat.NotebookNode) -> str:
    """The lesson's heading without its number: "LeNet-5: the network that started it"."""
    return re.sub(r"^\d+\s*[·:.-]\s*", "", lesson_heading(notebook))


def lesson_sections(notebook: nbformat.NotebookNode) -> tuple[str, ...]:
    """The lesson's level-2 headings, unnumbered, without Parameters, Summary and Exercises: what it teaches."""
    found = []
    for line in _markdown_lines(notebook):
        if line.startswith("## "):
            text = re.sub(r"^\d+\.\s*", "", line[3:].strip())
            if text.lower() not in _SKIPPED_SECTIONS:
                found.append(text)
    return tuple(found)


def lesson_entries(lessons: Sequence[Lesson]) -> list[LessonEntry]:
    """The landing page's rows, read from the (clean) lesson notebooks."""
    entries = []
    for lesson in lessons:
        notebook = nbformat.read(lesson.path, as_version=4)
        entries.append(LessonEntry(lesson, lesson_title(notebook), lesson_sections(notebook)))
    return entries


def _md_cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell or link text."""
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def lesson_table(entries: Sequence[LessonEntry], url: str | None = None) -> str:
    """The Markdown table of lessons: number, linked title, what it teaches, and where to open the notebook."""
    rows = ["| # | lesson | what it teaches | notebook |", "| --- | --- | --- | --- |"]
    for entry in entries:
        notebook = entry.lesson.path.name
        links = (f"[Colab]({colab_url(notebook, url)}) · "
                 f'<a href="{CLEAN_FOLDER}/{notebook}" download>download</a>')  # fmt: skip
        sections = " · ".join(_md_cell(section) for section in entry.sections)
        rows.append(f"| {entry.lesson.number} | [{_md_cell(entry.title)}]({entry.lesson.id}.ipynb) | {sections} | {links} |")
    return "\n".join(rows)


def course_promise(readme: Path) -> tuple[str, str]:
    """The course's title and promise: README's level-1 heading and the paragraph under it."""
    if not readme.is_file():
        from importlib import metadata

        return "tlcourse", metadata.metadata("tlcourse").get("Summary", "")
    lines = readme.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if start is None:
        raise SiteError(f"{readme} has no level-1 heading to take the course's title from")
    paragraph: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip():
            if line.startswith("#"):
                break
            paragraph.append(line.strip())
        elif paragraph:
            break
    return lines[start][2:].strip(), " ".join(paragraph)


def missing_lessons(lessons: Sequence[Lesson], runs: Path) -> list[Lesson]:
    """The lessons that have no executed notebook in ``runs``."""
    return [lesson for lesson in lessons if not (runs / lesson.path.name).is_file()]


def _run_mode(notebook: nbformat.NotebookNode) -> bool | None:
    """True for a smoke run, False for a full run, None when papermill recorded no parameters."""
    parameters = notebook.metadata.get("papermill", {}).get("parameters", {})
    return bool(parameters["SMOKE"]) if "SMOKE" in parameters else None


def _run_command(smoke: bool | None) -> str:
    return "tlcourse run --smoke" if smoke else "tlcourse run"


def _progress_html(model_id: str, state: dict[str, Any]) -> str | None:
    """A tqdm bar (an HBox of HTML, FloatProgress, HTML) as static HTML in its last state; None for other widgets."""
    box = state.get(model_id, {})
    if box.get("model_name") != "HBoxModel":
        return None
    children = [state.get(str(child).removeprefix("IPY_MODEL_"), {}) for child in box.get("state", {}).get("children", [])]
    if [child.get("model_name") for child in children] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    prefix, bar, suffix = (child.get("state", {}) for child in children)
    text = lambda widget: html.escape(html.unescape(str(widget.get("value", ""))))
    value, maximum = bar.get("value"), bar.get("max")
    attributes = f' value="{float(value):g}" max="{float(maximum):g}"' if value is not None and maximum else ""
    return (f'<div class="tlcourse-progress"><span>{text(prefix)}</span><progress{attributes}></progress>'
            f"<span>{text(suffix)}</span></div>")  # fmt: skip


def _render_widgets(notebook: nbformat.NotebookNode) -> None:
    """Replace widget outputs by static HTML (tqdm bars) or their text/plain; drop the saved widget state."""
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                static = _progress_html(data[WIDGET_VIEW].get("model_id", ""), state)
                if static is not None:
                    output["data"] = {"text/html": static}
                elif "text/plain" in data:
                    output["data"] = {"text/plain": data["text/plain"]}
                else:
                    continue
            outputs.append(output)
        if cell.cell_type == "code":
            cell.outputs = outputs
    notebook.metadata.pop("widgets", None)


def _label_injected_parameters(notebook: nbformat.NotebookNode) -> None:
    """Put a note before papermill's injected-parameters cell saying what it is."""
    command = _run_command(_run_mode(notebook))
    for index, cell in enumerate(notebook.cells):
        if "injected-parameters" in cell.metadata.get("tags", []):
            note = nbformat.v4.new_markdown_cell(
                "```{note}\nThe next cell was injected by papermill when `" + command + "` executed this page: its "
                "values replace those of the `parameters` cell above. The notebook you download does not have it.\n```"
            )
            notebook.cells.insert(index, note)
            return


def _header(lesson: Lesson, notebook: nbformat.NotebookNode, url: str | None) -> str:
    """The HTML block at the top of a lesson page: Colab badge, download link, and how the page was executed."""
    smoke = _run_mode(notebook)
    mode = {True: "in smoke mode (small data, few epochs)", False: "in full", None: ""}[smoke]
    ended = str(notebook.metadata.get("papermill", {}).get("end_time") or "")[:10]
    when = f" on {ended}" if ended else ""
    return (
        f'<p class="tlcourse-badges"><a class="tlcourse-colab" href="{html.escape(colab_url(lesson.path.name, url))}">'
        f'<img src="_static/{COLAB_BADGE_FILE}" alt="Open in Colab" width="117" height="20"></a> '
        f'<a class="tlcourse-download" href="{CLEAN_FOLDER}/{lesson.path.name}" download>Download notebook</a></p>\n'
        f'<p class="tlcourse-run">This page shows the lesson as <code>{_run_command(smoke)}</code> executed it '
        f"{mode}{when}; the notebook you download or open in Colab is the lesson itself, without outputs.</p>"
    )


def page_notebook(executed: nbformat.NotebookNode, lesson: Lesson, url: str | None = None) -> nbformat.NotebookNode:
    """The executed lesson as its page shows it: header under the title, no Colab cell, static widgets, labelled parameters."""
    notebook = copy.deepcopy(executed)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if code and "google.colab" in code[0].source:  # the page has its badge; the cell does nothing off Colab
        notebook.cells.remove(code[0])
    _render_widgets(notebook)
    _label_injected_parameters(notebook)
    first = next(cell for cell in notebook.cells if cell.cell_type == "markdown")
    lines = first.source.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith("# ")), -1) + 1
    first.source = "\n".join([*lines[:at], "", _header(lesson, notebook, url), "", *lines[at:]])
    return notebook


def _landing_page(entries: Sequence[LessonEntry], title: str, promise: str, url: str, mode: str) -> str:
    """The site's index.md: the promise, the lesson table, the assignments, and the (hidden) navigation tree."""
    toctree = "\n".join(entry.lesson.id for entry in entries)
    return f"""# {title}

{promise}

## Lessons

{lesson_table(entries, url)}

Every lesson page shows the lesson {mode}, with its figures and measured numbers; open it in Colab or
download the notebook to run it yourself. The course's code, tests and data helpers live in the
[repository]({url}).

## Assignments

The graded assignments (nbgrader) and how to submit them are described in the
[README's assignments section]({url}#{ASSIGNMENTS_ANCHOR}).

```{{toctree}}
:hidden:
:maxdepth: 1
:caption: Lessons

{toctree}
```
"""


def _mathjax_static() -> Path:
    """MathJax 2.7's files as the PyPI package jupyter-server-mathjax ships them."""
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def sphinx_settings(url: str) -> dict[str, Any]:
    """The Sphinx configuration of the site (written to its conf.py)."""
    return {
        "project": "tlcourse",
        "html_title": "tlcourse",
        "extensions": ["myst_nb", "sphinx.ext.mathjax", "sphinx.ext.githubpages"],
        "exclude_patterns": ["_extra", "_static", "jupyter_execute", "**/.ipynb_checkpoints"],
        "html_theme": "sphinx_book_theme",
        "html_theme_options": {
            "repository_url": url,
            "repository_branch": "main",
            "path_to_docs": "notebooks",
            "use_repository_button": True,
            "use_download_button": False,
            "home_page_in_toc": True,
            "show_navbar_depth": 1,
            "show_toc_level": 2,
        },
        "html_context": {"default_mode": "auto"},  # light or dark as the reader's system is (none: a console error)
        "html_static_path": ["_static"],
        "html_css_files": [SITE_CSS_FILE],
        "html_extra_path": ["_extra"],
        "html_copy_source": False,
        "html_show_sourcelink": False,
        "html_show_copyright": False,
        "nb_execution_mode": "off",  # the pages are the notebooks `tlcourse run` executed
        "nb_ipywidgets_js": {},  # never the widget scripts from a CDN (the widgets are drawn as static HTML)
        "nb_merge_streams": True,
        "nb_render_markdown_format": "gfm",  # the tables lessons display as text/markdown
        "myst_enable_extensions": ["dollarmath"],
        "myst_update_mathjax": False,  # MathJax 2 is configured below, not MyST's MathJax 3/4 settings
        "mathjax_path": f"mathjax/MathJax.js?config={MATHJAX_CONFIG}",  # relative to _static/: a file of the site
        "mathjax2_config": {
            "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True},
            "HTML-CSS": {
                "availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None,  # the fonts shipped
                # MathJax's stand-in font is url('about:blank'), which a page opened from disk may not fetch (CORS)
                "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
            },
            # the hidden MathML for screen readers is styled with MathJax's TeX fonts, which the package lacks
            "NativeMML": {"styles": _MATHJAX_TEX_FONT_FACES},
            "messageStyle": "none",
        },
    }


def _write_sources(source: Path, entries: Sequence[LessonEntry], runs: Path, url: str, readme: Path) -> list[str]:
    """The Sphinx project: conf.py, index.md, one page per lesson, clean notebooks, static files; the lessons without figures."""
    title, promise = course_promise(readme)
    static, clean = source / "_static", source / "_extra" / CLEAN_FOLDER
    clean.mkdir(parents=True)
    shutil.copytree(_mathjax_static(), static / "mathjax")
    (static / COLAB_BADGE_FILE).write_text(COLAB_BADGE)
    (static / SITE_CSS_FILE).write_text(SITE_CSS)
    modes, without_figures = set(), []
    for entry in entries:
        executed = nbformat.read(runs / entry.lesson.path.name, as_version=4)
        modes.add(_run_mode(executed))
        if not figure_count(executed):
            without_figures.append(entry.lesson.id)
        nbformat.write(page_notebook(executed, entry.lesson, url), source / entry.lesson.path.name)
        shutil.copy2(entry.lesson.path, clean / entry.lesson.path.name)
    mode = {frozenset({True}): "as `tlcourse run --smoke` executed it (smoke mode: small data, few epochs)",
            frozenset({False}): "as `tlcourse run` executed it (full mode)"}.get(frozenset(modes), "as it was executed")  # fmt: skip
    (source / "index.md").write_text(_landing_page(entries, title, promise, url, mode))
    settings = sphinx_settings(url)
    (source / "conf.py").write_text("# Written by `tlcourse site`.\n" + "".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    return without_figures


def _run_sphinx(source: Path, html_dir: Path, doctrees: Path, parallel: int) -> tuple[int, list[str]]:
    """Build the HTML with Sphinx in this process; its status and the warnings it gave."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    warnings = io.StringIO()
    with patch_docutils(source), docutils_namespace():
        app = Sphinx(source, source, html_dir, doctrees, "html", status=None, warning=warnings,
                     freshenv=True, parallel=parallel)  # fmt: skip
        app.build(force_all=True)
        status = app.statuscode
    return status, [line for line in warnings.getvalue().splitlines() if line.strip()]


def _replace_output(built: Path, output: Path) -> None:
    """Put the built site at ``output``, replacing a site built there before (and nothing else)."""
    if output.exists():
        if not output.is_dir() or (any(output.iterdir()) and not (output / SITE_MARKER).is_file()):
            raise SiteError(f"{output} exists and is not a site `tlcourse site` built: choose another --output or remove it")
        shutil.rmtree(output)
    shutil.copytree(built, output)
    sources = output / "_sources"  # Sphinx makes it even when it copies no source
    if sources.is_dir() and not any(sources.iterdir()):
        sources.rmdir()
    (output / SITE_MARKER).write_text("Built by `tlcourse site`; the next build replaces this folder.\n")


def _execute(missing: Sequence[Lesson], runs: Path, smoke: bool, device: str, say: Callable[[str], None]) -> list[str]:
    """Run the missing lessons with papermill into ``runs``; the ids of those that failed."""
    failed = []
    for lesson in missing:  # run_lesson's kernels draw their figures inline, whatever MPLBACKEND says
        run = run_lesson(lesson, runs, smoke=smoke, device=device)
        say(f"  ran {lesson.id} ({'smoke' if smoke else 'full'} mode): {'ok' if run.ok else 'FAILED'} ({run.seconds:.1f} s)")
        if not run.ok:
            failed.append(f"{lesson.id}: {run.error}")
    return failed


def failed_runs(runs: Path) -> list[str]:
    """The lessons that ``results.json`` in ``runs`` records as failed, with their errors (their pages show them)."""
    import json

    try:
        recorded = json.loads((runs / "results.json").read_text())
    except (OSError, ValueError):
        return []
    return [f"{run.get('lesson')} failed when it was run ({run.get('error')}): its page shows the error"
            for run in recorded if isinstance(run, dict) and not run.get("ok", True)]  # fmt: skip


def figure_count(notebook: nbformat.NotebookNode) -> int:
    """How many images (figures) the notebook's outputs hold."""
    return sum(any(mime.startswith("image/") for mime in output.get("data", {}))
               for cell in notebook.cells for output in cell.get("outputs", []))  # fmt: skip


def build_site(
    *,
    output: str | os.PathLike[str] = "site",
    runs: str | os.PathLike[str] | None = None,
    smoke: bool = False,
    run_missing: bool = True,
    notebooks: str | os.PathLike[str] | None = None,
    device: str = "auto",
    parallel: int = 0,
    say: Callable[[str], None] = print,
) -> SiteBuild:
    """Build the website from the executed lessons in ``runs`` (default ``runs/full`` or ``runs/smoke``) into ``output``."""
    start = time.perf_counter()
    runs_dir = Path(runs) if runs is not None else default_runs(smoke)
    lessons = list_lessons(notebooks)
    missing = missing_lessons(lessons, runs_dir)
    ran: list[str] = []
    if missing and not run_missing:
        raise MissingLessonsError(missing, runs_dir, smoke)
    if missing:
        say(f"Running {len(missing)} lesson(s) missing from {runs_dir}/ first: {', '.join(m.id for m in missing)}")
        for problem in _execute(missing, runs_dir, smoke, device, say):
            say(f"  warning: {problem} (its page shows the error)")
        ran = [lesson.id for lesson in missing]
    for problem in failed_runs(runs_dir):
        say(f"warning: {problem}")
    url = source_url()
    entries = lesson_entries(lessons)
    with tempfile.TemporaryDirectory(prefix="tlcourse-site-") as work:
        source, html_dir = Path(work) / "source", Path(work) / "build" / "html"
        source.mkdir()
        without_figures = _write_sources(source, entries, runs_dir, url, notebooks_dir(notebooks).parent / "README.md")
        if without_figures:
            numbers = " ".join(lesson_id[:2] for lesson_id in without_figures)
            say(f"warning: no figures in the executed {', '.join(without_figures)} (run by an older tlcourse with "
                f"MPLBACKEND=Agg?); to draw them, rerun: `{_run_command(smoke)} --output {runs_dir} {numbers}`")
        status, warnings = _run_sphinx(source, html_dir, Path(work) / "build" / "doctrees", parallel)
        if status != 0:
            raise SiteError("Sphinx failed to build the site:\n" + "\n".join(warnings))
        _replace_output(html_dir, Path(output))
    index = (Path(output) / "index.html").resolve()
    return SiteBuild(index=index, lessons=[e.lesson.id for e in entries], seconds=round(time.perf_counter() - start, 1),
                     warnings=warnings, ran=ran)  # fmt: skip
