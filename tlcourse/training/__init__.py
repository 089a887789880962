"""Training: one step, one loop (``fit``), its callbacks, and the learning-rate range test built on them.

>>> from tlcourse.training import fit, evaluate
>>> history = fit(model, train_loader, val_loader, epochs=5, scheduler="onecycle")
>>> evaluate(model, test_loader).accuracy
"""

from tlcourse.training.callbacks import Callback, Checkpoint, EarlyStopping, TrainState
from tlcourse.training.history import EpochRecord, EvalResult, History
from tlcourse.training.loop import evaluate, fit
from tlcourse.training.lr_finder import LRFinder, LRFinderResult, lr_range_test, suggest_lr
from tlcourse.training.schedules import SCHEDULES, make_scheduler
from tlcourse.training.step import Precision, TrainStep

__all__ = [
    "SCHEDULES",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochRecord",
    "EvalResult",
    "History",
    "LRFinder",
    "LRFinderResult",
    "Precision",
    "TrainState",
    "TrainStep",
    "evaluate",
    "fit",
    "lr_range_test",
    "make_scheduler",
    "suggest_lr",
]
