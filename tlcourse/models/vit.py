"""Vision Transformer (Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words"), small enough for a CPU.

An image is cut into non-overlapping ``P x P`` patches; each patch is flattened and linearly
projected to a ``D``-dimensional token (:class:`PatchEmbedding`, done as a convolution whose kernel
and stride both equal ``P``). A learned class token is prepended, learned position embeddings are
added, and a stack of pre-norm Transformer encoder blocks (:class:`EncoderBlock`: multi-head
self-attention, then an MLP, each inside a residual connection) mixes the tokens. The class token's
final state, layer-normalised, goes through a linear head.

:class:`MultiHeadSelfAttention` has two paths that compute the same function:

* the fast path calls :func:`torch.nn.functional.scaled_dot_product_attention`, which fuses
  ``softmax(Q K^T / sqrt(d)) V`` into one kernel (flash / memory-efficient attention on GPUs) and
  never materialises the attention matrix, so it cannot return it;
* the explicit path computes ``softmax(Q K^T / sqrt(d))`` as a tensor, multiplies it by ``V`` and
  can return it: that is what :meth:`VisionTransformer.attention_maps` uses to draw what each head
  looks at.

(``torch.nn.MultiheadAttention`` implements the same layer; it is written out here so that the
lesson can show the computation and read the weights of every head.)

:class:`ViTBaselineCNN` is the small convolutional network the lesson compares the ViT with, at a similar
parameter count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import MLP

from tlcourse.core.lookup import lookup
from tlcourse.models.blocks import ConvNormAct


@dataclass(frozen=True)
class ViTConfig:
    """Everything that defines a :class:`VisionTransformer`."""

    image_size: int = 28
    patch_size: int = 4
    in_channels: int = 1
    num_classes: int = 10
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    @property
    def grid_size(self) -> int:
        """Patches along each side: ``image_size // patch_size``."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """``N = (H / P) * (W / P)``."""
        return self.grid_size**2

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


#: Named configurations. "tiny" is the lesson's: 28x28 digits (or 32x32 CIFAR-10 images), 4x4 patches.
#: "vit_b_16" is the paper's ViT-Base/16 on 224x224 ImageNet images, for comparison of sizes only.
VIT_CONFIGS: dict[str, ViTConfig] = {
    "tiny": ViTConfig(image_size=28, patch_size=4, dim=64, depth=4, heads=4, mlp_ratio=2.0),
    "vit_b_16": ViTConfig(
        image_size=224, patch_size=16, in_channels=3, num_classes=1000, dim=768, depth=12, heads=12, mlp_ratio=4.0
    ),
}


class PatchEmbedding(nn.Module):
    """Image ``(B, C, H, W)`` -> patch tokens ``(B, N, D)`` with ``N = (H / P) * (W / P)``.

    Flattening each ``P x P x C`` patch and multiplying it by a ``(P*P*C) x D`` matrix is exactly a
    convolution with ``D`` filters of size ``P x P`` and stride ``P``: each filter position is one
    patch, and no two positions overlap.
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(f"expected {self.image_size}x{self.image_size} images, got {height}x{width}")
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over tokens ``(B, T, D)``; ``heads`` heads of ``D / heads`` dimensions.

    ``forward(x)`` uses :func:`~torch.nn.functional.scaled_dot_product_attention`;
    ``forward(x, return_weights=True)`` computes the attention matrix explicitly and returns
    ``(output, weights)`` with ``weights`` of shape ``(B, heads, T, T)``, each row summing to 1.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)  # queries, keys and values of every head in one matmul
        self.proj = nn.Linear(dim, dim)  # mixes the heads' outputs back into D dimensions

    def _split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, head_dim)
        return q, k, v

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self._split_heads(x)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if return_weights:
            scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, heads, T, T): query i against key j
            weights = scores.softmax(dim=-1)  # each row: how token i spreads its attention
            mixed = F.dropout(weights, p=dropout, training=self.training) @ v
        else:
            mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        out = self.proj(mixed.transpose(1, 2).flatten(2))  # (B, T, heads * head_dim)
        return (out, weights) if return_weights else out


class EncoderBlock(nn.Module):
    """Pre-norm Transformer encoder block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, [hidden, dim], activation_layer=nn.GELU, dropout=dropout)

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if return_weights:
            attended, weights = self.attn(self.norm1(x), return_weights=True)
        else:
            attended, weights = self.attn(self.norm1(x)), None
        x = x + attended
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if return_weights else x


