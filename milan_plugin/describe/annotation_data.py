"""Annotation rows for training: a synth key, a Hub-layout folder, a ``datasets`` object or a Hub key.

Rows follow the shared schema (:mod:`milan_plugin.annotations`). Their exemplar images are
read inline or back from ``row["source"]`` by ``image_ids``, and each unique image goes through
the encoder backbone once; the pooled features are cached on disk keyed by everything they
depend on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from milan_plugin.annotations import unpack_masks
from milan_plugin.errors import InvalidInputError
from milan_plugin.fingerprint import digest_json

SPLIT_NAMES = ("train", "validation", "test")


def load_annotation_splits(
    annotations: Any, hold_out: float = 0.1, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """``{"train": rows, "validation": rows, ...}``; without a validation split, units are held out.

    ``synth:SIZE[:SEED]`` builds the synthetic set (``synth:small``, ``synth:default``).
    """
    splits = _open(annotations, progress)
    if "train" not in splits:
        raise InvalidInputError(
            f"annotations {annotations!r} have no 'train' split (splits: {sorted(splits)})"
        )
    if "validation" not in splits:
        train = splits["train"]
        order = np.random.default_rng(seed).permutation(len(train))
        held = max(1, round(hold_out * len(train)))
        splits["validation"] = train.select(sorted(order[:held].tolist()))
        splits["train"] = train.select(sorted(order[held:].tolist()))
    return splits


def _open(annotations: Any, progress: bool) -> dict[str, Any]:
    import datasets

    if isinstance(annotations, datasets.DatasetDict):
        return dict(annotations)
    if isinstance(annotations, datasets.Dataset):
        return {"train": annotations}
    if not isinstance(annotations, (str, os.PathLike)):
        raise InvalidInputError(
            f"annotations must be a key, a folder or a datasets object; got {type(annotations).__name__}"
        )
    text = os.fspath(annotations)
    if text.startswith("synth:"):
        from milan_plugin.synth.dataset import build_synthetic_annotations

        size, _, seed = text.removeprefix("synth:").partition(":")
        return dict(build_synthetic_annotations(seed=int(seed or 0), size=size or "small", progress=progress))
    from milan_plugin.hub.milannotations import load_milannotations
    from milan_plugin.hub.transfer import load_folder_dataset

    if Path(text).expanduser().is_dir():
        # Loaded by absolute file paths: `load_dataset(folder)` caches by the folder's name only.
        return dict(load_folder_dataset(Path(text).expanduser()))
    loaded = load_milannotations(text, split=None)
    return dict(loaded) if isinstance(loaded, Mapping) else {"train": loaded}


class _ImageReader:
    """Reads the exemplar images of rows, opening each source spec once."""

    def __init__(self) -> None:
        self._sources: dict[str, Any] = {}

    def read(self, references: Sequence[tuple[str, int]]) -> torch.Tensor:
        from milan_plugin.plugins import open_source

        images = torch.zeros(len(references), 3, 224, 224, dtype=torch.uint8)
        by_source: dict[str, list[int]] = {}
        for position, (spec, _) in enumerate(references):
            by_source.setdefault(spec, []).append(position)
        for spec, positions in by_source.items():
            if spec not in self._sources:
                self._sources[spec] = open_source(spec)
            read = self._sources[spec].images([references[p][1] for p in positions], size=224)
            if read is None:
                raise InvalidInputError(f"source {spec!r} holds latents; annotation rows need images")
            images[positions] = read
        return images


def rows_digest(rows: Any) -> str:
    """A digest of what the features of ``rows`` depend on: sources, image ids and masks."""
    import hashlib

    columns = _columns(rows)
    hasher = hashlib.sha256()
    for source, image_ids, masks, images in zip(
        columns["source"], columns["image_ids"], columns["masks"], columns["images"], strict=True
    ):
        hasher.update(f"{source}|{list(image_ids)}|{len(images)}".encode())
        hasher.update(bytes(masks))
        for image in images:
            hasher.update(_image_identity(image))
    return hasher.hexdigest()[:16]


def _image_identity(image: Any) -> bytes:
    """Bytes that identify an image record or PIL image by content (never by object address)."""
    if isinstance(image, Mapping):
        return image.get("bytes") or str(image.get("path")).encode()
    return f"{image.mode}{image.size}".encode() + image.tobytes()


def encode_rows(
    rows: Any,
    encoder: Any,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """Encoder features (rows, k, feature_size), each unique exemplar image through the backbone once.

    Images shared between rows (same source and id) are encoded once; rows with inline images
    count each image as its own. With ``cache_dir`` the result is stored and reused.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    cache = None
    if cache_dir is not None:
        key = digest_json([encoder.config.to_json(), rows_digest(rows)])
        cache = Path(cache_dir) / f"features-{key}.safetensors"
        if cache.is_file():
            return load_file(str(cache))["features"]
    columns = _columns(rows)
    references: dict[tuple[str, int], int] = {}
    pairs: list[tuple[int, int, int]] = []  # (row, position in row, unique image)
    for row_index, (source, image_ids, images) in enumerate(
        zip(columns["source"], columns["image_ids"], columns["images"], strict=True)
    ):
        if images:
            entries = [(f"inline:{row_index}", position) for position in range(len(images))]
        elif source:
            entries = [(str(source), int(image_id)) for image_id in image_ids]
        else:
            raise InvalidInputError(
                f"annotation row {row_index} has neither images nor a source to read them from"
            )
        for position, reference in enumerate(entries):
            pairs.append((row_index, position, references.setdefault(reference, len(references))))
    unique = list(references)
    k = max((position for _, position, _ in pairs), default=-1) + 1
    features = torch.zeros(len(columns["source"]), k, encoder.feature_size)
    by_image: dict[int, list[tuple[int, int]]] = {}
    for row_index, position, image in pairs:
        by_image.setdefault(image, []).append((row_index, position))
    reader = _ImageReader()
    with tqdm(total=len(unique), desc="encode exemplar images", unit="image", disable=not progress) as bar:
        for begin in range(0, len(unique), batch_size):
            batch = unique[begin : begin + batch_size]
            images = torch.zeros(len(batch), 3, 224, 224, dtype=torch.uint8)
            from_sources = [i for i, reference in enumerate(batch) if not reference[0].startswith("inline:")]
            if from_sources:
                images[from_sources] = reader.read([batch[i] for i in from_sources])
            for i, (spec, position) in enumerate(batch):
                if spec.startswith("inline:"):
                    images[i] = _decode_image(columns["images"][int(spec.removeprefix("inline:"))][position])
            members = [(i, row, position) for i in range(len(batch)) for row, position in by_image[begin + i]]
            unpacked: dict[int, torch.Tensor] = {}
            for _, row, _ in members:
                if row not in unpacked:
                    unpacked[row] = unpack_masks(columns["masks"][row], columns["mask_shape"][row])
            masks = torch.stack([unpacked[row][position] for _, row, position in members])
            image_index = torch.tensor([i for i, _, _ in members])
            pooled = encoder.encode_shared(images, image_index, masks).cpu()
            for (_, row, position), vector in zip(members, pooled, strict=True):
                features[row, position] = vector
            bar.update(len(batch))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(cache.name + ".partial")
        save_file({"features": features.contiguous()}, str(temporary))
        os.replace(temporary, cache)
    return features


def _columns(rows: Any) -> dict[str, list[Any]]:
    """The columns encoding needs; a ``datasets`` table keeps its images undecoded until used."""
    import datasets

    names = ("source", "image_ids", "masks", "mask_shape", "images")
    if isinstance(rows, datasets.Dataset):
        table = rows.select_columns(list(names)).cast_column(
            "images", datasets.List(datasets.Image(decode=False))
        )
        return {name: list(table[name]) for name in names}
    return {name: [row[name] for row in rows] for name in names}


def _decode_image(image: Any) -> torch.Tensor:
    """uint8 (3, 224, 224) from a PIL image or an undecoded ``{"bytes", "path"}`` record."""
    import io

    from PIL import Image

    if isinstance(image, Mapping):
        with Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]) as opened:
            return _decode_image(opened.convert("RGB"))
    array = np.asarray(image.convert("RGB").resize((224, 224)), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
