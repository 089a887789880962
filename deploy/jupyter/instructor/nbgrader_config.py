"""nbgrader configuration of the instructor's server on the classroom hub (read through JUPYTER_CONFIG_PATH).

The hub sets TLCOURSE_COURSE_ROOT to the instructor's private course folder (``tlcourse instructor init``):
Formgrader, ``nbgrader`` and ``tlcourse grade`` all grade it with the course's sandbox.
"""

import os

from tlcourse.grading.config import configure

configure(get_config(), os.environ["TLCOURSE_COURSE_ROOT"], source="source", release="release")  # noqa: F821
