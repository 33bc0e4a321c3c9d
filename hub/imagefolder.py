"""Joining exemplar images from the user's own ImageNet (or Places365) copy.

ImageNet images may not be redistributed, so MILANNOTATIONS rows of ImageNet-based sets carry
only ``ids.csv`` indices into a torchvision ``ImageFolder`` over ``imagenet/val`` (and, when the
converter saw the folder, their relative paths). The exemplars were computed on
Resize(256) + CenterCrop(224) inputs; the reference loader squashed with Resize((224, 224))
instead, so its images did not line up with the masks. This module crops the MILAN way.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from milan_plugin.errors import InvalidInputError

EXEMPLAR_RESIZE = 256
EXEMPLAR_CROP = 224


def resolve_image_root(root: str | os.PathLike[str], dataset: str) -> Path:
    """The ImageFolder directory of ``dataset``'s validation split under ``root``.

    Accepts the data root (``root/<dataset>/val``), the dataset folder (``root/val``) or the
    split folder itself; a clear error names what was looked for otherwise.
    """
    base = Path(root).expanduser()
    candidates = [base / dataset / "val", base / "val", base]
    for candidate in candidates:
        if candidate.is_dir() and any(entry.is_dir() for entry in candidate.iterdir()):
            return candidate
    tried = ", ".join(str(candidate) for candidate in candidates)
    raise InvalidInputError(
        f"no {dataset} validation folder found under {str(base)!r} (looked for class folders in {tried}); "
        f"pass the directory that holds {dataset}/val/<class>/<image> files"
    )


@functools.lru_cache(maxsize=4)
def _listing(folder: str) -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    samples = make_dataset(folder, extensions=IMG_EXTENSIONS, allow_empty=True)
    return tuple(Path(path).relative_to(folder).as_posix() for path, _ in samples)


def imagefolder_keys(folder: str | os.PathLike[str]) -> list[str]:
    """Relative paths of an ImageFolder tree in torchvision's order (the order ``ids.csv`` indexes)."""
    return list(_listing(str(Path(folder).resolve())))


def keys_for_ids(folder: Path, ids: Sequence[int]) -> list[str]:
    """The relative paths that ImageFolder indices ``ids`` point to in ``folder``."""
    listing = _listing(str(folder.resolve()))
    bad = [index for index in ids if not 0 <= index < len(listing)]
    if bad:
        raise InvalidInputError(
            f"image ids {bad[:5]} are outside the {len(listing)} images of {str(folder)!r}; "
            "is this the same validation split the annotations were computed on?"
        )
    return [listing[index] for index in ids]


def read_exemplar_images(folder: Path, keys: Sequence[str], size: int = EXEMPLAR_CROP) -> torch.Tensor:
    """uint8 ``(n, 3, size, size)`` images cropped as the exemplars were: Resize(256) + CenterCrop(224).

    ``size`` other than 224 resizes the crop afterwards, keeping the alignment with masks of that size.
    """
    from PIL import Image
    from torchvision.transforms import v2

    crop = v2.Compose([v2.Resize(EXEMPLAR_RESIZE), v2.CenterCrop(EXEMPLAR_CROP)])
    images = []
    for key in keys:
        path = folder / key
        if not path.is_file():
            raise InvalidInputError(
                f"exemplar image {key!r} is missing from {str(folder)!r}; the folder must be the full "
                "validation split the annotations were computed on"
            )
        with Image.open(path) as image:
            cropped = crop(image.convert("RGB"))
        if size != EXEMPLAR_CROP:
            cropped = cropped.resize((size, size), Image.Resampling.BILINEAR)
        images.append(torch.from_numpy(_as_array(cropped)).permute(2, 0, 1))
    return torch.stack(images) if images else torch.zeros(0, 3, size, size, dtype=torch.uint8)


def _as_array(image):
    import numpy as np

    return np.asarray(image, dtype=np.uint8).copy()
