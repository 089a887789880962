"""JupyterHub for one tlcourse class on one server: who is who, where things live, what each role's server gets.

``deploy/jupyterhub_config.py`` calls :func:`configure_hub`; every setting comes from an environment variable
(see :class:`ClassroomSettings`), so one file serves a real class (local accounts, PAM) and a trial on loopback.

Each single-user server is told its role through ``JUPYTER_CONFIG_PATH``:

* ``deploy/jupyter/instructor/``: nbgrader's configuration of the instructor's private course folder
  (``tlcourse instructor init``), so Formgrader and every ``nbgrader`` command grade in the sandbox;
* ``deploy/jupyter/student/``: the course id and the exchange, and a ``page_config.json`` that switches off
  nbgrader's instructor tools (Formgrader, Create Assignment, the course list) in the student's JupyterLab.

Every server sees the same read-only data root (``TLCOURSE_DATA``) and the same exchange.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AUTHENTICATORS", "ClassroomSettings", "SPAWNERS", "configure_hub", "server_environment"]

INSTRUCTOR, STUDENT = "instructor", "student"

# TLCOURSE_HUB_SPAWNER -> JupyterHub spawner class. "systemd" enforces the memory and CPU limits (and a
# read-only data root); "local" starts each server as the user's own account without limits; "simple" starts
# every server as the hub's own account with a home under TLCOURSE_HUB_ROOT/home (a trial on one machine).
SPAWNERS = {
    "systemd": "systemdspawner.SystemdSpawner",
    "local": "jupyterhub.spawner.LocalProcessSpawner",
    "simple": "jupyterhub.spawner.SimpleLocalProcessSpawner",
}
# TLCOURSE_HUB_AUTHENTICATOR -> class. "pam": the machine's accounts and passwords; "shared-password": one
# password (TLCOURSE_HUB_PASSWORD) for the listed users, for a trial or a test.
AUTHENTICATORS = {
    "pam": "jupyterhub.auth.PAMAuthenticator",
    "shared-password": "jupyterhub.authenticators.shared.SharedPasswordAuthenticator",
}


def _names(text: str) -> list[str]:
    """User names from a comma- or line-separated list; ``#`` starts a comment; lower case, as JupyterHub keeps them."""
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return [name.strip().lower() for line in lines for name in line.split(",") if name.strip()]


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def _choice(variable: str, value: str, valid: dict[str, str]) -> str:
    if value not in valid:
        raise ValueError(f"{variable}={value!r} is not one of: {', '.join(sorted(valid))}")
    return value


def _systemd_available() -> bool:
    """jupyterhub-systemdspawner installed, on a machine that runs systemd."""
    from importlib.util import find_spec

    return find_spec("systemdspawner") is not None and Path("/run/systemd/system").is_dir()


