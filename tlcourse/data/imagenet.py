"""ImageNet-1k class names, offline: read from torchvision's weights metadata (no download needed)."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["ANIMAL_CLASSES", "class_index", "class_names", "is_animal"]

# ImageNet-1k orders its classes by WordNet id, and the ids of WordNet's animal subtree come first:
# classes 0 (tench) to 397 (puffer) are animals; 398 (abacus) to 999 are objects, places, foods, plants,
# fungi and a few people (scuba diver, groom), none of them animals to WordNet.
ANIMAL_CLASSES = range(0, 398)


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


def is_animal(index: int) -> bool:
    """Whether ImageNet class ``index`` is an animal in WordNet's hierarchy (see :data:`ANIMAL_CLASSES`)."""
    if not 0 <= index < 1000:
        raise IndexError(f"ImageNet-1k class indices run from 0 to 999, not {index}")
    return index in ANIMAL_CLASSES
