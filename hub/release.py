"""Reading the original MILANNOTATIONS release zips (``<arch>-<dataset>.zip``), checked.

A zip holds ``annotations.csv`` (``layer,unit,summary``) and one directory per layer with
``ids.csv`` (k comma-separated ImageFolder indices per unit), ``masks.npy`` (uint8
``(units, k, 1, 224, 224)``) and, where the images may be redistributed, ``images.npy`` (uint8
``(units, k, 3, 224, 224)``); optionally ``units.npy`` and ``activations.csv``. The arrays are
streamed one unit at a time straight out of the zip, so a 9 GB ``images.npy`` never has to fit
in memory or be extracted. Every shape is checked against every other before a row is produced.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from milan_plugin.hub.groupings import MODEL_KEYS, normalize_name

from milan_plugin.errors import InvalidInputError, PluginLookupError


class ReleaseFormatError(InvalidInputError):
    """A release zip that is damaged or does not have the original layout."""


@dataclass
class NpyMember:
    """A ``.npy`` file inside the zip whose header has been read (the data is streamed later)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int


@dataclass
class ReleaseLayer:
    name: str
    units: list[int]
    ids: list[list[int]]
    masks: NpyMember
    images: NpyMember | None
    activations: list[list[float]] | None

    @property
    def k(self) -> int:
        return self.masks.shape[1]


