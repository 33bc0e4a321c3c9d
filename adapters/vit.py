"""Vision Transformers: token activations laid out on the patch grid.

A ViT block sees ``(B, P + N, C)`` tokens: ``P`` prefix tokens (the CLS token, then a DeiT
distillation token or the register tokens of DINOv2-with-registers) followed by ``N = rows x cols``
patch tokens in row-major order. Each of the ``C`` hidden units becomes a channel on the patch
grid: :func:`tokens_to_grid` drops the ``P`` prefix tokens *from the front* and reshapes the rest to
``(B, C, rows, cols)`` with the first patch top-left. (The MILAN reference dropped the last token
instead, which shifted every map by one patch; that mistake is not repeated here.)

Recognised models, with their prefix tokens:

* torchvision ``VisionTransformer`` (``vit_b_16`` ...): CLS only. Default layers
  ``encoder.layers.encoder_layer_<i>.mlp.0`` (the first MLP linear, pre-GELU, as MILAN's DINO
  ``blocks.<i>.mlp.fc1``).
* transformers ``ViTModel`` / ``ViTForImageClassification`` (CLS), ``DeiT*`` (CLS + distillation),
  ``Dinov2Model`` (CLS), ``Dinov2WithRegistersModel`` (CLS + ``config.num_register_tokens``).
  Default layers ``...layers.<i>.mlp.fc1`` (``encoder.layer.<i>.mlp.fc1`` for DINOv2).

Every model also accepts the DINO-style aliases ``blocks.<i>.mlp.fc1`` for its default layers.
Any 3-D output inside the model is treated as tokens; 4-D (the patch embedding) and 2-D outputs
(the classifier) are handled as by the generic adapter. The grid's shape comes from the input
image and the patch size, so non-square inputs work where the model supports them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import torch
from milan_plugin.adapters.torch_module import TorchModuleAdapter
from torch import nn

from milan_plugin.errors import InvalidInputError

_HF_PREFIX_TOKENS = {"vit": 1, "deit": 2, "dinov2": 1, "dinov2_with_registers": 1}


def tokens_to_grid(tokens: torch.Tensor, prefix_tokens: int, rows: int, cols: int) -> torch.Tensor:
    """``(B, prefix_tokens + rows*cols, C)`` -> ``(B, C, rows, cols)``; token ``prefix_tokens + r*cols + c``
    lands at ``(r, c)``."""
    if tokens.ndim != 3:
        raise InvalidInputError(f"expected (batch, tokens, channels), got shape {tuple(tokens.shape)}")
    batch, count, channels = tokens.shape
    if count != prefix_tokens + rows * cols:
        raise InvalidInputError(
            f"got {count} tokens; a {rows}x{cols} patch grid with {prefix_tokens} prefix token(s) "
            f"needs {prefix_tokens + rows * cols}"
        )
    patches = tokens[:, prefix_tokens:, :]
    return patches.reshape(batch, rows, cols, channels).permute(0, 3, 1, 2).contiguous()


class ViTAdapter(TorchModuleAdapter):
    """Generic adapter plus the token -> patch-grid layout for 3-D outputs.

    Args:
        model: the ViT.
        patch_size: side of a square patch in pixels.
        prefix_tokens: tokens before the patches (CLS, distillation, registers).
        Remaining keyword arguments go to :class:`TorchModuleAdapter`.
    """

    def __init__(self, model: nn.Module, *, patch_size: int, prefix_tokens: int = 1, **options: Any) -> None:
        super().__init__(model, **options)
        self.patch_size = int(patch_size)
        self.prefix_tokens = int(prefix_tokens)

    def unit_dim_for(self, layer: str, tensor: torch.Tensor) -> int:
        return -1 if tensor.ndim == 3 else super().unit_dim_for(layer, tensor)

    def arrange(self, layer: str, activation: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        if activation.ndim != 3:
            return super().arrange(layer, activation, inputs)
        height, width = inputs.shape[-2:]
        rows, cols = int(height) // self.patch_size, int(width) // self.patch_size
        try:
            return tokens_to_grid(activation, self.prefix_tokens, rows, cols)
        except InvalidInputError as error:
            raise InvalidInputError(f"layer {layer!r}: {error}") from None


def vit_adapter(model: nn.Module) -> ViTAdapter | None:
    """The adapter for a recognised ViT (see the module docstring), or ``None``."""
    if "torchvision" in sys.modules:
        from torchvision.models import VisionTransformer

        if isinstance(model, VisionTransformer):
            return _torchvision_vit(model)
    if "transformers" in sys.modules:
        from transformers import PreTrainedModel

        if isinstance(model, PreTrainedModel):
            return _transformers_vit(model)
    return None


def _torchvision_vit(model: nn.Module) -> ViTAdapter:
    layers = [
        name
        for name, _ in model.named_modules()
        if re.fullmatch(r"encoder\.layers\.encoder_layer_\d+\.mlp\.0", name)
    ]
    arch = {
        (16, 12, 768): "vit_b_16", (32, 12, 768): "vit_b_32", (16, 24, 1024): "vit_l_16",
        (32, 24, 1024): "vit_l_32", (14, 32, 1280): "vit_h_14",
    }.get((model.patch_size, len(layers), model.hidden_dim), "vit")  # fmt: skip
    return ViTAdapter(
        model,
        name=f"torchvision:{arch}",
        patch_size=model.patch_size,
        prefix_tokens=1,
        default_layers=layers,
        aliases=_block_aliases(layers),
    )


def _transformers_vit(model: nn.Module) -> ViTAdapter | None:
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type not in _HF_PREFIX_TOKENS:
        return None
    prefix = _HF_PREFIX_TOKENS[model_type] + int(getattr(config, "num_register_tokens", 0) or 0)
    layers = [name for name, _ in model.named_modules() if re.search(r"(^|\.)layers?\.\d+\.mlp\.fc1$", name)]
    return ViTAdapter(
        model,
        name=f"transformers:{type(model).__name__}",
        patch_size=int(config.patch_size),
        prefix_tokens=prefix,
        default_layers=layers,
        aliases=_block_aliases(layers),
    )


def _block_aliases(layers: Sequence[str]) -> dict[str, str]:
    """DINO-style names ``blocks.<i>.mlp.fc1`` for each block's first MLP linear."""
    aliases = {}
    for layer in layers:
        index = re.search(r"(\d+)\.mlp\.(?:0|fc1)$", layer)
        if index and f"blocks.{index.group(1)}.mlp.fc1" != layer:
            aliases[f"blocks.{index.group(1)}.mlp.fc1"] = layer
    return aliases
