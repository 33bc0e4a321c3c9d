"""Builders for hub tests: release zips in the original layout and a fake ImageNet val tree.

Images in the fake tree are dark with one bright square; the zip's mask for an exemplar is that
square as it lands after Resize(256) + CenterCrop(224), so a loader that crops the MILAN way
puts the bright pixels exactly under the mask (and a squashing loader does not).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Source images are 400x320 (landscape): Resize(256) scales by 0.8 to 320x256, and
# CenterCrop(224) then cuts 48 px from the left and 16 px from the top.
SOURCE_SIZE = (400, 320)
SCALE = 0.8
CROP_OFFSET = (48, 16)


@dataclass
class FakeRelease:
    """What a fixture zip holds, to compare a conversion against."""

    path: Path
    layers: list[str]
    units: dict[str, list[int]]
    ids: dict[tuple[str, int], list[int]]
    masks: dict[tuple[str, int], np.ndarray]
    images: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    descriptions: dict[tuple[str, int], list[str]] = field(default_factory=dict)


def write_imagenet_tree(root: Path, classes: int = 3, per_class: int = 4, seed: int = 0) -> dict[int, tuple]:
    """``root/imagenet/val/<wnid>/<file>.JPEG`` with a bright square in each; returns id -> crop box."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    boxes = {}
    index = 0
    for class_index in range(classes):
        folder = root / "imagenet" / "val" / f"n{class_index:08d}"
        folder.mkdir(parents=True)
        for _ in range(per_class):
            left, top = (int(value) for value in rng.integers(8, 150, size=2))
            side = int(rng.integers(40, 64))
            box = (left, top, left + side, top + side)
            pixels = np.full((SOURCE_SIZE[1], SOURCE_SIZE[0], 3), 20, dtype=np.uint8)
            x0, y0 = [
                (coordinate + offset) / SCALE for coordinate, offset in zip(box[:2], CROP_OFFSET, strict=True)
            ]
            x1, y1 = [
                (coordinate + offset) / SCALE for coordinate, offset in zip(box[2:], CROP_OFFSET, strict=True)
            ]
            pixels[round(y0) : round(y1), round(x0) : round(x1)] = 235
            Image.fromarray(pixels).save(folder / f"ILSVRC2012_val_{index:08d}.JPEG", quality=95)
            boxes[index] = box
            index += 1
    return boxes


def box_mask(box: tuple[int, int, int, int], size: int = 224) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[box[1] : box[3], box[0] : box[2]] = 1
    return mask


def write_release_zip(
    path: Path,
    *,
    layers: tuple[str, ...] = ("conv1", "conv2"),
    units: int = 3,
    k: int = 4,
    with_images: bool,
    boxes: dict[int, tuple] | None = None,
    image_count: int = 12,
    seed: int = 0,
    prefix: str = "",
) -> FakeRelease:
    """A zip in the original release layout; masks come from ``boxes`` when given, else random squares.

    In every layer unit 1 has only two descriptions and the last unit none (to test the policy).
    """
    rng = np.random.default_rng(seed)
    release = FakeRelease(path=path, layers=list(layers), units={}, ids={}, masks={})
    annotations = io.StringIO()
    writer = csv.writer(annotations)
    writer.writerow(["layer", "unit", "summary"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for layer in layers:
            ids = np.stack([rng.choice(image_count, size=k, replace=False) for _ in range(units)])
            masks = np.zeros((units, k, 1, 224, 224), dtype=np.uint8)
            for unit in range(units):
                for rank, image_id in enumerate(ids[unit]):
                    box = boxes[int(image_id)] if boxes else _random_box(rng)
                    masks[unit, rank, 0] = box_mask(box)
                key = (layer, unit)
                release.ids[key] = [int(value) for value in ids[unit]]
                release.masks[key] = masks[unit, :, 0].astype(bool)
                count = 0 if unit == units - 1 else 2 if unit == 1 else 3
                texts = [
                    f"{layer} unit {unit} says {word}"
                    for word in ("dogs", "striped fur", "red, round")[:count]
                ]
                for text in texts:
                    writer.writerow([layer, unit, text])
                if texts:
                    release.descriptions[key] = texts
            release.units[layer] = list(range(units))
            archive.writestr(f"{prefix}{layer}/masks.npy", _npy_bytes(masks))
            archive.writestr(
                f"{prefix}{layer}/ids.csv", "\n".join(",".join(map(str, row)) for row in ids) + "\n"
            )
            if with_images:
                images = rng.integers(0, 256, size=(units, k, 3, 224, 224), dtype=np.uint8)
                archive.writestr(f"{prefix}{layer}/images.npy", _npy_bytes(images))
                for unit in range(units):
                    release.images[(layer, unit)] = images[unit]
        archive.writestr(f"{prefix}annotations.csv", annotations.getvalue())
    return release


def _random_box(rng: np.random.Generator) -> tuple[int, int, int, int]:
    left, top = (int(value) for value in rng.integers(0, 160, size=2))
    side = int(rng.integers(16, 64))
    return (left, top, left + side, top + side)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
