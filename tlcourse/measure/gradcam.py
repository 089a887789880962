"""What a network looks at: Grad-CAM (Selvaraju et al. 2017) and vanilla-gradient saliency maps.

Grad-CAM weights each channel ``k`` of a convolutional layer's output ``A`` (N, K, h, w) by the mean
gradient of the class score over that channel's positions, ``alpha_k = mean_ij d y_c / d A_kij``, sums
the weighted channels and keeps the positive part: ``ReLU(sum_k alpha_k A_k)``, an (h, w) map of where
evidence *for* class ``c`` sits, upsampled (bilinear) to the input's size. Like captum's ``LayerGradCam``
followed by ``LayerAttribution.interpolate(..., "bilinear")``; ``tests/test_gradcam.py`` checks that.

Both functions run the model in eval mode, take gradients with ``torch.autograd.grad`` (no ``.grad``
is written to any parameter, frozen ones stay frozen) and give every layer its train/eval flag back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from tlcourse.core.lookup import lookup
from tlcourse.core.modes import preserved_modes
from tlcourse.measure.plots import _grid, _np, _to_displayable

__all__ = ["class_scores", "grad_cam", "gradient_saliency", "plot_heatmaps"]

Target = int | Sequence[int] | torch.Tensor


def class_scores(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """``logits[i, target[i]]`` for every image ``i`` (one class for all images when ``target`` is an int)."""
    index = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    index = index.expand(len(logits)) if index.numel() == 1 else index
    if index.numel() != len(logits):
        raise ValueError(f"target gives {index.numel()} classes for {len(logits)} images")
    return logits.gather(1, index.view(-1, 1)).squeeze(1)


def _prepared(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    device = next(model.parameters()).device
    # a leaf that needs its gradient: the layer's output then has one even when every parameter is frozen
    return images.detach().to(device).clone().requires_grad_(True)


def grad_cam(
    model: nn.Module, images: torch.Tensor, layer: str, target: Target, *, upsample: bool = True, relu: bool = True
) -> torch.Tensor:
    """Grad-CAM heat maps (N, H, W) of class ``target`` at the output of ``model``'s submodule ``layer``.

    ``layer`` is a name from ``model.named_modules()`` (e.g. ``"features.head"`` for EfficientNet-Lite,
    whose output is the last 7 x 7 map at 224 pixels); ``target`` a class index, or one per image.
    With ``upsample`` the maps are resized (bilinear) to the images' size, else they keep the layer's (h, w).
    Returned on the CPU, not normalised (divide by each map's maximum to plot them).
    """
    module = lookup(dict(model.named_modules()), layer, f"layer of {type(model).__name__}")
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _inputs, output: captured.append(output))
    inputs = _prepared(model, images)
    try:
        with preserved_modes(model), torch.enable_grad():
            model.eval()
            scores = class_scores(model(inputs), target)
            activation = captured[-1]
            (gradient,) = torch.autograd.grad(scores.sum(), activation)
    finally:
        handle.remove()
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # alpha_k: one weight per channel and image
    cam = (weights * activation.detach()).sum(dim=1, keepdim=True)
    if relu:
        cam = F.relu(cam)
    if upsample:
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear")
    return cam[:, 0].cpu()


def gradient_saliency(model: nn.Module, images: torch.Tensor, target: Target) -> torch.Tensor:
    """Vanilla-gradient saliency (Simonyan et al. 2014): ``max_c |d y_target / d x_c|`` per pixel, (N, H, W) on the CPU."""
    inputs = _prepared(model, images)
    with preserved_modes(model), torch.enable_grad():
        model.eval()
        (gradient,) = torch.autograd.grad(class_scores(model(inputs), target).sum(), inputs)
    return gradient.abs().amax(dim=1).cpu()


def plot_heatmaps(
    images: torch.Tensor,
    heatmaps: torch.Tensor,
    titles: Sequence[str] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    title_colors: Sequence[str] | None = None,
    alpha: float = 0.5,
    quantile: float = 1.0,
    ncols: int = 4,
    title: str | None = None,
) -> Figure:
    """Each image (N, C, H, W) with its heat map (N, H, W) laid over it, red where the map is hottest.

    Each map is scaled to its own ``quantile`` (1.0: its maximum; 0.99 keeps a few extreme pixels of a
    gradient saliency map from turning the rest dark) and clipped to 0..1.
    """
    fig, axes = _grid(len(images), ncols, cell=2.3)
    for k, (ax, image, heat) in enumerate(zip(axes, images, heatmaps)):
        shown = _to_displayable(image, mean, std)
        ax.imshow(_np(shown), cmap="gray" if shown.dim() == 2 else None)
        heat = heat.detach().cpu().float()
        top = heat.flatten().quantile(quantile) if quantile < 1 else heat.max()
        ax.imshow(_np((heat / top.clamp(min=1e-12)).clamp(0, 1)), cmap="jet", alpha=alpha, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[k], fontsize=8, color=title_colors[k] if title_colors is not None else "black")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
