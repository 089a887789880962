"""Domain adaptation: the same task on a new domain, with the new domain's images but not its labels.

Lesson 11 adapts a digit classifier trained on one handwriting set (the *source*, labelled) to another
(the *target*, unlabelled). The pieces, each small:

* :func:`adapt_bn` (AdaBN, Li et al. 2016): recompute every batch norm's running mean and variance on
  target images; no weight changes, no labels, one pass over the images;
* :func:`coral_loss` (Deep CORAL, Sun & Saenko 2016): the distance between the covariance matrices of
  source and target features, ``||C_s - C_t||_F^2 / (4 d^2)``;
* :func:`grad_reverse` (Ganin & Lempitsky 2015; Ganin et al. 2016, DANN): the identity going forward,
  the gradient times ``-scale`` going back, so that a :class:`DomainDiscriminator` trained to tell the
  domains apart trains the features to make that impossible; :func:`dann_schedule` ramps ``scale`` up;
* :class:`CoralAlignment` and :class:`AdversarialAlignment`: the two as an *alignment* module
  ``(source_features, target_features) -> loss``; :func:`alignment` builds one by name;
* :class:`DomainStep` (a :class:`~tlcourse.training.step.TrainStep` on ``(source images, source labels,
  target images)``) and :func:`fit_domain`, the epoch loop around it: cross-entropy on the source batch
  plus ``weight`` times the alignment loss. The features are what the classifier's head sees
  (:func:`~tlcourse.transfer.heads.head_name`, as in :func:`~tlcourse.transfer.features.extract_features`).
  Losses are summed on the device and read once per epoch, as in :func:`~tlcourse.training.fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tlcourse.core.device import get_device, peak_memory_mb, reset_peak_memory
from tlcourse.core.lookup import lookup
from tlcourse.core.modes import preserved_modes
from tlcourse.training import evaluate
from tlcourse.training.history import EpochRecord, History
from tlcourse.training.step import Precision, TrainStep
from tlcourse.transfer.batchnorm import batch_norms
from tlcourse.transfer.heads import head_name

__all__ = [
    "ALIGNMENTS",
    "AdversarialAlignment",
    "CoralAlignment",
    "DomainDiscriminator",
    "DomainHistory",
    "DomainStep",
    "adapt_bn",
    "alignment",
    "coral_loss",
    "covariance",
    "dann_schedule",
    "domain_accuracy",
    "fit_domain",
    "grad_reverse",
]


# ---------------------------------------------------------------- AdaBN


def adapt_bn(model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, device: str | torch.device = "auto"
             ) -> nn.Module:  # fmt: skip
    """AdaBN: every batch norm's running statistics recomputed on ``images`` (N, C, H, W); returns ``model``.

    The statistics are reset and averaged over all batches (``momentum=None``: a plain mean, the
    order of the batches does not matter); weights and the layers' train/eval flags are left as they were.
    """
    norms = batch_norms(model)
    if not norms:
        raise ValueError(f"{type(model).__name__} has no batch norm: AdaBN has nothing to re-estimate")
    dev = get_device(device)
    model.to(dev)
    momenta = [bn.momentum for bn in norms]
    try:
        with preserved_modes(model), torch.no_grad():
            model.eval()
            for bn in norms:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative moving average: the mean over every batch seen
                bn.train()
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size].to(dev))
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
    return model


# ---------------------------------------------------------------- CORAL


def covariance(features: torch.Tensor) -> torch.Tensor:
    """The ``(d, d)`` covariance of a batch of features ``(n, d)`` (unbiased, divided by ``n - 1``)."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"covariance needs a (n >= 2, d) batch, got shape {tuple(features.shape)}")
    centred = features - features.mean(0, keepdim=True)
    return centred.T @ centred / (features.shape[0] - 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL's loss, ``||C_s - C_t||_F^2 / (4 d^2)``, for source and target features ``(n, d)``."""
    if source.shape[1] != target.shape[1]:
        raise ValueError(f"source and target features differ in width: {source.shape[1]} vs {target.shape[1]}")
    d = source.shape[1]
    return (covariance(source.float()) - covariance(target.float())).pow(2).sum() / (4 * d * d)


def domain_accuracy(source: torch.Tensor, target: torch.Tensor, *, seed: int = 0, max_iter: int = 100) -> float:
    """How well a linear classifier tells the two domains apart from their features ``(n, d)``: 0.5 is not at all.

    The larger set is subsampled to the smaller one's size; a random half of the images trains a logistic
    regression (standardised features, L-BFGS, a small L2 penalty), the other half measures its accuracy.
    (Ben-David et al. 2007 turn its error into the *proxy A-distance*, ``2 (1 - 2 error)``.)
    """
    generator = torch.Generator().manual_seed(seed)
    n = min(len(source), len(target))
    if n < 4:
        raise ValueError(f"domain_accuracy needs at least 4 images per domain, got {n}")
    pick = lambda x: x[torch.randperm(len(x), generator=generator)[:n]].float().cpu()
    x = torch.cat([pick(source), pick(target)])
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    order = torch.randperm(2 * n, generator=generator)
    train, test = order[:n], order[n:]
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x[train] @ weight + bias
        loss = F.binary_cross_entropy_with_logits(logits, y[train]) + 1e-3 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float(((x[test] @ weight + bias > 0).float() == y[test]).float().mean())


# ---------------------------------------------------------------- gradient reversal (DANN)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Gradient reversal: ``x`` unchanged going forward, its gradient multiplied by ``-scale`` going back."""
    return _GradReverse.apply(x, scale)


def dann_schedule(progress: float, gamma: float = 10.0) -> float:
    """DANN's reversal strength at ``progress`` (0 to 1) through training: ``2 / (1 + exp(-gamma p)) - 1``.

    It rises from 0 to about 1, so that the discriminator's noisy early gradients do not wreck the features.
    """
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DomainDiscriminator(nn.Sequential):
    """Features ``(n, d)`` -> one logit per image, "is this image from the target domain?" (a small MLP)."""

    def __init__(self, features: int, hidden: int = 64) -> None:
        super().__init__(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))


