"""The project's own files: packaging metadata agrees with itself, lessons follow the contract."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from imports import imported_names

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMETERS = ("SMOKE", "SEED", "DEVICE", "RESULTS_PATH")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    listed = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert listed == declared, f"only in environment.yml: {listed - declared}; only in pyproject: {declared - listed}"
    assert "-e ." in pip_section


def _imported_modules(folder: Path) -> dict[str, str]:
    """Top-level modules imported anywhere under ``folder`` (function-level imports too), with one file each."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for name in imported_names(path):
            found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize(("folder", "extras"), [("tlcourse", ()), ("notebooks", ()), ("tests", ("test",))])
def test_every_imported_package_is_declared(folder: str, extras: tuple[str, ...]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for extra in extras:
        declared |= {_name(r) for r in project["optional-dependencies"][extra]}
    distributions = importlib.metadata.packages_distributions()
    local = {"tlcourse", "conftest", "imports", "browser"}
    missing = {}
    for module, where in _imported_modules(REPO / folder).items():
        if module in sys.stdlib_module_names or module in local:
            continue
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = where
    assert not missing, f"imported in {folder}/ but not declared in pyproject.toml: {missing}"


def test_torch_is_not_pinned_to_the_broken_cpu_wheel() -> None:
    text = (REPO / "pyproject.toml").read_text() + (REPO / "environment.yml").read_text()
    assert "torch==" not in text.replace(" ", "")


def test_console_script_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["tlcourse"] == "tlcourse.course.cli:main"


def test_there_are_lessons() -> None:
    assert [p.name[:2] for p in LESSONS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_is_committed_clean_and_follows_the_contract(path: Path) -> None:
    notebook = json.loads(path.read_text())
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    for cell in code_cells:
        assert not cell.get("outputs"), f"{path.name}: a code cell was committed with outputs"
        assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"
    tagged = [c for c in code_cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged parameters (one expected)"
    assert code_cells.index(tagged[0]) == 1, f"{path.name}: the parameters cell must follow the Colab cell"
    source = "".join(tagged[0]["source"])
    for name in REQUIRED_PARAMETERS:
        assert re.search(rf"^{name}\s*=", source, re.M), f"{path.name}: parameters cell lacks {name}"
    assert re.search(r"^SMOKE\s*=\s*False", source, re.M)
    everything = "".join("".join(c["source"]) for c in code_cells)
    assert re.search(r"save_results\(\s*RESULTS_PATH", everything), f"{path.name}: never records its results"


# The package's layers, lowest first: a module may import from its own layer and the layers before it.
LAYERS = ("core", "data", "models", "training", "transfer", "measure", "grading", "course", "classroom")


def test_the_package_tree_shows_its_layers_and_each_imports_only_lower_ones() -> None:
    package = REPO / "tlcourse"
    folders = sorted(p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert folders == sorted(LAYERS)
    assert sorted(p.name for p in package.glob("*.py")) == ["__init__.py"]  # every module sits in a layer
    upward = []
    for path in sorted(package.rglob("*.py")):
        layer = path.relative_to(package).parts[0]
        if layer == "__init__.py":
            continue
        for name in imported_names(path):
            parts = name.split(".")
            inside = parts[0] == "tlcourse" and len(parts) > 1 and parts[1] in LAYERS
            if inside and LAYERS.index(parts[1]) > LAYERS.index(layer):
                upward.append(f"{path.relative_to(REPO)} imports {name}")
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)