class VisionTransformer(nn.Module):
    """ViT built from a :class:`ViTConfig`: patches -> [class] + tokens + positions -> encoder -> head."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbedding(config.image_size, config.patch_size, config.in_channels, config.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.dim))
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(config.dim, config.heads, config.mlp_ratio, config.dropout) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.num_classes)
        nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        # Linear layers keep PyTorch's default initialisation: on small data it trains faster here than
        # the paper's truncated normal (std 0.02), which suits ImageNet-scale pre-training.

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's input ``(B, N + 1, D)``: class token first, position embeddings added."""
        patches = self.patch_embed(images)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return self.dropout(torch.cat([cls, patches], dim=1) + self.pos_embedding)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.tokens(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer for ``images``: a list of ``depth`` tensors ``(B, heads, N+1, N+1)``.

        Runs the explicit attention path; the model's train/eval mode is left as it was.
        """
        x = self.tokens(images)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_weights=True)
            maps.append(weights)
        return maps


def vit(name: str = "tiny", **overrides: int | float) -> VisionTransformer:
    """Build a ViT from a named configuration in :data:`VIT_CONFIGS`, with fields overridden by keyword."""
    return VisionTransformer(replace(lookup(VIT_CONFIGS, name, "ViT configuration"), **overrides))


def cls_attention(weights: torch.Tensor, grid_size: int) -> torch.Tensor:
    """The class token's attention to each patch, ``(B, heads, T, T)`` -> ``(B, heads, grid, grid)``.

    Row 0 of the attention matrix is the class token's query; dropping column 0 (itself) leaves one
    weight per patch, which reshapes to the patch grid. (The N values sum to 1 minus its self-weight.)
    """
    per_patch = weights[..., 0, 1:]
    if per_patch.shape[-1] != grid_size**2:
        raise ValueError(f"{per_patch.shape[-1]} patch weights do not fill a {grid_size}x{grid_size} grid")
    return per_patch.reshape(*per_patch.shape[:-1], grid_size, grid_size)


def attention_rollout(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar and Zuidema, 2020): how much each token draws on each input token.

    Averages the heads of every layer, adds the identity for the residual connection, renormalises
    the rows, and multiplies the layers' matrices: ``(B, T, T)``. Row 0, columns 1.. is the class
    token's rolled-out attention to the patches.
    """
    rollout = None
    for weights in maps:
        mean = weights.mean(dim=1)
        eye = torch.eye(mean.shape[-1], device=mean.device, dtype=mean.dtype)
        layer = (mean + eye) / 2
        layer = layer / layer.sum(dim=-1, keepdim=True)
        rollout = layer if rollout is None else layer @ rollout
    if rollout is None:
        raise ValueError("no attention maps given")
    return rollout


class ViTBaselineCNN(nn.Sequential):
    """A small CNN to compare with the ViT: stages of :class:`~tlcourse.models.blocks.ConvNormAct` (3x3
    convolution, batch norm, ReLU), 2x2 max pooling between stages.

    ``stages`` lists ``(channels, convolutions)`` per stage; the last stage ends in global average
    pooling and a linear classifier. The default has about as many parameters (145k) and FLOPs
    (12 MFLOPs on a 28x28 digit) as ``vit("tiny")`` (139k, 16 MFLOPs).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        stages: Sequence[tuple[int, int]] = ((16, 1), (32, 2), (64, 2), (128, 1)),
    ) -> None:
        layers: list[nn.Module] = []
        channels = in_channels
        for index, (out_channels, convs) in enumerate(stages):
            if index > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs):
                layers.append(ConvNormAct(channels, out_channels, 3, activation=partial(nn.ReLU, inplace=True)))
                channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        super().__init__(*layers)
