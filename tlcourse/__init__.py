"""tlcourse: helper package of the transfer-learning course (data, models, training, plots, CLI)."""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while they wait make torch 10-60x slower on a small CPU as soon as
# another process (a DataLoader worker, a second notebook) needs a core. Passive waiting costs
# nothing measurable on an idle machine. It only takes effect if set before torch is imported,
# so import tlcourse first; lesson kernels started by `tlcourse run` inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
