"""Converting release zips into a Hub dataset folder: parquet shards per model key plus a card.

The folder is the exact layout a Hub dataset repo has (``README.md`` with ``configs:`` and
``<key>/train-XXXXX-of-YYYYY.parquet``), so it can be pushed as is, or loaded locally with
``load_milannotations(key, repo_id=folder)``. Each key is built in a hidden staging folder next
to the output and moved in only when complete: bad input leaves the output untouched, and an
interrupted conversion resumes from the last finished shard.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from milan_plugin.hub.cards import CARD_FILENAME, milannotations_card
from milan_plugin.hub.groupings import (
    MODEL_KEYS,
    REDISTRIBUTABLE_IMAGES,
    dataset_of,
    groupings,
)
from milan_plugin.hub.imagefolder import keys_for_ids, resolve_image_root
from milan_plugin.hub.release import ReleaseFormatError, ReleaseZip, read_release

from milan_plugin.annotations import annotation_features, pack_masks
from milan_plugin.errors import InvalidInputError
from milan_plugin.exemplars.atomic import replace_folder, write_bytes, write_with

PROVENANCE_FILENAME = "provenance.json"
DEFAULT_MAX_SHARD_BYTES = 256 * 2**20


def convert_release(
    zips: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    imagenet_root: str | os.PathLike[str] | None = None,
    min_descriptions: int = 1,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    license: str = "other",
    progress: bool = True,
) -> Path:
    """Convert release zips into (or add them to) the Hub dataset folder ``out``; returns ``out``.

    Units with fewer than ``min_descriptions`` descriptions are dropped (the default 1 keeps
    every annotated unit; the reference loader used 3). With ``imagenet_root`` the ImageNet rows
    also get their ImageFolder relative paths as ``image_keys`` (only the file listing is read).
    Every zip is checked before anything is written.
    """
    if min_descriptions < 1:
        raise InvalidInputError(f"min_descriptions must be at least 1, got {min_descriptions}")
    out = Path(out)
    releases = [read_release(path) for path in zips]
    seen: dict[str, Path] = {}
    for release in releases:
        if release.key in seen:
            first = seen[release.key].name
            raise InvalidInputError(f"{release.path.name} and {first} both hold {release.key!r}; pass one")
        seen[release.key] = release.path
    image_folders = {}
    for release in releases:
        _images_inline(release)
        dataset = dataset_of(release.key)
        if imagenet_root is not None and dataset == "imagenet" and release.key not in REDISTRIBUTABLE_IMAGES:
            image_folders[release.key] = resolve_image_root(imagenet_root, dataset)
    out.mkdir(parents=True, exist_ok=True)
    for release in releases:
        _convert_one(
            release, out, image_folders.get(release.key), min_descriptions, max_shard_bytes, progress
        )
    write_milannotations_card(out, license=license)
    return out


def write_milannotations_card(out: Path, *, license: str = "other") -> None:
    """(Re)write the card for every model key present in ``out``, with every complete grouping."""
    provenance = {}
    for key in MODEL_KEYS:
        path = out / key / PROVENANCE_FILENAME
        if path.is_file():
            provenance[key] = json.loads(path.read_text())
    present = set(provenance)
    groups = {name: members for name, members in groupings().items() if set(members) <= present}
    card = milannotations_card(
        [key for key in MODEL_KEYS if key in present], groups, provenance, license=license
    )
    write_bytes(out / CARD_FILENAME, card.encode())


def _convert_one(
    release: ReleaseZip,
    out: Path,
    image_folder: Path | None,
    min_descriptions: int,
    max_shard_bytes: int,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    inline = _images_inline(release)
    selected = [
        (layer, unit)
        for layer in release.layers
        for unit in layer.units
        if len(release.descriptions.get((layer.name, unit), ())) >= min_descriptions
    ]
    settings = {
        "zip_name": release.path.name,
        "zip_sha256": _sha256(release.path),
        "min_descriptions": min_descriptions,
        "max_shard_bytes": max_shard_bytes,
        "imagenet_keys": image_folder is not None,
    }
    k = release.layers[0].k
    height, width = release.layers[0].masks.shape[-2:]
    row_bytes = math.ceil(k * height * width / 8) + (k * 3 * height * width // 2 if inline else 0)
    rows_per_shard = max(1, max_shard_bytes // row_bytes)
    shard_count = max(1, math.ceil(len(selected) / rows_per_shard))
    staging = out.parent / f".{out.name}.{release.key}.partial"
    _prepare_staging(staging, settings)

    rows = _rows(release, selected, inline, image_folder)
    bar = tqdm(total=len(selected), desc=f"convert {release.key}", unit="unit", disable=not progress)
    try:
        for shard in range(shard_count):
            batch = list(itertools.islice(rows, rows_per_shard))
            target = staging / f"train-{shard:05d}-of-{shard_count:05d}.parquet"
            if not target.exists():
                _write_shard(batch, target)
            bar.update(len(batch))
    except ValueError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    layers = [layer.name for layer in release.layers]
    provenance = {
        **settings,
        "key": release.key,
        "layers": layers,
        "units": len(selected),
        "descriptions": sum(len(release.descriptions[(layer.name, unit)]) for layer, unit in selected),
        "images_inline": inline,
        "source": _source_spec(release.key),
        "shards": shard_count,
    }
    write_bytes(staging / PROVENANCE_FILENAME, json.dumps(provenance, indent=2).encode())
    (staging / "state.json").unlink()
    replace_folder(staging, out / release.key)


def _images_inline(release: ReleaseZip) -> bool:
    """Whether rows carry images: redistributable sets whose every layer has images.npy."""
    has_images = all(layer.images is not None for layer in release.layers)
    inline = release.key in REDISTRIBUTABLE_IMAGES and has_images
    if release.key.startswith("biggan-") and not inline:
        raise ReleaseFormatError(
            f"{release.path.name}: BigGAN sets must include images.npy in every layer (the images were "
            "generated and cannot be read back from a folder)"
        )
    return inline


def _rows(
    release: ReleaseZip, selected: Sequence[tuple[Any, int]], inline: bool, image_folder: Path | None
) -> Iterator[dict[str, Any]]:
    from PIL import Image

    wanted = {(layer.name, unit) for layer, unit in selected}
    arch, dataset = release.key.rsplit("-", 1)
    source = _source_spec(release.key)
    with release.open() as archive:
        for layer in release.layers:
            if not any(name == layer.name for name, _ in wanted):
                continue
            for index, (unit, masks, images) in enumerate(
                release.iter_units(archive, layer, with_images=inline)
            ):
                if (layer.name, unit) not in wanted:
                    continue
                ids = layer.ids[index]
                packed, shape = pack_masks(masks)
                yield {
                    "model": arch,
                    "dataset": dataset,
                    "source": source,
                    "layer": layer.name,
                    "unit": unit,
                    "image_keys": keys_for_ids(image_folder, ids) if image_folder is not None else [],
                    "image_ids": ids,
                    "images": [Image.fromarray(image.transpose(1, 2, 0)) for image in images]
                    if images is not None
                    else [],
                    "masks": packed,
                    "mask_shape": shape,
                    "activations": layer.activations[index] if layer.activations else [],
                    "descriptions": release.descriptions[(layer.name, unit)],
                }


def _source_spec(key: str) -> str:
    """Where rows' images come from: a folder relative to the user's data root, or the generator."""
    if key.startswith("biggan-"):
        return f"generated:{key}"
    return f"folder:{dataset_of(key)}/val"


def _write_shard(rows: Iterable[dict[str, Any]], target: Path) -> None:
    from datasets import Dataset

    dataset = Dataset.from_list(list(rows), features=annotation_features())
    write_with(target, lambda temporary: dataset.to_parquet(temporary))


def _prepare_staging(staging: Path, settings: dict[str, Any]) -> None:
    """Reuse finished shards of an interrupted run with the same inputs; start over otherwise."""
    state = staging / "state.json"
    if staging.exists():
        previous = json.loads(state.read_text()) if state.is_file() else None
        if previous == settings:
            return
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write_bytes(state, json.dumps(settings).encode())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
