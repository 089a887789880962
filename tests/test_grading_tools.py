"""The grading tools' small parts: sizes, term seeds, hidden tests in feedback, the refusal without a sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from nbformat import NotebookNode

from tlcourse.grading.feedback import HIDDEN_NOTE, HideHiddenTests, hide_hidden_tests
from tlcourse.grading.instructor import set_term_seed
from tlcourse.grading.limits import format_size, parse_size
from tlcourse.grading.sandbox import Sandbox, SandboxUnavailableError, sandbox_problem

REPO = Path(__file__).resolve().parents[1]

CELL = """assert f(1) == 1, "visible"
### BEGIN HIDDEN TESTS
TERM_SEED = 0  # tlcourse:term-seed
assert f(2) == 4, (2, 4)
### END HIDDEN TESTS
"""


def test_sizes() -> None:
    assert parse_size("4G") == 4 << 30 and parse_size("512M") == 512 << 20 and parse_size("4GiB") == 4 << 30
    assert parse_size("1.5G") == 3 << 29 and parse_size(1000) == 1000
    assert format_size(4 << 30) == "4 GiB" and format_size(768 << 20) == "768 MiB"
    with pytest.raises(ValueError, match="not a size: 'four'"):
        parse_size("four")


def test_term_seed_is_rewritten_only_on_marked_lines() -> None:
    text, n = set_term_seed(CELL + "TERM_SEED = 0\n", 987)
    assert n == 1 and "TERM_SEED = 987  # tlcourse:term-seed" in text and text.endswith("TERM_SEED = 0\n")


def _error_at(line: int) -> NotebookNode:
    tb = [f"\x1b[0;31mAssertionError\x1b[0m  Traceback\nCell \x1b[0;32mIn[3], line {line}\x1b[0m\n\x1b[0;32m----> {line}\x1b[0m assert ..."]
    return NotebookNode(output_type="error", ename="AssertionError", evalue="(2, 4)", traceback=tb)


@pytest.mark.parametrize(("line", "hidden"), [(1, False), (4, True)])
def test_feedback_hides_hidden_tests_and_their_failures(line: int, hidden: bool) -> None:
    cell = NotebookNode(cell_type="code", source=CELL, metadata={}, outputs=[_error_at(line)])
    leak = NotebookNode(cell_type="code", source="print(In)", metadata={}, outputs=[
        NotebookNode(output_type="stream", name="stdout", text="before\nassert f(2) == 4, (2, 4)\nafter\n")
    ])
    nb = NotebookNode(cells=[cell, leak], metadata={}, nbformat=4, nbformat_minor=5)
    nb, _ = HideHiddenTests().preprocess(nb, {})
    assert leak.outputs[0].text == "before\nafter\n", "a printed hidden test is cut from any cell's output"
    assert "f(2)" not in cell.source and "TERM_SEED" not in cell.source and HIDDEN_NOTE in cell.source
    assert 'assert f(1) == 1, "visible"' in cell.source
    assert (cell.outputs[0].evalue == "a hidden test failed") is hidden
    assert ("(2, 4)" in "".join(cell.outputs[0].traceback) + cell.outputs[0].evalue) is (not hidden)
    assert hide_hidden_tests("x = 1") == "x = 1"


def test_a_visible_failure_keeps_its_traceback_without_the_hidden_block_around_it() -> None:
    """IPython shows the lines around the failing one: the hidden block's marker and lines must not be among them."""
    context = ("Cell \x1b[0;32mIn[3], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m assert f(1) == 1, \"visible\"\n"
               "\x1b[0;32m      2\x1b[0m ### BEGIN HIDDEN TESTS\n\x1b[0;32m      3\x1b[0m TERM_SEED = 0  # tlcourse:term-seed\n")  # fmt: skip
    error = NotebookNode(output_type="error", ename="AssertionError", evalue="visible", traceback=[context])
    nb = NotebookNode(cells=[NotebookNode(cell_type="code", source=CELL, metadata={}, outputs=[error])], metadata={},
                      nbformat=4, nbformat_minor=5)  # fmt: skip
    nb, _ = HideHiddenTests().preprocess(nb, {})
    shown = "".join(nb.cells[0].outputs[0].traceback)
    assert 'assert f(1) == 1, "visible"' in shown, "the student's own failure keeps its line"
    assert "BEGIN HIDDEN" not in shown and "term-seed" not in shown


def test_no_sandbox_without_bubblewrap_and_the_message_says_what_to_do() -> None:
    problem = sandbox_problem("no-such-bwrap")
    assert problem and "apt-get install bubblewrap" in problem and "--unsandboxed" in problem


def test_tlcourse_grade_refuses_without_a_sandbox() -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no /usr/bin: bwrap cannot be found
    proc = subprocess.run([str(Path(sys.executable).parent / "tlcourse"), "grade", "a02_conv_arithmetic", "--root", str(REPO)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "refusing to grade without a sandbox" in proc.stderr and "bubblewrap" in proc.stderr


def test_a_read_only_path_holding_the_course_root_is_refused(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    box = Sandbox(workdir=course / "autograded" / "s" / "a", runtime_dir=tmp_path, hidden=(course,), read_only=(tmp_path,))
    with pytest.raises(SandboxUnavailableError, match="would be visible to graded code"):
        box.read_only_paths()


def test_the_sandbox_command_hides_the_course_and_the_network(tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "autograded" / "s" / "a").mkdir(parents=True)
    (course / "autograded" / "s" / "a" / "a.ipynb").write_text("{}")
    (course / "autograded" / "s" / "a" / "data.csv").write_text("1,2")
    (course / "gradebook.db").write_text("grades")
    (course / "autograded" / "s" / "a" / "grades.db").symlink_to(course / "gradebook.db")  # a link out of the folder
    args = Sandbox(workdir=course / "autograded" / "s" / "a", runtime_dir=tmp_path / "rt", hidden=(course,)).command(["python"])
    assert "--unshare-all" in args and "--die-with-parent" in args
    bound = {args[i + 1] for i, a in enumerate(args) if a in {"--bind", "--ro-bind"}}
    assert str(course / "autograded" / "s" / "a" / "data.csv") in bound  # the submission's own files
    assert not any(b.endswith(".ipynb") for b in bound)  # never the notebook with its hidden tests
    assert not any(b.endswith(".db") for b in bound)  # nor a symlink, which bwrap would follow
    assert not any(b == str(course) or str(course).startswith(b + "/") for b in bound if b != "/")