@dataclass
class ClassroomSettings:
    """One class's hub, read from ``TLCOURSE_HUB_*`` variables by :meth:`from_env`."""

    instructors: list[str]
    students: list[str]
    root: Path  # holds the exchange, the hub's state and (by default) the data root
    data: Path
    url: str = "http://127.0.0.1:8000"
    course_folder: str = "tlcourse-course"  # the instructor's private course folder, relative to their home
    memory: str = "4G"
    cpus: float = 2.0
    spawner: str = "local"
    authenticator: str = "pam"
    password: str = ""
    deploy: Path = Path("deploy")  # the folder of jupyterhub_config.py and jupyter/<role>/
    trial_as_root: bool = False  # TLCOURSE_HUB_TRIAL_AS_ROOT=1: allow the simple spawner under root (tests, throwaway VMs)

    @property
    def exchange(self) -> Path:
        return self.root / "exchange"

    @property
    def state(self) -> Path:
        return self.root / "hub"

    @classmethod
    def from_env(cls, deploy: str | os.PathLike[str], env: dict[str, str] | None = None) -> ClassroomSettings:
        """Settings from ``env`` (default ``os.environ``) for the deploy folder ``deploy``; README's "Classroom" lists them."""
        env = dict(os.environ if env is None else env)
        root = Path(env.get("TLCOURSE_HUB_ROOT", "/srv/tlcourse")).absolute()
        students = _names(env.get("TLCOURSE_HUB_STUDENTS", ""))
        if env.get("TLCOURSE_HUB_STUDENTS_FILE"):
            students += _names(Path(env["TLCOURSE_HUB_STUDENTS_FILE"]).read_text())
        spawner = env.get("TLCOURSE_HUB_SPAWNER", "auto")
        if spawner == "auto":
            spawner = "systemd" if _systemd_available() else "local"
        settings = cls(
            instructors=_names(env.get("TLCOURSE_HUB_INSTRUCTORS", INSTRUCTOR)),
            students=students,
            root=root,
            data=Path(env.get("TLCOURSE_DATA", root / "data")).absolute(),
            url=env.get("TLCOURSE_HUB_URL", cls.url),
            course_folder=env.get("TLCOURSE_HUB_COURSE_FOLDER", cls.course_folder),
            memory=env.get("TLCOURSE_HUB_MEMORY", cls.memory),
            cpus=float(env.get("TLCOURSE_HUB_CPUS", cls.cpus)),
            spawner=_choice("TLCOURSE_HUB_SPAWNER", spawner, SPAWNERS),
            authenticator=_choice("TLCOURSE_HUB_AUTHENTICATOR", env.get("TLCOURSE_HUB_AUTHENTICATOR", "pam"), AUTHENTICATORS),
            password=env.get("TLCOURSE_HUB_PASSWORD", ""),
            deploy=Path(deploy).resolve(),
            trial_as_root=env.get("TLCOURSE_HUB_TRIAL_AS_ROOT", "") == "1",
        )
        settings.check()
        return settings

    def check(self, euid: int | None = None) -> None:
        """Raise ValueError on a class nobody could run, or one that would hand students someone else's rights."""
        both = set(self.instructors) & set(self.students)
        if not self.instructors:
            raise ValueError("TLCOURSE_HUB_INSTRUCTORS names nobody: the class needs an instructor")
        if both:
            raise ValueError(f"{', '.join(sorted(both))} cannot be both instructor and student")
        if self.authenticator == "shared-password":
            # one password for everyone lets any student log in as the instructor: a trial on this machine only
            if len(self.password) < 8:
                raise ValueError("TLCOURSE_HUB_AUTHENTICATOR=shared-password needs TLCOURSE_HUB_PASSWORD of at least 8 characters")
            if not _loopback(self.url):
                raise ValueError(f"TLCOURSE_HUB_AUTHENTICATOR=shared-password is for a trial on loopback, not {self.url}: "
                                 "a class uses pam (each account's own password)")
        if self.spawner == "simple":
            # every server runs as the hub's own account: the students would share it (as root: a root shell each)
            if self.authenticator != "shared-password":
                raise ValueError("TLCOURSE_HUB_SPAWNER=simple is for a trial (with shared-password); a class uses local or systemd")
            if (os.geteuid() if euid is None else euid) == 0 and not self.trial_as_root:
                raise ValueError("TLCOURSE_HUB_SPAWNER=simple as root gives every server root's rights: run the trial as an "
                                 "ordinary account, or set TLCOURSE_HUB_TRIAL_AS_ROOT=1 on a throwaway machine")

    def role(self, username: str) -> str:
        """"instructor" or "student"; KeyError for anyone else (the hub lets nobody else in)."""
        if username in self.instructors:
            return INSTRUCTOR
        if username in self.students:
            return STUDENT
        raise KeyError(f"{username} is neither an instructor ({', '.join(self.instructors)}) nor a listed student")

    def role_config_dir(self, role: str) -> Path:
        """``deploy/jupyter/<role>/``: the Jupyter configuration folder a server of that role starts with."""
        return self.deploy / "jupyter" / role


def _home(spawner: Any) -> Path:
    if getattr(spawner, "home_dir", None):  # SimpleLocalProcessSpawner
        return Path(spawner.home_dir)
    import pwd

    return Path(pwd.getpwnam(spawner.user.name).pw_dir)


def server_environment(settings: ClassroomSettings, username: str, home: Path) -> dict[str, str]:
    """The variables a user's server starts with: role, exchange, data root, the instructor's course folder."""
    role = settings.role(username)
    env = {
        "JUPYTER_CONFIG_PATH": str(settings.role_config_dir(role)),
        "TLCOURSE_EXCHANGE": str(settings.exchange),
        "TLCOURSE_DATA": str(settings.data),
        "TLCOURSE_ROLE": role,
    }
    if role == INSTRUCTOR:
        env["TLCOURSE_COURSE_ROOT"] = str(home / settings.course_folder)
    return env


def _private(path: Path) -> bool:
    return not path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def _account_homes(names: list[str]) -> dict[str, Path]:
    import pwd

    homes = {}
    for name in names:
        with contextlib.suppress(KeyError):  # no such account: reported by the caller
            homes[name] = Path(pwd.getpwnam(name).pw_dir)
    return homes


