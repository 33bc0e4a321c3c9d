"""Generative models: a latent goes in, an image comes out, and the image is the exemplar.

Whether a module is a generator cannot be told from its structure, so there is no automatic
recognition: wrap the model yourself, ``GenerativeAdapter(generator, output_range=(-1, 1))``, and
pass the adapter wherever a model is accepted. Activations are read from inner layers exactly as
for any module (a BigGAN block's output is ``(B, C, H, W)`` like a conv layer's); the exemplar
images are what :meth:`GenerativeAdapter.render` produces from the same latents, which the exemplar
engine calls because a latent source has no images of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from milan_plugin.adapters.torch_module import OutputSelector, TorchModuleAdapter, select_output
from torch import nn

from milan_plugin.errors import InvalidInputError

_NAMED_RANGES = {"tanh": (-1.0, 1.0), "-1..1": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "0..1": (0.0, 1.0)}


def _output_range(output_range: str | Sequence[float]) -> tuple[float, float]:
    if isinstance(output_range, str):
        if output_range not in _NAMED_RANGES:
            raise InvalidInputError(
                f"unknown output_range {output_range!r}; "
                f"use one of {sorted(_NAMED_RANGES)} or a (low, high) pair"
            )
        return _NAMED_RANGES[output_range]
    low, high = (float(value) for value in output_range)
    if not high > low:
        raise InvalidInputError(f"output_range must be (low, high) with high > low, got {output_range!r}")
    return low, high


def to_uint8_images(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Float ``(B, 3, H, W)`` images in ``[low, high]`` -> uint8, values outside clamped."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise InvalidInputError(
            f"a generator must output images shaped (B, 3, H, W) (or (B, 1, H, W)), got {tuple(images.shape)}"
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    scaled = (images.float() - low) / (high - low)
    return (scaled.clamp(0, 1) * 255).round().to(torch.uint8)


class GenerativeAdapter(TorchModuleAdapter):
    """The adapter for a generator.

    Args:
        model: the generator (latents in, images out).
        output_range: the range of the generated pixels: ``(-1, 1)`` (``"tanh"``, the default,
            as BigGAN and most GANs) or ``(0, 1)`` (``"sigmoid"``), or any ``(low, high)`` pair.
        image_selector: how to pick the image tensor from the model's output, when it is not
            the output itself or its first tensor.
        Remaining keyword arguments go to :class:`TorchModuleAdapter` (``forward=`` for
        generators that take more than a latent, e.g. class-conditional ones).
    """

    generative = True

    def __init__(
        self,
        model: nn.Module,
        *,
        output_range: str | Sequence[float] = (-1.0, 1.0),
        image_selector: OutputSelector | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("name", f"generator:{type(model).__name__}")
        super().__init__(model, **options)
        self.output_range = _output_range(output_range)
        self.image_selector = image_selector

    def render(self, inputs: torch.Tensor) -> torch.Tensor:
        """The uint8 ``(B, 3, H, W)`` images generated from ``inputs`` (one full forward pass)."""
        self._warn_if_training()
        with torch.no_grad():
            output = self._call(inputs)
        images = select_output(output, self.image_selector)
        return to_uint8_images(images.detach().cpu(), *self.output_range)
