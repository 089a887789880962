"""The project's own files: packaging metadata agrees with itself, lessons follow the contract."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

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
    first = code_cells[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{path.name}: first code cell not tagged parameters"
    source = "".join(first["source"])
    for name in REQUIRED_PARAMETERS:
        assert re.search(rf"^{name}\s*=", source, re.M), f"{path.name}: parameters cell lacks {name}"
    assert re.search(r"^SMOKE\s*=\s*False", source, re.M)
    everything = "".join("".join(c["source"]) for c in code_cells)
    assert re.search(r"save_results\(\s*RESULTS_PATH", everything), f"{path.name}: never records its results"
