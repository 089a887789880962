"""tlcourse: helper package of the transfer-learning course (data, models, training, plots, CLI)."""

__version__ = "0.1.0"
