"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): train a student on a teacher's softened outputs.

With temperature ``T`` the teacher's soft targets are ``softmax(teacher_logits / T)``; the student is
trained on

    loss = alpha * T**2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, labels)

The ``T**2`` keeps the soft term's gradients on the same scale as the hard term's when ``T`` changes
(the soft gradients shrink as ``1 / T**2``; section 2 of the paper). The KL divergence is taken from the
teacher's distribution to the student's, whose gradient is that of the cross-entropy with the soft targets.

The loop stays :func:`tlcourse.training.fit`: the teacher runs once over the training images
(:func:`teacher_targets`, no augmentation, so its outputs do not change between epochs) and each
image's target becomes one row ``(label, teacher logits...)`` (:func:`pack_targets`; label ``-1`` for an
image without one, a *transfer set* image). :class:`DistillationLoss` is the ``loss_fn`` that reads those
rows; :func:`tlcourse.training.step.class_index` reads their label column for the running accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tlcourse.core.device import get_device
from tlcourse.core.modes import inference_mode

__all__ = ["UNLABELLED", "DistillationLoss", "distillation_loss", "pack_targets", "teacher_targets", "unpack_targets"]

#: The label of an image that has none (only the teacher's soft targets train on it).
UNLABELLED = -1


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``, a batch mean.

    The KL term is averaged over every row; the cross-entropy over the rows whose label is not
    :data:`UNLABELLED` (zero when no row has a label). ``alpha=0`` is plain cross-entropy and
    ``alpha=1`` learns from the teacher alone.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")  # fmt: skip
    student = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    soft = F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2
    labelled = labels != UNLABELLED
    hard = F.cross_entropy(student_logits[labelled], labels[labelled]) if labelled.any() else soft.new_zeros(())
    return alpha * soft + (1.0 - alpha) * hard


def pack_targets(labels: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """One float row per image: ``(label, teacher logits...)``, shape ``(N, 1 + C)``."""
    if labels.shape[0] != teacher_logits.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {teacher_logits.shape[0]} teacher outputs")
    return torch.cat([labels.to(teacher_logits.dtype)[:, None], teacher_logits], dim=1)


def unpack_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels, teacher_logits)`` of rows made by :func:`pack_targets`."""
    return targets[:, 0].long(), targets[:, 1:]


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """The teacher's logits on ``images`` (eval mode), packed with ``labels`` (``None``: all unlabelled)."""
    dev = get_device(device)
    teacher.to(dev)
    with inference_mode(teacher):
        logits = torch.cat([teacher(images[i:i + batch_size].to(dev)).float().cpu()
                            for i in range(0, len(images), batch_size)])  # fmt: skip
    if labels is None:
        labels = torch.full((len(images),), UNLABELLED, dtype=torch.long)
    return pack_targets(labels, logits)


@dataclass
class DistillationLoss:
    """``loss_fn`` for :func:`~tlcourse.training.fit` on packed targets (:func:`pack_targets`).

    Plain integer labels are accepted too (then it is the cross-entropy), so the same loss can
    validate on an ordinary labelled loader.
    """

    temperature: float = 4.0
    alpha: float = 0.9

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not targets.is_floating_point():
            return F.cross_entropy(outputs, targets)
        labels, teacher_logits = unpack_targets(targets)
        return distillation_loss(outputs, teacher_logits, labels, temperature=self.temperature, alpha=self.alpha)
