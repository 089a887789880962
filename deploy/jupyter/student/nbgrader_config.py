"""nbgrader configuration of a student's server on the classroom hub (read through JUPYTER_CONFIG_PATH).

The course id and the shared exchange (TLCOURSE_EXCHANGE, set by the hub): enough to fetch, submit and
fetch feedback from JupyterLab's Assignments panel. Nothing here can grade.
"""

from tlcourse.grading.config import configure_student

configure_student(get_config())  # noqa: F821
