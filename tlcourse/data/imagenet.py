"""ImageNet-1k class names, offline: read from torchvision's weights metadata (no download needed)."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["class_index", "class_names"]


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    from torchvision.models import get_weight

    names = tuple(get_weight("ResNet18_Weights.IMAGENET1K_V1").meta["categories"])
    assert len(names) == 1000, len(names)
    return names


def class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order (``class_names()[310] == "ant"``)."""
    return list(_names())


def class_index(name: str) -> int:
    """Index of an ImageNet class by its exact name, e.g. ``class_index("bee") == 309``."""
    try:
        return _names().index(name)
    except ValueError:
        close = [n for n in _names() if name.lower() in n.lower()][:5]
        raise KeyError(f"No ImageNet class named {name!r}" + (f"; did you mean {close}?" if close else "")) from None
