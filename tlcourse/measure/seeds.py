"""One comparison repeated on several seeds, paired by seed, and what it lets you conclude.

With 153 validation images, two recipes often differ by a few images, and one training run's luck (the
order of the photos, the dropout masks) moves the accuracy by as much. :class:`SeedComparison` holds both
sides of a comparison seed by seed (the same seed gives both sides the same order of photos), counts on how
many seeds the option was ahead, and says in words whether the seeds agree (:meth:`SeedComparison.verdict`).
:func:`adopt` is the decision rule of lesson 08: take an option only if it was ahead on every seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SeedComparison", "adopt"]


@dataclass(frozen=True)
class SeedComparison:
    """An option against a reference on the same seeds: validation accuracy and loss of each, seed by seed.

    ``images`` is the size of the validation set, so that accuracy gaps read as a number of images.
    """

    label: str
    seeds: list[int]
    val_acc: list[float]
    reference_val_acc: list[float]
    val_loss: list[float]
    reference_val_loss: list[float]
    images: int

    def __post_init__(self) -> None:
        lengths = {len(self.seeds), len(self.val_acc), len(self.reference_val_acc), len(self.val_loss),
                   len(self.reference_val_loss)}  # fmt: skip
        if len(lengths) != 1 or not self.seeds:
            raise ValueError(f"{self.label}: every list needs one value per seed ({len(self.seeds)} seeds)")

    @classmethod
    def from_runs(
        cls, label: str, runs: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]], images: int
    ) -> SeedComparison:
        """From two lists of run records (each with ``seed``, ``val_acc``, ``val_loss``), paired by position."""
        if [r["seed"] for r in runs] != [r["seed"] for r in reference]:
            raise ValueError(f"{label}: the two sides ran on different seeds")
        return cls(label, [r["seed"] for r in runs], [r["val_acc"] for r in runs],
                   [r["val_acc"] for r in reference], [r["val_loss"] for r in runs],
                   [r["val_loss"] for r in reference], images)  # fmt: skip

    @property
    def gap_images(self) -> list[int]:
        """Per seed: how many more validation images the option got right than the reference."""
        return [round((a - b) * self.images) for a, b in zip(self.val_acc, self.reference_val_acc)]

    @property
    def mean_gap_images(self) -> float:
        return sum(self.gap_images) / len(self.seeds)

    @property
    def ahead(self) -> int:
        """Seeds on which the option got more images right."""
        return sum(g > 0 for g in self.gap_images)

    @property
    def behind(self) -> int:
        """Seeds on which the reference got more images right."""
        return sum(g < 0 for g in self.gap_images)

    @property
    def consistent(self) -> bool:
        """More than one seed, and the option strictly ahead on all of them or strictly behind on all."""
        n = len(self.seeds)
        return n > 1 and (self.ahead == n or self.behind == n)

    @property
    def lower_loss(self) -> int:
        """Seeds on which the option reached the lower validation loss."""
        return sum(a < b for a, b in zip(self.val_loss, self.reference_val_loss))

    def verdict(self, if_ahead: str, if_behind: str) -> str:
        """What the seeds say, in a sentence; ``if_ahead``/``if_behind`` name the winning side, e.g. "augmentation ahead"."""
        n, mean = len(self.seeds), self.mean_gap_images
        tied = n - self.ahead - self.behind
        if n == 1:
            return "One seed cannot say whether the gap is more than the luck of one run."
        if tied == n:
            return f"The two sides tied on all {n} seeds: no difference this data can see."
        if self.consistent:
            side = if_ahead if self.ahead == n else if_behind
            return (f"{side[0].upper()}{side[1:]} on all {n} seeds, by {abs(mean):.1f} images on average. A coin "
                    f"flip would give the same sign on all {n} seeds 1 time in {2 ** (n - 1)}: evidence, not proof.")
        parts = [f"{if_ahead} on {self.ahead} seed{'s' * (self.ahead != 1)}",
                 f"{if_behind} on {self.behind}"] + ([f"tied on {tied}"] if tied else [])
        sentence = ", ".join(parts)
        return (f"{sentence[0].upper()}{sentence[1:]} ({mean:+.1f} images on average): the seeds do not agree, so a "
                f"gap this size is within the luck of one run, and this data cannot rank the two.")

    def to_dict(self) -> dict[str, Any]:
        """Plain fields plus the derived counts, for a lesson's results JSON."""
        return {**asdict(self), "gap_images": self.gap_images, "mean_gap_images": self.mean_gap_images,
                "ahead": self.ahead, "behind": self.behind, "consistent": self.consistent,
                "lower_loss": self.lower_loss}  # fmt: skip


def adopt(comparison: SeedComparison) -> bool:
    """Take the option only if it was ahead on every seed; otherwise keep the reference (the simpler choice)."""
    return comparison.consistent and comparison.ahead == len(comparison.seeds)
