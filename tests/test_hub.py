"""The classroom on a real JupyterHub, on loopback: deploy/jupyterhub_config.py, its proxy from npm, real servers.

One hub (JupyterHub from PyPI, configurable-http-proxy from npm) serves an instructor and two students, each
logged in through the hub's login form. The round trip goes through their servers' own endpoints, the ones
JupyterLab's buttons call: the instructor releases a02 from Formgrader, both students fetch it, alice saves
the solution and bob leaves it blank, both submit, the instructor collects, grades with ``tlcourse grade``
(the sandbox), generates and releases feedback, and the students fetch their feedback: 12 and 0.

The hub runs as a trial (``TLCOURSE_HUB_SPAWNER=simple``: every server under this account, homes in a temporary
folder; a shared password). What that leaves untested of a class of local accounts: PAM logins, and the file
permissions between accounts (the private folder's 0700 mode is checked; ``prepare_shared_folders`` warns
about readable homes at the hub's start).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from browser import launch_browser, open_page
from conftest import IN_CI, REPO, free_port, wait_until_up

ASSIGNMENT = "a02_conv_arithmetic"
INSTRUCTOR, STUDENTS = "instructor", ("alice", "bob")
COURSE_FOLDER = "tlcourse-course"
INSTRUCTOR_TOOLS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list")


def _require_hub() -> None:
    missing = []
    if not shutil.which("configurable-http-proxy"):
        missing.append("configurable-http-proxy on PATH (npm install -g configurable-http-proxy)")
    if not shutil.which("bwrap"):
        missing.append("bubblewrap (apt-get install bubblewrap)")
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        missing.append("jupyterhub (pip install -e '.[test]')")
    if missing:
        message = "the hub test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail("CI must run the hub test: " + message)
        pytest.skip(message)


@dataclass
class Hub:
    """A running hub: its URL, the test's service token, and the folders of the class."""

    url: str
    token: str
    password: str
    root: Path
    log: Path
    user_tokens: dict[str, str] = field(default_factory=dict)

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def api(self, method: str, path: str, **kwargs):
        """The hub's REST API as the test's service."""
        import requests

        response = requests.request(method, f"{self.url}/hub/api{path}", headers={"Authorization": f"token {self.token}"},
                                    timeout=60, **kwargs)  # fmt: skip
        assert response.ok, f"{method} /hub/api{path}: {response.status_code} {response.text[:500]} (hub log: {self.log})"
        return response.json() if response.text else None

    def user(self, user: str, method: str, path: str, **kwargs):
        """``user``'s own server, through the hub's proxy, with that user's token."""
        import requests

        response = requests.request(method, f"{self.url}/user/{user}{path}", timeout=600,
                                    headers={"Authorization": f"token {self.user_tokens[user]}"}, **kwargs)  # fmt: skip
        assert response.ok, f"{user}: {method} {path}: {response.status_code} {response.text[:1000]} (hub log: {self.log})"
        return response

    def nbgrader(self, user: str, path: str, **form) -> dict:
        """POST to one of nbgrader's endpoints on ``user``'s server; fails the test unless nbgrader reports success."""
        reply = self.user(user, "POST", path, data=form).json()
        assert reply.get("success", True), f"{user}: {path} failed:\n{reply.get('log', '')}\n{reply.get('error', '')}"
        return reply


