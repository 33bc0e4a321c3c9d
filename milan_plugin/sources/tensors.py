"""In-memory inputs: a tensor of images, or raw model inputs of any shape.

``TensorSource(images)`` takes uint8 ``(N, 3, H, W)`` images (0..255) or float ones in [0, 1]
(grey ``(N, 1, H, W)`` is expanded to RGB). They get the same crop and normalisation as files
(shorter side resized, centre crop to ``image_size``, ImageNet mean/std), and ``images()`` shows
that crop. Anything else is rejected with :class:`InvalidInputError` rather than silently fed to a
vision model. ``TensorSource.raw(inputs)`` skips all of that for non-image models (token ids,
feature vectors): row ``i`` is fed as is and ``images()`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from milan_plugin.errors import EmptySourceError, InvalidInputError
from milan_plugin.fingerprint import digest_json, digest_state_dict
from milan_plugin.protocols import LoadedBatch
from milan_plugin.sources.images import Preprocessing, resize_uint8


def _as_uint8_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise InvalidInputError(f"expected a torch.Tensor of images, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise InvalidInputError(
            f"expected images shaped (N, 3, H, W) (or (N, 1, H, W) for grey), got {tuple(images.shape)}; "
            "for inputs that are not images use TensorSource.raw(...)"
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.dtype == torch.uint8:
        return images.contiguous()
    if not images.is_floating_point():
        raise InvalidInputError(f"images must be uint8 (0..255) or float in [0, 1], got dtype {images.dtype}")
    if images.numel() and not torch.isfinite(images).all():
        raise InvalidInputError("float images contain NaN or infinite values")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise InvalidInputError(
            f"float images must lie in [0, 1] (got {float(images.min()):.3g}..{float(images.max()):.3g}); "
            "pass un-normalised pictures, or model-ready inputs through TensorSource.raw(...)"
        )
    return (images * 255).round().to(torch.uint8)


class TensorSource:
    """Images (or, with :meth:`raw`, arbitrary inputs) held in memory; ids are ``tensor-<i>``."""

    def __init__(
        self,
        images: torch.Tensor,
        *,
        image_size: int = 224,
        resize_size: int | None = None,
        keys: Sequence[str] | None = None,
        name: str = "tensor",
    ) -> None:
        uint8 = _as_uint8_images(images)
        self.preprocessing = Preprocessing(image_size=image_size, resize_size=resize_size)
        self._crops = self.preprocessing.crop_tensor(uint8) if len(uint8) else uint8
        self._raw: torch.Tensor | None = None
        self._init_common(len(uint8), keys, name)

    @classmethod
    def raw(
        cls, inputs: torch.Tensor, *, keys: Sequence[str] | None = None, name: str = "tensor"
    ) -> TensorSource:
        """A source that feeds ``inputs[i]`` to the model unchanged (non-image models)."""
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1:
            raise InvalidInputError("raw inputs must be a tensor whose first dimension indexes the inputs")
        source = cls.__new__(cls)
        source.preprocessing = None
        source._crops = None
        source._raw = inputs
        source._init_common(len(inputs), keys, name)
        return source

    def _init_common(self, count: int, keys: Sequence[str] | None, name: str) -> None:
        if count == 0:
            raise EmptySourceError("tensor source: the tensor holds no inputs (its first dimension is 0)")
        if keys is not None and len(keys) != count:
            raise InvalidInputError(f"got {len(keys)} keys for {count} inputs")
        self._keys = list(keys) if keys is not None else None
        self._count = count
        self.spec = f"memory:{name}"
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        kind = "raw" if self._raw is not None else "images"
        return f"TensorSource({kind}, n={self._count})"

    def key(self, index: int) -> str:
        index = self._check_index(index)
        return self._keys[index] if self._keys is not None else f"tensor-{index}"

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            data = self._raw if self._raw is not None else self._crops
            settings = self.preprocessing.settings() if self.preprocessing is not None else "raw"
            self._fingerprint = digest_json(
                {
                    "kind": "tensor",
                    "data": digest_state_dict({"data": data}),
                    "settings": settings,
                    "keys": self._keys,
                }
            )
        return self._fingerprint

    def load(self, indices: Sequence[int]) -> LoadedBatch:
        chosen = torch.as_tensor([self._check_index(index) for index in indices], dtype=torch.long)
        if self._raw is not None:
            inputs = self._raw[chosen]
        else:
            inputs = self.preprocessing.normalize(self._crops[chosen])
        return LoadedBatch(inputs=inputs, indices=chosen.tolist())

    def images(self, indices: Sequence[int], size: int = 224) -> torch.Tensor | None:
        if self._crops is None:
            return None
        chosen = torch.as_tensor([self._check_index(index) for index in indices], dtype=torch.long)
        return resize_uint8(self._crops[chosen], size)

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self._count:
            raise IndexError(f"index {index} is out of range for a source of {self._count} inputs")
        return index