# ---------------------------------------------------------------- alignment modules


class CoralAlignment(nn.Module):
    """``(source_features, target_features) -> coral_loss``; no parameters of its own."""

    progress: float = 0.0  # the training loop sets it; CORAL does not use it

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return coral_loss(source, target)


class AdversarialAlignment(nn.Module):
    """DANN: the discriminator's cross-entropy on gradient-reversed features (source 0, target 1).

    Minimising it trains the discriminator to tell the domains apart; the reversed gradient trains the
    features to confuse it. The loop sets ``progress`` (0 to 1), and the reversal strength follows
    :func:`dann_schedule` (``schedule=False``: always 1).
    """

    def __init__(self, features: int, hidden: int = 64, schedule: bool = True) -> None:
        super().__init__()
        self.discriminator = DomainDiscriminator(features, hidden)
        self.schedule = schedule
        self.progress = 0.0

    @property
    def scale(self) -> float:
        return dann_schedule(self.progress) if self.schedule else 1.0

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self.discriminator(grad_reverse(torch.cat([source, target]), self.scale)).squeeze(1)
        domain = torch.cat([torch.zeros(len(source), device=logits.device), torch.ones(len(target), device=logits.device)])
        return F.binary_cross_entropy_with_logits(logits.float(), domain)


#: Alignment methods by name: ``alignment(name, features)`` builds one.
ALIGNMENTS: dict[str, type[nn.Module]] = {"coral": CoralAlignment, "dann": AdversarialAlignment}


def alignment(name: str, features: int) -> nn.Module:
    """The alignment module ``name`` (``"coral"`` or ``"dann"``) for ``features``-wide features."""
    kind = lookup(ALIGNMENTS, name, "alignment")
    return kind() if kind is CoralAlignment else kind(features)


# ---------------------------------------------------------------- training


