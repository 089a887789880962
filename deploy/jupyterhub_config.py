"""JupyterHub for one tlcourse class: ``jupyterhub -f deploy/jupyterhub_config.py`` (README, "Classroom").

Every setting is an environment variable (TLCOURSE_HUB_INSTRUCTORS, TLCOURSE_HUB_STUDENTS, TLCOURSE_HUB_ROOT,
TLCOURSE_DATA, ...), read by :class:`tlcourse.classroom.hub.ClassroomSettings`. Add site-specific settings
(TLS, another authenticator) below the call.
"""

from pathlib import Path

from tlcourse.classroom.hub import configure_hub

c = get_config()  # noqa: F821
configure_hub(c, Path(__file__).resolve().parent)