def _login(hub: Hub, user: str, password: str) -> None:
    """Log in through the hub's form (as a browser does) and wait until the spawned server is ready."""
    import requests

    with requests.Session() as browser:
        browser.get(f"{hub.url}/hub/login", timeout=30).raise_for_status()
        page = browser.post(f"{hub.url}/hub/login?next=/hub/spawn", timeout=120,
                            data={"username": user, "password": password, "_xsrf": browser.cookies.get("_xsrf", "")})  # fmt: skip
        assert page.ok and "/hub/login" not in page.url, f"{user} could not log in: {page.status_code} {page.url}"
    deadline = time.monotonic() + 180
    while not (hub.api("GET", f"/users/{user}").get("servers", {}).get("", {}).get("ready")):
        assert time.monotonic() < deadline, f"{user}'s server was not ready after 180 s (hub log: {hub.log})"
        time.sleep(1)
    hub.user_tokens[user] = hub.api("POST", f"/users/{user}/tokens", json={"note": "round trip", "expires_in": 3600})["token"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, shared_data_root: Path) -> Iterator[Hub]:
    """The class's hub on 127.0.0.1, everyone logged in; the instructor's private course made beforehand."""
    _require_hub()
    from tlcourse.grading.instructor import init_private_course

    root = tmp_path_factory.mktemp("classroom")
    course = init_private_course(root / "home" / INSTRUCTOR / COURSE_FOLDER, REPO).root  # the instructor's one-time setup
    assert course.stat().st_mode & 0o777 == 0o700, "the private course folder is readable by other accounts"
    port, token, password = free_port(), secrets.token_hex(16), secrets.token_urlsafe(12)
    config = root / "test_jupyterhub_config.py"
    config.write_text(
        f"load_subconfig({str(REPO / 'deploy' / 'jupyterhub_config.py')!r})\n"
        f"c.JupyterHub.hub_port = {free_port()}\n"
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n"
        f"c.JupyterHub.services = [{{'name': 'round-trip', 'api_token': {token!r}}}]\n"
        "c.JupyterHub.load_roles = [{'name': 'round-trip', 'services': ['round-trip'],\n"
        "    'scopes': ['admin:users', 'admin:servers', 'admin:server_state', 'tokens']}]\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "TLCOURSE_HUB"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TLCOURSE_HUB_ROOT": str(root), "TLCOURSE_HUB_URL": f"http://127.0.0.1:{port}",
        "TLCOURSE_HUB_INSTRUCTORS": INSTRUCTOR, "TLCOURSE_HUB_STUDENTS": ",".join(STUDENTS),
        "TLCOURSE_HUB_SPAWNER": "simple", "TLCOURSE_HUB_AUTHENTICATOR": "shared-password",
        "TLCOURSE_HUB_PASSWORD": password, "TLCOURSE_DATA": str(shared_data_root),
        "TLCOURSE_HUB_COURSE_FOLDER": COURSE_FOLDER, "TLCOURSE_HUB_TRIAL_AS_ROOT": "1",  # CI runs as root
    }  # fmt: skip
    log_path = root / "jupyterhub.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=root, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        hub = Hub(f"http://127.0.0.1:{port}", token, password, root, log_path)
        try:
            wait_until_up(lambda: hub.api("GET", "/"), process, "JupyterHub", log_path)
            start = time.perf_counter()
            for user in (INSTRUCTOR, *STUDENTS):
                _login(hub, user, password)
            print(f"hub up, three users logged in and their servers ready in {time.perf_counter() - start:.1f} s")
            yield hub
        finally:
            servers = _server_pids(hub)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # the hub stops the servers and the proxy it started
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            for pid in servers:  # each server runs in its own session: never leave one behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def _server_pids(hub: Hub) -> list[int]:
    """The process ids of the users' servers, while the hub still answers."""
    pids = []
    for user in (INSTRUCTOR, *STUDENTS):
        with contextlib.suppress(Exception):
            pids.append(int(hub.api("GET", f"/users/{user}")["servers"][""]["state"]["pid"]))
    return pids


