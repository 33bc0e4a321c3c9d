"""One layer's exemplars: for each unit the k top inputs, their activation maps and a threshold.

Why ids and maps instead of images and masks: images are read back from the source by id when
needed and masks are derived from maps, so a set stays small (the reference stored 2.3 MB of
images per unit) and one file serves any mask or image size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from milan_plugin.errors import InvalidInputError
from milan_plugin.exemplars.atomic import read_tensors, write_tensors

SET_FORMAT = "milan-exemplar-set/1"
SET_FILE = "exemplars.safetensors"


@dataclass
class ExemplarSet:
    """Exemplars of one layer (see the field comments); build with ``compute_exemplars``."""

    layer: str
    units: torch.Tensor  # (n,) int64: the layer's unit indices covered
    ids: torch.Tensor  # (n, k) int64: source indices, best first
    keys: list[list[str]]  # (n, k) source keys of ids
    activations: torch.Tensor  # (n, k) float32: spatial max, descending per row
    thresholds: torch.Tensor  # (n,) float32: the unit's quantile over all positions
    maps: torch.Tensor  # (n, k, *spatial) float32 at the layer's native resolution
    settings: dict[str, Any] = field(default_factory=dict)
    _source: Any = field(default=None, repr=False, compare=False)
    _adapter: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rows = {int(unit): row for row, unit in enumerate(self.units.tolist())}

    def __len__(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        spatial = "x".join(str(size) for size in self.maps.shape[2:])
        model = self.settings.get("model", "?")
        source = self.settings.get("source_spec", "?")
        return (
            f"ExemplarSet(layer={self.layer!r}, units={len(self)}, k={self.k}, maps={spatial}, "
            f"quantile={self.settings.get('quantile')}, model={model!r}, source={source!r})"
        )

    @property
    def k(self) -> int:
        return self.ids.shape[1]

    def row(self, unit: int) -> int:
        """The row of ``unit`` (a layer unit index) in this set's tensors."""
        try:
            return self._rows[int(unit)]
        except KeyError:
            shown = self.units[:10].tolist()
            raise KeyError(
                f"unit {unit} is not in the exemplar set of layer {self.layer!r} "
                f"({len(self)} units: {shown}{'...' if len(self) > 10 else ''})"
            ) from None

    def masks(self, unit: int, size: int = 224) -> torch.Tensor:
        """Where the unit fires above its threshold on each exemplar: bool ``(k, size, size)``.

        Image maps are upsampled bilinearly (half-pixel centres, clamped borders) to the square
        image size, then compared strictly greater than the threshold; token maps ``(k, T)`` are
        compared as they are.
        """
        row = self.row(unit)
        maps = self.maps[row]
        if maps.dim() == 2:
            return maps > self.thresholds[row]
        upsampled = F.interpolate(
            maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False
        )
        return upsampled[:, 0] > self.thresholds[row]

    def images(self, unit: int, size: int = 224) -> torch.Tensor:
        """The unit's k exemplar images as uint8 ``(k, 3, size, size)``, read back by id."""
        return self.read_images(self.ids[self.row(unit)].tolist(), size=size)

    def read_images(self, ids: Sequence[int], size: int = 224) -> torch.Tensor:
        """uint8 ``(n, 3, size, size)`` images of any source indices (rendered for generative models)."""
        source = self._require_source()
        ids = [int(index) for index in ids]
        images = source.images(ids, size=size)
        if images is None:
            if self._adapter is None:
                raise InvalidInputError(
                    f"the source {source.spec!r} holds latents, so images must be rendered by the "
                    "generative model: call exemplars.attach(adapter=...) first"
                )
            images = self._adapter.render(source.load(ids).inputs)
            if images.shape[-2:] != (size, size):
                images = F.interpolate(images.float(), size=(size, size), mode="nearest").to(torch.uint8)
        if (
            images.dim() != 4
            or images.shape[0] != len(ids)
            or images.shape[1] != 3
            or images.dtype != torch.uint8
        ):
            raise InvalidInputError(
                f"source {source.spec!r} returned images of shape {tuple(images.shape)} "
                f"and dtype {images.dtype}; "
                f"expected uint8 ({len(ids)}, 3, {size}, {size})"
            )
        return images

    def grid(self, unit: int, size: int = 112, columns: int = 5, dim: float = 0.25) -> torch.Tensor:
        """One uint8 ``(3, H, W)`` image of the unit's masked exemplars, best first, row-major."""
        from milan_plugin.exemplars.viz import masked_images, tile

        masks = self.masks(unit, size=size)
        if masks.dim() != 3:
            raise InvalidInputError(
                f"layer {self.layer!r} has token maps, not images; there is no grid to draw"
            )
        return tile(masked_images(self.images(unit, size=size), masks, dim=dim), columns=columns)

    def subset(self, units: Sequence[int]) -> ExemplarSet:
        """A set with only ``units`` (layer unit indices), in the order given."""
        rows = torch.tensor([self.row(unit) for unit in units], dtype=torch.long)
        return ExemplarSet(
            layer=self.layer,
            units=self.units[rows],
            ids=self.ids[rows],
            keys=[self.keys[row] for row in rows.tolist()],
            activations=self.activations[rows],
            thresholds=self.thresholds[rows],
            maps=self.maps[rows],
            settings=dict(self.settings),
            _source=self._source,
            _adapter=self._adapter,
        )

    def attach(self, source: Any = None, adapter: Any = None) -> ExemplarSet:
        """Attach the source images are read from and/or the (generative) model; returns self.

        A source is checked against the stored keys, so a reordered or different folder is
        refused instead of silently showing the wrong images.
        """
        if source is not None:
            if isinstance(source, str):
                from milan_plugin.plugins import open_source

                source = open_source(source)
            self._check_keys(source)
            self._source = source
        if adapter is not None:
            from milan_plugin.plugins import get_adapter

            self._adapter = get_adapter(adapter)
        return self

    def _check_keys(self, source: Any) -> None:
        from milan_plugin.errors import FingerprintMismatchError

        size = len(source)
        for row in range(min(len(self), 4)):
            for index, key in zip(self.ids[row].tolist(), self.keys[row], strict=True):
                actual = source.key(index) if index < size else None
                if actual != key:
                    raise FingerprintMismatchError(
                        f"source {source.spec!r} has {actual!r} at index {index}, but these exemplars were "
                        f"computed with {key!r} there; attach the source they were computed from"
                    )

    def _require_source(self) -> Any:
        if self._source is None:
            spec = self.settings.get("source_spec")
            if not spec:
                raise InvalidInputError(
                    "no source attached: call exemplars.attach(source=...) to read images"
                )
            self.attach(source=spec)
        return self._source

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/exemplars.safetensors`` atomically; returns its path."""
        path = Path(directory) / SET_FILE
        metadata = {
            "format": SET_FORMAT,
            "layer": self.layer,
            "keys": self.keys,
            "settings": self.settings,
        }
        tensors = {
            "units": self.units,
            "ids": self.ids,
            "activations": self.activations,
            "thresholds": self.thresholds,
            "maps": self.maps,
        }
        write_tensors(path, tensors, metadata)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, source: Any = None) -> ExemplarSet:
        """Read a set written by :meth:`save`, validating shapes and dtypes.

        With no ``source``, images are read from the stored ``source_spec`` on first use.
        """
        path = Path(directory)
        path = path / SET_FILE if path.is_dir() else path
        tensors, metadata = read_tensors(path, "exemplar set")
        _validate(path, tensors, metadata)
        exemplars = cls(
            layer=metadata["layer"],
            units=tensors["units"],
            ids=tensors["ids"],
            keys=[list(row) for row in metadata["keys"]],
            activations=tensors["activations"],
            thresholds=tensors["thresholds"],
            maps=tensors["maps"],
            settings=metadata["settings"],
        )
        if source is not None:
            exemplars.attach(source=source)
        return exemplars


def _validate(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Reject files whose parts do not fit together, naming what is wrong."""

    def fail(problem: str) -> None:
        raise InvalidInputError(f"{path} is not a valid exemplar set: {problem}")

    if metadata.get("format") != SET_FORMAT:
        fail(f"format {metadata.get('format')!r}, expected {SET_FORMAT!r}")
    for name in ("units", "ids", "activations", "thresholds", "maps"):
        if name not in tensors:
            fail(f"the tensor {name!r} is missing")
    units, ids, activations = tensors["units"], tensors["ids"], tensors["activations"]
    thresholds, maps = tensors["thresholds"], tensors["maps"]
    expected_dtypes = {"units": torch.int64, "ids": torch.int64, "activations": torch.float32}
    expected_dtypes |= {"thresholds": torch.float32, "maps": torch.float32}
    for name, dtype in expected_dtypes.items():
        if tensors[name].dtype != dtype:
            fail(f"{name} has dtype {tensors[name].dtype}, expected {dtype}")
    if units.dim() != 1 or ids.dim() != 2 or ids.shape[0] != units.shape[0]:
        fail(f"units {tuple(units.shape)} and ids {tuple(ids.shape)} do not have shapes (n,) and (n, k)")
    if activations.shape != ids.shape or thresholds.shape != units.shape:
        fail(
            f"activations {tuple(activations.shape)} / thresholds {tuple(thresholds.shape)} do not match ids"
        )
    if maps.dim() not in (3, 4) or maps.shape[:2] != ids.shape:
        fail(f"maps {tuple(maps.shape)} are not (n, k, *spatial) for ids {tuple(ids.shape)}")
    keys = metadata.get("keys")
    if not isinstance(keys, list) or [len(row) for row in keys] != [ids.shape[1]] * ids.shape[0]:
        fail("the keys do not form an (n, k) table matching ids")
