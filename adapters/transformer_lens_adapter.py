"""TransformerLens models: layers are hook names, read with ``run_with_cache``, ablated with hooks.

TransformerLens 4 removed ``HookedTransformer``; what remains is the ``TransformerBridge``
(``boot_native`` for random weights from a config, ``boot_transformers`` around a Hugging Face
model) and ``HookedRootModule`` + ``HookPoint`` for any module. Both expose ``hook_dict``,
``run_with_cache(names_filter=...)`` and a ``hooks(fwd_hooks=...)`` context, which is all this
adapter uses, so it recognises them by those attributes without importing TransformerLens.

Units are the last dimension of a hook's activation (TransformerLens keeps ``d_mlp``,
``d_model`` and ``d_head`` last): ``blocks.0.mlp.hook_post`` of shape ``(batch, pos, d_mlp)``
becomes ``(batch, d_mlp, pos)``, i.e. the token sequence is the spatial axis and an exemplar's
"mask" marks the tokens where the unit fires.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from milan_plugin.adapters.torch_module import module_device, zero_units

from milan_plugin.errors import InvalidInputError, UnknownLayerError
from milan_plugin.fingerprint import digest_module


def is_transformer_lens_model(model: Any) -> bool:
    """True for a ``TransformerBridge`` or a ``HookedRootModule`` (duck-typed, no import)."""
    return (
        isinstance(model, torch.nn.Module)
        and hasattr(type(model), "run_with_cache")
        and hasattr(type(model), "hooks")
        and hasattr(model, "hook_dict")
    )


class TransformerLensAdapter:
    """Reads TransformerLens hook points as layers (see the module docstring).

    Args:
        model: a ``TransformerBridge`` or ``HookedRootModule`` (kept as is).
        name: identity for caches and reports (default ``transformer_lens:<ClassName>``).
        default_layers: layers described when none are named (default: every
            ``blocks.N.mlp.hook_post``, the MLP neurons).
    """

    generative: bool = False

    def __init__(
        self, model: torch.nn.Module, *, name: str | None = None, default_layers: Sequence[str] | None = None
    ) -> None:
        if not is_transformer_lens_model(model):
            raise InvalidInputError(
                "expected a TransformerLens TransformerBridge or HookedRootModule, "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.name = name or f"transformer_lens:{type(model).__name__}"
        self._default_layers = list(default_layers) if default_layers is not None else None

    def __repr__(self) -> str:
        return f"TransformerLensAdapter(name={self.name!r}, hooks={len(self.layer_names())})"

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def layer_names(self) -> list[str]:
        """Every hook point name, in the model's registration order."""
        return list(self.model.hook_dict)

    def default_layers(self) -> list[str]:
        if self._default_layers is not None:
            return list(self._default_layers)
        return [name for name in self.layer_names() if name.endswith("mlp.hook_post")]

    def fingerprint(self) -> str:
        return digest_module(self.model)

    def resolve(self, layer: str) -> str:
        """``layer`` itself when it is a hook name; :class:`UnknownLayerError` with close names if not."""
        if layer not in self.model.hook_dict:
            raise UnknownLayerError(layer, self.layer_names())
        return layer

    def unit_dim_for(self, layer: str, tensor: torch.Tensor) -> int:
        """Units are the last dimension of every hook's activation."""
        return -1

    def arrange(self, layer: str, activation: torch.Tensor, inputs: Any) -> torch.Tensor:
        """``(batch, *positions, units)`` -> ``(batch, units, *positions)``; 2-D -> 1x1 maps."""
        if activation.ndim < 2:
            raise InvalidInputError(
                f"hook {layer!r} produced a tensor of shape {tuple(activation.shape)}; "
                "expected (batch, ..., units)"
            )
        if activation.ndim == 2:
            return activation[:, :, None, None]
        return activation.movedim(-1, 1)

    def run(self, inputs: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """One forward pass through ``run_with_cache`` holding only the requested hooks."""
        targets = {layer: self.resolve(layer) for layer in layers}
        inputs = inputs.to(self.device) if isinstance(inputs, torch.Tensor) else inputs
        with torch.no_grad():
            _, cache = self.model.run_with_cache(inputs, names_filter=sorted(set(targets.values())))
        captured = {}
        for layer, target in targets.items():
            activation = cache[target].detach().to(dtype=torch.float32, copy=True)
            captured[layer] = self.arrange(layer, activation, inputs)
        return captured

    @contextmanager
    def ablate(self, layer: str, units: Sequence[int]) -> Iterator[None]:
        """Zero ``units`` of hook ``layer`` in every forward pass inside the block (TL's ``hooks``)."""
        target = self.resolve(layer)
        unit_list = [int(unit) for unit in units]

        def hook(activation: torch.Tensor, hook: Any) -> torch.Tensor:
            return zero_units(activation, unit_list, -1, layer=layer)

        with self.model.hooks(fwd_hooks=[(target, hook)]):
            yield

    def render(self, inputs: torch.Tensor) -> torch.Tensor:
        raise InvalidInputError(f"{self.name} is not a generative model, so it cannot render images")
