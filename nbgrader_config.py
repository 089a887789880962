"""nbgrader configuration of the tlcourse assignments (read by every ``nbgrader`` command run here).

Layout (nbgrader's names -> ours):

* source directory  ``solutions/<assignment>/``   instructor versions: solutions and hidden tests
* release directory ``assignments/<assignment>/`` student versions, made by ``tlcourse assignments generate``
* ``submitted/``, ``autograded/``, ``feedback/`` and ``gradebook.db`` appear next to this file while grading
  (they hold student work: never commit them)

Environment variables:

* ``TLCOURSE_EXCHANGE``: the exchange folder through which ``nbgrader release_assignment``, ``fetch_assignment``,
  ``submit`` and ``collect`` pass notebooks. Default: ``<user cache>/tlcourse/nbgrader_exchange``, which works
  when instructor and students share one machine and one account. For a shared classroom server point it at a
  folder every account can write (``mkdir -m 777 /srv/tlcourse_exchange``).
* ``TLCOURSE_GRADING_TIMEOUT``: seconds one cell may run while autograding or validating (default 180).
* ``NBGRADER_EXECUTION``: set by nbgrader itself ("autograde" or "validate") while it executes a notebook;
  the assignments read it to shorten their heavy cells (fewer training epochs).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "tlcourse"
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"


def _exchange_root() -> Path:
    if os.environ.get("TLCOURSE_EXCHANGE"):
        return Path(os.environ["TLCOURSE_EXCHANGE"]).expanduser()
    from tlcourse.config import cache_dir  # TLCOURSE_CACHE, else the platform's user cache

    return cache_dir() / "nbgrader_exchange"


_exchange = _exchange_root()
_exchange.mkdir(parents=True, exist_ok=True)  # nbgrader requires a pre-existing exchange
c.Exchange.root = str(_exchange)
c.Exchange.path_includes_course = True

# The heaviest graded cell trains LeNet-5 for 5 epochs on 3,500 digits under NBGRADER_EXECUTION:
# about 15 s on a busy 2-core CPU. 180 s leaves a 10x margin and still stops an endless loop.
c.ExecutePreprocessor.timeout = int(os.environ.get("TLCOURSE_GRADING_TIMEOUT", "180"))
