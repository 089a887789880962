"""The course as a tool: the ``tlcourse`` command (``cli``), ``doctor``, the headless lesson runner
(``lessons``) and the results each lesson records (``results``). Grading lives in :mod:`tlcourse.grading`."""