def prepare_shared_folders(settings: ClassroomSettings) -> list[str]:
    """Make the hub's private state folder and the shared exchange, check the data root and the homes; warnings."""
    warnings = []
    settings.state.mkdir(parents=True, exist_ok=True)
    settings.state.chmod(0o700)  # the hub's database and cookie secret: the hub's account only
    settings.exchange.mkdir(parents=True, exist_ok=True)
    settings.exchange.chmod(0o777 | stat.S_ISVTX)  # everyone may create, nobody may delete another's files
    if not settings.data.is_dir():
        warnings.append(f"the data root {settings.data} does not exist: put the datasets there (tlcourse download)")
    elif settings.data.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        warnings.append(f"the data root {settings.data} is writable by other accounts: make it read-only (chmod -R go-w)")
    if settings.spawner != "simple":  # real accounts: what one of them may read of another's
        homes = _account_homes(settings.instructors + settings.students)
        for name in sorted(set(settings.instructors + settings.students) - set(homes)):
            warnings.append(f"{name} has no account on this machine (useradd -m -K HOME_MODE=0700 {name})")
        readable = [f"{home} ({name})" for name, home in homes.items() if home.is_dir() and not _private(home)]
        if readable:
            warnings.append("other accounts can read these homes (the instructor's holds the solutions and the "
                            f"gradebook): chmod 700 {' '.join(readable)}")
        _own_course_exchange(settings, homes)
    if settings.spawner != "systemd":
        warnings.append(f"the {settings.spawner!r} spawner does not enforce the memory and CPU limits; "
                        "install jupyterhub-systemdspawner on a systemd machine to enforce them")
    return warnings


def _own_course_exchange(settings: ClassroomSettings, homes: dict[str, Path]) -> None:
    """As root: make the course's exchange folder and give it to the instructor before any student can take the name."""
    from tlcourse.grading.config import COURSE_ID

    instructor = settings.instructors[0]
    if os.geteuid() != 0 or instructor not in homes:
        return
    import pwd

    course = settings.exchange / COURSE_ID
    course.mkdir(mode=0o755, exist_ok=True)
    account = pwd.getpwnam(instructor)
    os.chown(course, account.pw_uid, account.pw_gid)
    course.chmod(0o755)


def configure_hub(c: Any, deploy: str | os.PathLike[str], settings: ClassroomSettings | None = None) -> ClassroomSettings:
    """Fill the JupyterHub config ``c`` for one class whose deploy folder is ``deploy``; returns the settings used."""
    settings = settings or ClassroomSettings.from_env(deploy)
    for warning in prepare_shared_folders(settings):
        print(f"tlcourse hub: warning: {warning}", file=sys.stderr)

    c.JupyterHub.bind_url = settings.url
    c.JupyterHub.db_url = f"sqlite:///{settings.state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(settings.state / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = str(settings.state / "jupyterhub-proxy.pid")
    proxy = shutil.which("configurable-http-proxy")
    if proxy:
        c.ConfigurableHTTPProxy.command = [proxy]

    c.JupyterHub.authenticator_class = AUTHENTICATORS[settings.authenticator]
    c.Authenticator.allowed_users = set(settings.instructors) | set(settings.students)
    c.Authenticator.allow_existing_users = False  # taken off the roster: no more logins
    if settings.authenticator == "shared-password":
        c.SharedPasswordAuthenticator.user_password = settings.password

    c.JupyterHub.spawner_class = SPAWNERS[settings.spawner]
    c.Spawner.default_url = "/lab"
    # JupyterHub's default list, and the switch that keeps the course from trying to download
    c.Spawner.env_keep = ["PATH", "PYTHONPATH", "CONDA_ROOT", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "LANG", "LC_ALL",
                          "JUPYTERHUB_SINGLEUSER_APP", "TLCOURSE_OFFLINE"]
    c.Spawner.mem_limit = settings.memory
    c.Spawner.cpu_limit = settings.cpus
    c.Spawner.http_timeout = 120
    c.Spawner.start_timeout = 180
    if settings.spawner == "simple":
        c.SimpleLocalProcessSpawner.home_dir_template = str(settings.root / "home" / "{username}")
        if os.geteuid() == 0:
            c.Spawner.args = ["--allow-root"]
    if settings.spawner == "systemd":
        c.SystemdSpawner.readonly_paths = [str(settings.data)]
        c.SystemdSpawner.isolate_tmp = True

    def pre_spawn_hook(spawner: Any) -> None:
        home = _home(spawner)
        home.mkdir(parents=True, exist_ok=True)
        spawner.environment.update(server_environment(settings, spawner.user.name, home))

    c.Spawner.pre_spawn_hook = pre_spawn_hook
    return settings
