"""Graded assignments with nbgrader: generation (``assignments``), sandboxed autograding (``sandbox``,
``execute``, ``grade``), the instructor's private course folder (``instructor``) and grade export (``export``)."""

from tlcourse.grading.assignments import (
    CONFIG_FILE,
    GenerationError,
    check_assignments,
    course_config,
    generate_assignments,
    list_assignments,
    make_api,
    normalize_notebook,
)

__all__ = [
    "CONFIG_FILE",
    "GenerationError",
    "check_assignments",
    "course_config",
    "generate_assignments",
    "list_assignments",
    "make_api",
    "normalize_notebook",
]
