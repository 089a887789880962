"""nbgrader configuration of the tlcourse assignments (read by every ``nbgrader`` command run here).

Layout (nbgrader's names -> ours):

* source directory  ``solutions/<assignment>/``   the public self-study key: solutions and hidden tests
* release directory ``assignments/<assignment>/`` student versions, made by ``tlcourse assignments generate``
* ``submitted/``, ``autograded/``, ``feedback/`` and ``gradebook.db`` appear next to this file while grading
  (they hold student work: never commit them)

To grade for credit, make a private course folder outside this repository (``tlcourse instructor init DIR``):
its own ``nbgrader_config.py`` calls the same :func:`tlcourse.grading.config.configure`.

Every autograde runs each submission in the grading sandbox (bubblewrap; see README, "Grading safely").

Environment variables:

* ``TLCOURSE_EXCHANGE``: the exchange folder through which ``nbgrader release_assignment``, ``fetch_assignment``,
  ``submit`` and ``collect`` pass notebooks. Default: ``<user cache>/tlcourse/nbgrader_exchange``, which works
  when instructor and students share one machine and one account. For a shared classroom server point it at a
  folder every account can write (``mkdir -m 777 /srv/tlcourse_exchange``).
* ``TLCOURSE_GRADING_TIMEOUT``: seconds one cell may run while autograding or validating (default 180).
* ``TLCOURSE_GRADING_MEMORY`` (default 4G), ``TLCOURSE_GRADING_PROCESSES`` (64),
  ``TLCOURSE_GRADING_NOTEBOOK_TIMEOUT`` (900 s): the limits of one graded submission.
* ``NBGRADER_EXECUTION``: set by nbgrader itself ("autograde" or "validate") while it executes a notebook;
  the assignments read it to shorten their heavy cells (fewer training epochs).
"""

from pathlib import Path

from tlcourse.grading.config import configure

configure(get_config(), Path(__file__).resolve().parent, source="solutions", release="assignments")  # noqa: F821
