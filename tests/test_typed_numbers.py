"""No measured number typed into a lesson's prose: what a run measures is rendered from that run."""

from __future__ import annotations

import pytest
import tomllib
from conftest import REPO

from tlcourse.course.prose import numbers_in, typed_numbers

ACCEPTED_FILE = REPO / "tests" / "typed_numbers.toml"
ACCEPTED: dict[str, dict[str, str]] = tomllib.loads(ACCEPTED_FILE.read_text())
SOURCES = {path.stem: path for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))}


@pytest.mark.parametrize("lesson_id", sorted(SOURCES))
def test_every_number_typed_into_the_prose_is_an_accepted_fact(lesson_id: str) -> None:
    accepted = ACCEPTED.get(lesson_id, {})
    found = typed_numbers(SOURCES[lesson_id])
    new = [f"cell {n.cell}: {n.text!r} in '... {n.context} ...'" for n in found if n.text not in accepted]
    assert not new, (
        f"{lesson_id} types numbers into its markdown that look measured. Render each from the run "
        f"(IPython.display.Markdown in a code cell), or, if it is a paper's figure or a setting, list it "
        f"with its source under [{lesson_id}] in {ACCEPTED_FILE.name}:\n  " + "\n  ".join(new)
    )
    stale = sorted(set(accepted) - {n.text for n in found})
    assert not stale, f"{ACCEPTED_FILE.name} [{lesson_id}] lists numbers the lesson no longer types: {stale}"


def test_every_accepted_section_names_a_lesson() -> None:
    assert set(ACCEPTED) <= set(SOURCES), sorted(set(ACCEPTED) - set(SOURCES))


def test_the_scanner_finds_measured_looking_numbers_only_in_prose() -> None:
    text = "Accuracy 0.935 and 93% in 2.5 s, 3x faster; `lr=0.001` and $p=0.5$ are code; 61,706 parameters in 1998."
    assert [t for t, _ in numbers_in(text)] == ["0.935", "93%", "2.5s", "3x"]
    assert numbers_in("see [the paper](https://arxiv.org/abs/1512.03385) and <img width=0.5>") == []
