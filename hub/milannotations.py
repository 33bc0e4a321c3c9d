"""Loading MILANNOTATIONS, and a row's exemplar images and masks as tensors.

``load_milannotations`` downloads only the files of the configs asked for (``snapshot_download``
with ``allow_patterns``) and loads them from the local snapshot, so a second call works offline
and a local folder in the Hub layout works the same way. ImageNet rows carry no images; with
``imagenet_root`` they are joined lazily from the user's copy, cropped as the exemplars were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from milan_plugin.hub.cards import CARD_FILENAME
from milan_plugin.hub.groupings import DATASETS, normalize_name, resolve_members
from milan_plugin.hub.imagefolder import keys_for_ids, read_exemplar_images, resolve_image_root
from milan_plugin.hub.transfer import load_folder_dataset, pull_folder

from milan_plugin.annotations import unpack_masks
from milan_plugin.errors import InvalidInputError, PluginLookupError

if TYPE_CHECKING:
    import datasets

DEFAULT_REGISTRY_NAME = "milannotations"


def load_milannotations(
    name: str = "base",
    *,
    imagenet_root: str | os.PathLike[str] | None = None,
    places365_root: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    repo_id: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    split: str | None = "train",
) -> datasets.Dataset | datasets.DatasetDict:
    """MILANNOTATIONS for a model key (``resnet152/imagenet``) or a grouping (``base``, ``gen``, ...).

    ``repo_id`` is a Hub dataset repo or a local folder in the same layout (default: the
    registry's ``milannotations`` entry at its pinned revision). ``split=None`` returns the
    ``DatasetDict``. With ``imagenet_root`` (or ``places365_root``), rows without inline images
    get them from that folder when read.
    """
    members = resolve_members(name)
    config = normalize_name(name)
    repo, pinned = default_milannotations_repo() if repo_id is None else (repo_id, None)
    path = pull_folder(
        repo,
        repo_type="dataset",
        revision=revision or pinned,
        allow_patterns=[CARD_FILENAME, *(f"{member}/*" for member in members)],
        cache_dir=cache_dir,
    )
    roots = _image_roots(imagenet_root, places365_root)
    from datasets import get_dataset_config_names

    available = get_dataset_config_names(str(path))
    if config not in available:
        raise PluginLookupError(
            f"{str(repo)!r} has no config {config!r} (not every member of it was converted)",
            kind="config",
            options=available,
        )
    loaded = load_folder_dataset(path, config, split=split)
    if roots:
        loaded.set_transform(_ImageJoiner(roots), output_all_columns=True)
    return loaded


def row_masks(row: Mapping[str, Any]) -> torch.Tensor:
    """A row's exemplar masks as a bool tensor ``(k, H, W)``."""
    return unpack_masks(row["masks"], row["mask_shape"])


def row_images(
    row: Mapping[str, Any],
    *,
    imagenet_root: str | os.PathLike[str] | None = None,
    places365_root: str | os.PathLike[str] | None = None,
    size: int = 224,
) -> torch.Tensor:
    """A row's exemplar images as uint8 ``(k, 3, size, size)``, aligned with :func:`row_masks`.

    Inline images are used as they are. Otherwise they are read back through the row's
    ``source``: ``folder:imagenet/val`` and ``folder:places365/val`` from the given roots, any
    other spec (``folder:/abs/path``, ``synth:...``) through the plugin's exemplar sources.
    """
    import numpy as np

    if row["images"]:
        arrays = [np.asarray(image.convert("RGB"), dtype=np.uint8) for image in row["images"]]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        if images.shape[-1] != size:
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="nearest")
        return images
    source = row["source"]
    dataset = _relative_dataset(source)
    if dataset is not None:
        roots = _image_roots(imagenet_root, places365_root)
        if dataset not in roots:
            raise InvalidInputError(
                f"{row['model']}-{row['dataset']} rows carry no images (they may not be redistributed); pass "
                f"{dataset}_root= pointing at your copy of {dataset}/val"
            )
        folder = roots[dataset]
        keys = list(row["image_keys"]) or keys_for_ids(folder, row["image_ids"])
        return read_exemplar_images(folder, keys, size=size)
    if not source:
        raise InvalidInputError("row has neither images nor a source spec to read them from")
    from milan_plugin.plugins import open_source

    images = open_source(source).images(list(row["image_ids"]), size=size)
    if images is None:
        raise InvalidInputError(f"source {source!r} holds latents: render them with the generative model")
    return images


def default_milannotations_repo() -> tuple[str, str]:
    from milan_plugin.hub.registry import get_entry

    entry = get_entry(DEFAULT_REGISTRY_NAME, kind="milannotations")
    return entry.repo_id, entry.revision


def _relative_dataset(source: str) -> str | None:
    """``imagenet`` for ``folder:imagenet/val`` (the converter's spec relative to the user's root)."""
    if not source.startswith("folder:"):
        return None
    path = source.removeprefix("folder:")
    for dataset in DATASETS:
        if path == f"{dataset}/val":
            return dataset
    return None


def _image_roots(
    imagenet_root: str | os.PathLike[str] | None, places365_root: str | os.PathLike[str] | None
) -> dict[str, Path]:
    given = {"imagenet": imagenet_root, "places365": places365_root}
    return {dataset: resolve_image_root(root, dataset) for dataset, root in given.items() if root is not None}


class _ImageJoiner:
    """A ``set_transform`` that fills empty ``images`` from the user's folders when rows are read."""

    def __init__(self, roots: Mapping[str, Path]) -> None:
        self.roots = dict(roots)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from PIL import Image

        joined = []
        for index, images in enumerate(batch["images"]):
            dataset = _relative_dataset(batch["source"][index])
            if images or dataset not in self.roots:
                joined.append(images)
                continue
            folder = self.roots[dataset]
            keys = list(batch["image_keys"][index]) or keys_for_ids(folder, batch["image_ids"][index])
            tensor = read_exemplar_images(folder, keys)
            joined.append([Image.fromarray(image.permute(1, 2, 0).numpy()) for image in tensor])
        return {**batch, "images": joined}
