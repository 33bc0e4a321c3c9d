"""The row schema shared by MILANNOTATIONS, synthetic annotation sets and training data.

One row per unit. Images travel either inline (``images``, where they may be redistributed) or
as stable keys into a source (``source`` + ``image_keys``) from which a loader reads them back
with the same crop the exemplars were computed with. Masks are bit-packed: 15 masks of
224x224 take 94 KB packed instead of 750 KB as bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import datasets

    from milan_plugin.exemplars.exemplar_set import ExemplarSet

COLUMNS: tuple[str, ...] = (
    "model",
    "dataset",
    "source",
    "layer",
    "unit",
    "image_keys",
    "image_ids",
    "images",
    "masks",
    "mask_shape",
    "activations",
    "descriptions",
)


def annotation_features() -> datasets.Features:
    """The ``datasets`` features of an annotation row (see the module docstring)."""
    from datasets import Features, Image, List, Value

    return Features(
        {
            "model": Value("string"),
            "dataset": Value("string"),
            "source": Value("string"),
            "layer": Value("string"),
            "unit": Value("int64"),
            "image_keys": List(Value("string")),
            "image_ids": List(Value("int64")),
            "images": List(Image()),
            "masks": Value("binary"),
            "mask_shape": List(Value("int32")),
            "activations": List(Value("float32")),
            "descriptions": List(Value("string")),
        }
    )


def pack_masks(masks: torch.Tensor | np.ndarray) -> tuple[bytes, list[int]]:
    """Bit-pack boolean masks of any shape; returns the bytes and the shape to unpack them."""
    array = masks.numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    array = array.astype(bool, copy=False)
    return np.packbits(array.reshape(-1)).tobytes(), [int(size) for size in array.shape]


def unpack_masks(data: bytes, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pack_masks`: a bool tensor of ``shape``."""
    count = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count)
    return torch.from_numpy(bits.astype(bool).reshape(tuple(shape)))


def exemplar_rows(
    exemplars: ExemplarSet,
    descriptions: Mapping[int, Sequence[str]],
    *,
    model: str,
    dataset: str,
    include_images: bool = False,
    mask_size: int = 224,
) -> list[dict[str, Any]]:
    """Annotation rows for the units of ``exemplars`` that have descriptions.

    With ``include_images`` the exemplar images are embedded as PNG; otherwise rows carry only
    keys and the source spec, and readers join images from the source.
    """
    from PIL import Image

    rows = []
    for unit, texts in descriptions.items():
        row = exemplars.row(unit)
        packed, shape = pack_masks(exemplars.masks(unit, size=mask_size))
        images = []
        if include_images:
            images = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in exemplars.images(unit)]
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "source": str(exemplars.settings.get("source_spec", "")),
                "layer": exemplars.layer,
                "unit": int(unit),
                "image_keys": list(exemplars.keys[row]),
                "image_ids": [int(index) for index in exemplars.ids[row]],
                "images": images,
                "masks": packed,
                "mask_shape": shape,
                "activations": [float(value) for value in exemplars.activations[row]],
                "descriptions": list(texts),
            }
        )
    return rows
