"""Graded assignments with nbgrader.

``assignments`` generates and checks the student versions; ``sandbox``, ``confine``, ``watchdog``,
``kernel`` and ``execute`` run each submission's kernel in the grading sandbox under its limits;
``reader`` grades unreadable files as blank; ``grade`` is ``tlcourse grade``; ``config`` is the nbgrader
configuration every course folder shares; ``instructor`` makes the private grading folder; ``feedback``
keeps hidden tests out of the feedback; ``export`` writes grades for Canvas and Moodle.
"""

from tlcourse.grading import assignments
from tlcourse.grading.assignments import *  # noqa: F403 (the package's public names are those of `assignments`)

__all__ = list(assignments.__all__)