@dataclass
class DomainStep(TrainStep):
    """One optimizer step on ``(source images, source labels, target images)``.

    Source and target go through the network as one batch (its batch norms see both domains, as at
    test time after training); the features are the input of ``model``'s head. The loss is
    ``loss_fn(source outputs, labels) + weight * align(source features, target features)``; ``align``'s
    parameters (the DANN discriminator) must be in the optimizer. Returns ``(source outputs, labels,
    total loss, alignment loss)``, all on the device.
    """

    align: nn.Module = field(default_factory=CoralAlignment)
    weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._captured: list[torch.Tensor] = []
        head = dict(self.model.named_modules())[head_name(self.model)]
        self._hook = head.register_forward_pre_hook(lambda m, args: self._captured.append(torch.flatten(args[0], 1)))

    def close(self) -> None:
        """Remove the hook that captures the features."""
        self._hook.remove()

    def __call__(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        sources, labels = self.precision.batch(batch)
        targets = batch[2].to(self.precision.device, non_blocking=True)
        n = len(sources)
        self.optimizer.zero_grad(set_to_none=True)
        self._captured.clear()
        with self.precision.autocast():
            outputs = self.model(torch.cat([sources, targets]))
            features = self._captured.pop()
            class_loss = self.loss_fn(outputs[:n], labels)
            align_loss = self.align(features[:n], features[n:])
            loss = class_loss + self.weight * align_loss
        self.update(loss)
        return outputs[:n].detach(), labels, loss.detach(), align_loss.detach()


@dataclass
class DomainHistory(History):
    """A :class:`~tlcourse.training.History` (loss and accuracy on the source batches) plus the mean
    alignment loss of every epoch (``alignment_loss``)."""

    method: str = ""
    alignment_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "method": self.method, "alignment_loss": list(self.alignment_loss)}


def _pairs(source: Iterable[Any], target: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """Every source batch with the next target batch; the target loader starts over when it runs out."""
    target_batches = iter(target)
    for batch in source:
        try:
            other = next(target_batches)
        except StopIteration:
            target_batches = iter(target)
            other = next(target_batches)
        yield batch, other


def fit_domain(
    model: nn.Module,
    source_loader: Iterable[Any],
    target_loader: Iterable[Any],
    *,
    method: str | nn.Module = "coral",
    weight: float = 1.0,
    epochs: int,
    lr: float = 1e-3,
    val_loader: Iterable[Any] | None = None,
    device: str | torch.device = "auto",
) -> DomainHistory:
    """Train ``model`` on labelled source batches and unlabelled target batches (their labels, if any, unused).

    One epoch is one pass over ``source_loader``, each batch paired with a batch of target images.
    ``method``: ``"coral"``, ``"dann"`` or an alignment module. AdamW over the model's trainable
    parameters and the alignment's, cosine decay per step. ``val_loader`` (optional, labelled) is
    only evaluated for the record, never used to train or choose. Returns a :class:`DomainHistory`.
    """
    if epochs < 1:
        raise ValueError("epochs must be >= 1")
    precision = Precision(get_device(device))
    model = precision.prepare(model)
    width = dict(model.named_modules())[head_name(model)].in_features
    align = alignment(method, width) if isinstance(method, str) else method
    align.to(precision.device)
    params = [p for p in list(model.parameters()) + list(align.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    steps = epochs * len(source_loader)  # type: ignore[arg-type]
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    step = DomainStep(model, optimizer, precision=precision, align=align, weight=weight)
    history = DomainHistory(device=str(precision.device), method=method if isinstance(method, str) else type(method).__name__)
    done = 0
    try:
        for epoch in range(1, epochs + 1):
            reset_peak_memory(precision.device)
            model.train()
            align.train()
            sums = torch.zeros(3, device=precision.device)  # loss * n, correct, alignment * n
            n_seen = images_seen = 0
            start = time.perf_counter()
            for source_batch, target_batch in _pairs(source_loader, target_loader):
                align.progress = done / steps
                lr_used = optimizer.param_groups[0]["lr"]
                outputs, labels, loss, align_loss = step((source_batch[0], source_batch[1], target_batch[0]))
                schedule.step()
                done += 1
                n = len(labels)
                n_seen += n
                images_seen += n + len(target_batch[0])
                correct = (outputs.argmax(1) == labels).sum()
                sums += torch.stack([loss.float() * n, correct.float(), align_loss.float() * n])
            train_seconds = time.perf_counter() - start
            total_loss, total_correct, total_align = sums.tolist()  # the epoch's one read from the device
            val = evaluate(model, val_loader, device=precision.device) if val_loader is not None else None
            history.records.append(EpochRecord(
                epoch=epoch, train_loss=total_loss / n_seen, train_acc=total_correct / n_seen,
                val_loss=val.loss if val else None, val_acc=val.accuracy if val else None, lr=float(lr_used),
                seconds=time.perf_counter() - start, images_per_sec=images_seen / max(train_seconds, 1e-9),
                peak_gpu_mem_mb=peak_memory_mb(precision.device),
            ))  # fmt: skip
            history.alignment_loss.append(total_align / n_seen)
    finally:
        step.close()
    return history