def _solved(student_version, solution) -> nbformat.NotebookNode:
    """The student's notebook with every answer cell filled in from the solution (matched by cell id)."""
    answers = {cell.id: cell.source for cell in solution.cells if cell.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(student_version)
    for cell in nb.cells:
        if cell.id in answers:
            cell.source = answers[cell.id]
    return nb


def _page_config(hub: Hub, user: str) -> dict:
    page = hub.user(user, "GET", "/lab").text
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert match, f"{user}'s JupyterLab page has no config data"
    return json.loads(match.group(1))


def _environ(hub: Hub, user: str) -> dict[str, str]:
    pid = hub.api("GET", f"/users/{user}")["servers"][""]["state"]["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_each_role_gets_its_tools_the_exchange_and_the_shared_data(hub: Hub, shared_data_root: Path) -> None:
    instructor = _page_config(hub, INSTRUCTOR)["disabledExtensions"]
    assert not [tool for tool in INSTRUCTOR_TOOLS if tool in instructor], instructor
    for student in STUDENTS:
        disabled = _page_config(hub, student)["disabledExtensions"]
        assert all(tool in disabled for tool in INSTRUCTOR_TOOLS), f"{student} sees instructor tools: {disabled}"
        assert "@jupyter/nbgrader:assignment-list" not in disabled and "@jupyter/nbgrader:validate-assignment" not in disabled
        env = _environ(hub, student)
        assert env["TLCOURSE_DATA"] == str(shared_data_root) and env["TLCOURSE_EXCHANGE"] == str(hub.root / "exchange")
        assert env["JUPYTER_CONFIG_PATH"] == str(REPO / "deploy" / "jupyter" / "student")
        assert "TLCOURSE_COURSE_ROOT" not in env
    env = _environ(hub, INSTRUCTOR)
    assert env["TLCOURSE_COURSE_ROOT"] == str(hub.home(INSTRUCTOR) / COURSE_FOLDER)
    assert env["JUPYTER_CONFIG_PATH"] == str(REPO / "deploy" / "jupyter" / "instructor")
    mode = (hub.root / "exchange").stat().st_mode
    assert mode & 0o777 == 0o777 and mode & stat.S_ISVTX, oct(mode)
    # Formgrader on the instructor's server sees the private course (the assignment is in its gradebook)
    assignments = hub.user(INSTRUCTOR, "GET", "/formgrader/api/assignments").json()
    assert ASSIGNMENT in {a["name"] for a in assignments}, assignments


@pytest.mark.timeout(900)
def test_release_fetch_submit_collect_grade_and_feedback_through_the_hub(hub: Hub) -> None:
    start = time.perf_counter()
    course = hub.home(INSTRUCTOR) / COURSE_FOLDER
    hub.nbgrader(INSTRUCTOR, f"/formgrader/api/assignment/{ASSIGNMENT}/release")
    for student in STUDENTS:
        hub.nbgrader(student, "/assignments/fetch", course_id="tlcourse", assignment_id=ASSIGNMENT)
    listed = hub.user("alice", "GET", "/assignments", params={"course_id": "tlcourse"}).json()
    fetched = [a for a in listed["value"] if a["assignment_id"] == ASSIGNMENT and a["status"] == "fetched"]
    assert fetched, listed
    folder = Path(fetched[0]["path"])
    relative = folder.relative_to(hub.home("alice")) if folder.is_absolute() else folder
    notebook = f"/api/contents/{relative.as_posix()}/{ASSIGNMENT}.ipynb"
    student_version = hub.user("alice", "GET", notebook).json()["content"]
    solution = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    hub.user("alice", "PUT", notebook, json={"type": "notebook", "format": "json", "content": _solved(student_version, solution)})
    for student in STUDENTS:  # bob submits the notebook as fetched
        hub.nbgrader(student, "/assignments/submit", course_id="tlcourse", assignment_id=ASSIGNMENT)
    hub.nbgrader(INSTRUCTOR, f"/formgrader/api/assignment/{ASSIGNMENT}/collect")
    assert sorted(p.name for p in (course / "submitted").iterdir()) == sorted(STUDENTS)

    env = {**os.environ, **_environ(hub, INSTRUCTOR)}  # the instructor's server's variables, as in its terminal
    grading = subprocess.run([str(Path(sys.executable).parent / "tlcourse"), "grade", ASSIGNMENT, "--quiet"], cwd=course, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert grading.returncode == 0, grading.stdout[-3000:] + grading.stderr[-3000:]

    hub.nbgrader(INSTRUCTOR, f"/formgrader/api/assignment/{ASSIGNMENT}/generate_feedback")
    hub.nbgrader(INSTRUCTOR, f"/formgrader/api/assignment/{ASSIGNMENT}/release_feedback")
    scores = {s["student"]: s["score"] for s in hub.user(INSTRUCTOR, "GET", f"/formgrader/api/submissions/{ASSIGNMENT}").json()}
    assert scores == {"alice": 12, "bob": 0}, f"{scores}\n{grading.stdout[-2000:]}"

    for student, expected in (("alice", 12), ("bob", 0)):
        hub.nbgrader(student, "/assignments/fetch_feedback", course_id="tlcourse", assignment_id=ASSIGNMENT)
        feedback = sorted(hub.home(student).rglob(f"{ASSIGNMENT}/feedback/*/{ASSIGNMENT}.html"))
        assert feedback, f"{student} has no feedback under {hub.home(student)}"
        html = feedback[-1].read_text()
        total = re.search(r"Score:\s*([\d.]+)\s*/\s*([\d.]+)", html)  # the first is the notebook's (12 autograded + 3 by hand)
        assert total and float(total[1]) == expected and float(total[2]) == 15, f"{student}: {total and total[0]}"
        assert "BEGIN HIDDEN TESTS" not in html and "tlcourse:term-seed" not in html
    print(f"round trip (release, fetch, submit, collect, grade, feedback) in {time.perf_counter() - start:.1f} s")


def test_settings_name_the_valid_choices_and_refuse_a_class_nobody_could_run(tmp_path: Path) -> None:
    from tlcourse.classroom.hub import ClassroomSettings

    base = {"TLCOURSE_HUB_ROOT": str(tmp_path), "TLCOURSE_HUB_STUDENTS": "alice, bob", "TLCOURSE_HUB_SPAWNER": "local"}
    settings = ClassroomSettings.from_env(REPO / "deploy", base)
    assert settings.instructors == ["instructor"] and settings.students == ["alice", "bob"]
    assert settings.exchange == tmp_path / "exchange" and settings.data == tmp_path / "data"
    assert settings.role("alice") == "student" and settings.role("instructor") == "instructor"
    with pytest.raises(KeyError, match="neither an instructor"):
        settings.role("mallory")
    (tmp_path / "roster.txt").write_text("# this term\nCarol\ndave  # joined late\n")
    assert ClassroomSettings.from_env(REPO / "deploy", {**base, "TLCOURSE_HUB_STUDENTS_FILE": str(tmp_path / "roster.txt")}).students == [
        "alice", "bob", "carol", "dave"]  # fmt: skip  (JupyterHub keeps names in lower case)
    with pytest.raises(ValueError, match="local, simple, systemd"):
        ClassroomSettings.from_env(REPO / "deploy", {**base, "TLCOURSE_HUB_SPAWNER": "kubernetes"})
    with pytest.raises(ValueError, match="both instructor and student"):
        ClassroomSettings.from_env(REPO / "deploy", {**base, "TLCOURSE_HUB_INSTRUCTORS": "alice"})
    trial = {**base, "TLCOURSE_HUB_AUTHENTICATOR": "shared-password", "TLCOURSE_HUB_PASSWORD": "long enough"}
    with pytest.raises(ValueError, match="at least 8 characters"):
        ClassroomSettings.from_env(REPO / "deploy", {**trial, "TLCOURSE_HUB_PASSWORD": "short"})
    # one password for all lets a student log in as the instructor: loopback trials only
    with pytest.raises(ValueError, match="trial on loopback"):
        ClassroomSettings.from_env(REPO / "deploy", {**trial, "TLCOURSE_HUB_URL": "http://0.0.0.0:8000"})
    # every server as the hub's account: never with real logins, never silently as root
    with pytest.raises(ValueError, match="simple is for a trial"):
        ClassroomSettings.from_env(REPO / "deploy", {**base, "TLCOURSE_HUB_SPAWNER": "simple"})
    simple = ClassroomSettings.from_env(REPO / "deploy", {**trial, "TLCOURSE_HUB_SPAWNER": "simple", "TLCOURSE_HUB_TRIAL_AS_ROOT": "1"})
    simple.trial_as_root = False
    with pytest.raises(ValueError, match="root's rights"):
        simple.check(euid=0)
    simple.check(euid=1000)


def test_each_role_config_folder_exists_and_the_student_one_hides_every_instructor_tool() -> None:
    for role in ("instructor", "student"):
        assert (REPO / "deploy" / "jupyter" / role / "nbgrader_config.py").is_file()
    page = json.loads((REPO / "deploy" / "jupyter" / "student" / "labconfig" / "page_config.json").read_text())
    assert set(page["disabledExtensions"]) == set(INSTRUCTOR_TOOLS)
    # the names are nbgrader's real plugin ids: a renamed plugin would silently show again
    from jupyter_core.paths import jupyter_path

    bundle = "".join(js.read_text(errors="ignore") for folder in jupyter_path("labextensions")
                     for js in Path(folder, "@jupyter", "nbgrader", "static").glob("*.js"))  # fmt: skip
    assert all(f'"{tool}"' in bundle for tool in INSTRUCTOR_TOOLS), [t for t in INSTRUCTOR_TOOLS if f'"{t}"' not in bundle]


NBGRADER_MENU = """() => [...document.querySelectorAll('#jp-mainmenu-nbgrader .lm-Menu-item')]
    .filter(item => getComputedStyle(item).display !== 'none')
    .map(item => item.querySelector('.lm-Menu-itemLabel').textContent.trim())"""


@pytest.mark.timeout(300)
def test_in_the_browser_students_see_no_instructor_tools(hub: Hub, tmp_path: Path) -> None:
    """Log in through the hub's page in chromium and read JupyterLab's Nbgrader menu of each role."""
    menus = {}
    with launch_browser() as browser:
        for user in (INSTRUCTOR, "alice"):
            with open_page(browser, tmp_path / f"{user}.png") as page:
                page.goto(f"{hub.url}/hub/login")
                page.fill("#username_input", user)
                page.fill("#password_input", hub.password)
                page.click("#login_submit")
                page.wait_for_url(f"**/user/{user}/lab**", timeout=120_000)
                page.get_by_text("Nbgrader", exact=True).first.click(timeout=120_000)
                page.locator("#jp-mainmenu-nbgrader").wait_for(timeout=30_000)
                menus[user] = page.evaluate(NBGRADER_MENU)
                page.context.clear_cookies()
    print(f"Nbgrader menus: {menus}")
    assert {"Assignment List", "Formgrader"} <= set(menus[INSTRUCTOR]), menus
    assert "Assignment List" in menus["alice"], menus
    assert not {label for label in menus["alice"] if "Formgrader" in label or "Course" in label or "Create" in label}, menus