@dataclass
class ReleaseZip:
    """A checked release zip: its model key, layers and descriptions per ``(layer, unit)``."""

    path: Path
    key: str
    layers: list[ReleaseLayer]
    descriptions: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def open(self) -> zipfile.ZipFile:
        return _open_zip(self.path)

    def iter_units(
        self, archive: zipfile.ZipFile, layer: ReleaseLayer, with_images: bool
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """``(unit, masks (k, H, W) bool, images (k, 3, H, W) uint8 or None)`` in row order."""
        masks = _stream(archive, layer.masks)
        images = _stream(archive, layer.images) if with_images and layer.images else None
        try:
            for unit in layer.units:
                mask = next(masks)[:, 0].astype(bool)
                image = next(images) if images is not None else None
                yield unit, mask, image
        finally:
            masks.close()
            if images is not None:
                images.close()


def model_key_of(path: Path) -> str:
    """The model key a zip's file name names (``resnet152-imagenet.zip`` -> ``resnet152-imagenet``)."""
    stem = path.name.removesuffix(".zip")
    key = normalize_name(stem)
    if key not in MODEL_KEYS:
        raise PluginLookupError(
            f"cannot tell which model {path.name!r} annotates: release zips are named <arch>-<dataset>.zip",
            kind="release name",
            options=[f"{known}.zip" for known in MODEL_KEYS],
        )
    return key


def read_release(path: str | Path) -> ReleaseZip:
    """Open and check one release zip without reading its arrays' data."""
    path = Path(path)
    key = model_key_of(path)
    with _open_zip(path) as archive:
        names = archive.namelist()
        root = _annotation_root(path, names)
        descriptions = _read_annotations(archive, f"{root}annotations.csv", path)
        layer_names = sorted(
            {
                PurePosixPath(name[len(root) :]).parts[0]
                for name in names
                if name.startswith(root)
                and name.endswith("/masks.npy")
                and name.count("/") == root.count("/") + 1
            }
        )
        if not layer_names:
            raise ReleaseFormatError(f"{path.name}: no <layer>/masks.npy next to annotations.csv")
        layers = [_read_layer(archive, path, root, name) for name in layer_names]
    known = {layer.name: set(layer.units) for layer in layers}
    for layer_name, unit in descriptions:
        if layer_name not in known:
            raise ReleaseFormatError(
                f"{path.name}: annotations.csv names layer {layer_name!r}, but the zip has layers "
                f"{', '.join(sorted(known))}"
            )
        if unit not in known[layer_name]:
            raise ReleaseFormatError(
                f"{path.name}: annotations.csv describes unit {unit} of layer {layer_name!r}, "
                f"which has no exemplars in masks.npy"
            )
    return ReleaseZip(path=path, key=key, layers=layers, descriptions=descriptions)


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise ReleaseFormatError(f"release zip {str(path)!r} does not exist")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ReleaseFormatError(
            f"{path.name} is not a readable zip ({error}); it may be truncated: download it again"
        ) from error


def _annotation_root(path: Path, names: list[str]) -> str:
    found = [name for name in names if PurePosixPath(name).name == "annotations.csv"]
    if len(found) != 1:
        raise ReleaseFormatError(
            f"{path.name}: expected exactly one annotations.csv, found {len(found)}; "
            "a release zip holds annotations.csv and one directory per layer"
        )
    return found[0][: -len("annotations.csv")]


def _read_text(archive: zipfile.ZipFile, name: str, path: Path) -> str:
    try:
        return archive.read(name).decode("utf-8")
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ReleaseFormatError(
            f"{path.name}: cannot read {name} ({error}); the zip may be truncated"
        ) from error


def _read_annotations(archive: zipfile.ZipFile, name: str, path: Path) -> dict[tuple[str, int], list[str]]:
    reader = csv.DictReader(io.StringIO(_read_text(archive, name, path)))
    missing = {"layer", "unit", "summary"} - set(reader.fieldnames or ())
    if missing:
        raise ReleaseFormatError(
            f"{path.name}: annotations.csv lacks the column(s) {', '.join(sorted(missing))}; "
            f"expected a header layer,unit,summary, found {reader.fieldnames}"
        )
    descriptions: dict[tuple[str, int], list[str]] = {}
    for line, record in enumerate(reader, start=2):
        try:
            unit = int(record["unit"])
        except (TypeError, ValueError) as error:
            raise ReleaseFormatError(
                f"{path.name}: annotations.csv line {line}: unit {record['unit']!r} is not an integer"
            ) from error
        text = (record["summary"] or "").strip()
        if text:
            descriptions.setdefault((record["layer"], unit), []).append(text)
    return descriptions


def _read_layer(archive: zipfile.ZipFile, path: Path, root: str, name: str) -> ReleaseLayer:
    prefix = f"{root}{name}/"
    members = set(archive.namelist())
    masks = _npy_header(archive, f"{prefix}masks.npy", path)
    if len(masks.shape) != 5 or masks.shape[2] != 1 or masks.dtype != np.uint8:
        raise ReleaseFormatError(
            f"{path.name}: {name}/masks.npy has shape {masks.shape} and dtype {masks.dtype}; "
            "expected uint8 (units, k, 1, H, W)"
        )
    count, k, _, height, width = masks.shape
    images = None
    if f"{prefix}images.npy" in members:
        images = _npy_header(archive, f"{prefix}images.npy", path)
        expected = (count, k, 3, height, width)
        if images.shape != expected or images.dtype != np.uint8:
            raise ReleaseFormatError(
                f"{path.name}: {name}/images.npy has shape {images.shape} and dtype {images.dtype}, but "
                f"masks.npy {masks.shape} requires uint8 {expected}"
            )
    units = list(range(count))
    if f"{prefix}units.npy" in members:
        units = _read_units(archive, f"{prefix}units.npy", path, count)
    if f"{prefix}ids.csv" not in members:
        raise ReleaseFormatError(f"{path.name}: layer {name!r} has masks.npy but no ids.csv")
    ids = _read_matrix(archive, f"{prefix}ids.csv", path, count, k, int)
    activations = None
    if f"{prefix}activations.csv" in members:
        activations = _read_matrix(archive, f"{prefix}activations.csv", path, count, k, float)
    return ReleaseLayer(name=name, units=units, ids=ids, masks=masks, images=images, activations=activations)


def _read_units(archive: zipfile.ZipFile, name: str, path: Path, count: int) -> list[int]:
    try:
        units = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ReleaseFormatError(f"{path.name}: cannot read {name} ({error})") from error
    if units.shape != (count,):
        raise ReleaseFormatError(f"{path.name}: {name} has shape {units.shape}, masks.npy has {count} units")
    return [int(unit) for unit in units]


def _read_matrix(
    archive: zipfile.ZipFile, name: str, path: Path, count: int, k: int, kind: type
) -> list[list]:
    rows = [row for row in csv.reader(io.StringIO(_read_text(archive, name, path))) if row]
    if len(rows) != count or any(len(row) != k for row in rows):
        lengths = sorted({len(row) for row in rows})
        raise ReleaseFormatError(
            f"{path.name}: {name} has {len(rows)} rows of {lengths} values; "
            f"masks.npy needs {count} rows of {k}"
        )
    try:
        return [[kind(value) for value in row] for row in rows]
    except ValueError as error:
        raise ReleaseFormatError(f"{path.name}: {name} holds a non-numeric value ({error})") from error


def _npy_header(archive: zipfile.ZipFile, name: str, path: Path) -> NpyMember:
    try:
        info = archive.getinfo(name)
        with archive.open(name) as stream:
            version = np.lib.format.read_magic(stream)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(stream)
            offset = stream.tell()
    except KeyError as error:
        raise ReleaseFormatError(f"{path.name}: {name} is missing") from error
    except (ValueError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise ReleaseFormatError(f"{path.name}: {name} is not a readable .npy file ({error})") from error
    if fortran or dtype.hasobject:
        raise ReleaseFormatError(f"{path.name}: {name} must be a C-ordered numeric array")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if info.file_size != expected:
        raise ReleaseFormatError(
            f"{path.name}: {name} holds {info.file_size} bytes but its header {tuple(shape)} {dtype} needs "
            f"{expected}; the file is truncated or corrupt"
        )
    return NpyMember(name=name, shape=tuple(int(size) for size in shape), dtype=dtype, data_offset=offset)


def _stream(archive: zipfile.ZipFile, member: NpyMember) -> Iterator[np.ndarray]:
    per_unit = member.shape[1:]
    size = int(np.prod(per_unit)) * member.dtype.itemsize
    try:
        with archive.open(member.name) as stream:
            stream.read(member.data_offset)
            for _ in range(member.shape[0]):
                data = stream.read(size)
                if len(data) != size:
                    raise ReleaseFormatError(f"{member.name} ends early; the zip is truncated")
                yield np.frombuffer(data, dtype=member.dtype).reshape(per_unit)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ReleaseFormatError(f"cannot read {member.name} ({error}); the zip is damaged") from error
