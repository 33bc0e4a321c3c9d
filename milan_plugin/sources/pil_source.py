"""Shared behaviour of the sources that decode pictures (folders, ``datasets`` datasets).

A subclass says how to open input ``index`` as a PIL image and what its key is; this class does
the rest: compositing and RGB conversion, the MILAN crop and normalisation, unreadable inputs
reported per index instead of crashing a long run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from milan_plugin.errors import InvalidInputError, UnreadableInputError
from milan_plugin.fingerprint import describe_callable
from milan_plugin.protocols import LoadedBatch
from milan_plugin.sources.images import NEUTRAL_GREY, Preprocessing, background_colour, resize_uint8, to_rgb

ON_ERROR_CHOICES = ("skip", "raise")
#: Raised by decoders on broken files: truncated or corrupt data, unknown formats, decompression bombs.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
)


class PILImageSource:
    """Base of picture-backed sources.

    Args:
        image_size: side of the square crop the model sees.
        resize_size: the shorter side is resized to this before the crop (default 256 for 224).
        transform: a function from an RGB PIL image to the model's input tensor, replacing the
            default crop + normalisation for :meth:`load`. :meth:`images` still shows the default
            crop, so give a transform with the same geometry or masks will not line up.
        on_error: ``"skip"`` reports unreadable inputs in ``LoadedBatch.failures``; ``"raise"``
            raises :class:`UnreadableInputError` at the first one.
        background: colour behind transparent pixels (``"grey"``, ``"white"`` or an RGB tuple).
    """

    spec: str

    def __init__(
        self,
        *,
        image_size: int = 224,
        resize_size: int | None = None,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        on_error: str = "skip",
        background: str | tuple[int, int, int] = NEUTRAL_GREY,
    ) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise InvalidInputError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.preprocessing = Preprocessing(image_size=int(image_size), resize_size=resize_size)
        self.transform = transform
        self.on_error = on_error
        self.background = background_colour(background)

    def __len__(self) -> int:
        raise NotImplementedError

    def key(self, index: int) -> str:
        raise NotImplementedError

    def open_image(self, index: int) -> Image.Image:
        """The decoded picture for ``index`` (subclasses)."""
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """How to name input ``index`` in an error message."""
        return self.key(index)

    def settings(self) -> dict[str, Any]:
        """Preprocessing settings that change what the model sees (part of the fingerprint)."""
        return {
            **self.preprocessing.settings(),
            "background": list(self.background),
            "transform": None if self.transform is None else describe_callable(self.transform),
        }

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a source of {len(self)} inputs")
        return index

    def _read_rgb(self, index: int) -> Image.Image:
        index = self._check_index(index)
        try:
            with self.open_image(index) as image:
                image.load()
                return to_rgb(image, self.background)
        except DECODE_ERRORS as error:
            reason = f"{type(error).__name__}: {error}"
            raise UnreadableInputError(f"cannot read {self.describe(index)}: {reason}") from error

    def load(self, indices: Sequence[int]) -> LoadedBatch:
        tensors: list[torch.Tensor] = []
        loaded: list[int] = []
        failures: list[tuple[int, str]] = []
        for index in indices:
            try:
                picture = self._read_rgb(index)
            except UnreadableInputError as error:
                if self.on_error == "raise":
                    raise
                failures.append((int(index), str(error)))
                continue
            if self.transform is not None:
                tensors.append(self.transform(picture))
            else:
                tensors.append(self.preprocessing.normalize(self.preprocessing.crop(picture)[None])[0])
            loaded.append(int(index))
        if tensors:
            inputs = torch.stack(tensors)
        else:
            size = self.preprocessing.image_size
            inputs = torch.empty(0, 3, size, size)
        return LoadedBatch(inputs=inputs, indices=loaded, failures=failures)

    def images(self, indices: Sequence[int], size: int = 224) -> torch.Tensor:
        """The uint8 crops the model saw, resized to ``size``; unreadable inputs raise."""
        crops = [self.preprocessing.crop(self._read_rgb(index)) for index in indices]
        if not crops:
            return torch.empty(0, 3, size, size, dtype=torch.uint8)
        return resize_uint8(torch.stack(crops), size)
