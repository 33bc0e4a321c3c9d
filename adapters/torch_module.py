"""The generic adapter: any ``torch.nn.Module``, layers addressed by dotted module name.

Activations are read with forward hooks that *clone* the module's output inside the hook. The
clone matters: torchvision AlexNet and VGG follow every conv with ``ReLU(inplace=True)``, which
overwrites the conv's output tensor after the hook has seen it; a hook that only kept a reference
would hand back post-ReLU values under a conv's name (the MILAN reference code did exactly that).
Here a layer's activation is always that module's own output. To get the post-ReLU values, name
the ReLU module instead.

The adapter never changes the user's model: it does not switch train/eval mode (a model left in
training mode runs with dropout and batch statistics, and the adapter warns once), does not move
it between devices (inputs are moved to the model's device) and removes every hook it adds.
The training-mode warning is only given when the model holds dropout or batch-norm modules in
training mode, since those are the ones whose output changes with the mode.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from milan_plugin.errors import InvalidInputError, UnknownLayerError
from milan_plugin.fingerprint import digest_module

#: Picks the activation tensor out of a module's output: an index into a tuple/list, a key or
#: attribute name of a dict/dataclass output, or a function of the output.
OutputSelector = int | str | Callable[[Any], torch.Tensor]
#: Calls the model on one batch of inputs (default ``model(inputs)``).
ForwardFunction = Callable[[nn.Module, torch.Tensor], Any]


def first_tensor(output: Any) -> torch.Tensor:
    """The first tensor in a module output: itself, or the first one found depth-first in a
    tuple, list, mapping (in key order) or dataclass (in field order)."""
    found = _find_first_tensor(output)
    if found is None:
        raise InvalidInputError(
            f"the module returned {type(output).__name__} with no tensor in it; pass output_selector= "
            "to say which part of the output holds the activations"
        )
    return found


def _find_first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    for part in _parts(output):
        found = _find_first_tensor(part)
        if found is not None:
            return found
    return None


def _parts(output: Any) -> list[Any]:
    if isinstance(output, Mapping):
        return list(output.values())
    if isinstance(output, tuple | list):
        return list(output)
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return [getattr(output, field.name) for field in dataclasses.fields(output)]
    return []


def replace_first_tensor(output: Any, change: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``output`` with its first tensor (as :func:`first_tensor` finds it) replaced by ``change(it)``."""
    replaced, done = _replace(output, change)
    if not done:
        raise InvalidInputError(f"the module returned {type(output).__name__} with no tensor to ablate")
    return replaced


def _replace(output: Any, change: Callable[[torch.Tensor], torch.Tensor]) -> tuple[Any, bool]:
    if isinstance(output, torch.Tensor):
        return change(output), True
    if isinstance(output, Mapping):
        for key, value in output.items():
            new_value, done = _replace(value, change)
            if done:
                updated = output.copy() if hasattr(output, "copy") else dict(output)
                updated[key] = new_value
                return updated, True
    elif isinstance(output, tuple | list):
        for position, value in enumerate(output):
            new_value, done = _replace(value, change)
            if done:
                items = [*output[:position], new_value, *output[position + 1 :]]
                if isinstance(output, list):
                    return items, True
                return (type(output)(*items) if hasattr(output, "_fields") else tuple(items)), True
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        for field in dataclasses.fields(output):
            new_value, done = _replace(getattr(output, field.name), change)
            if done:
                return dataclasses.replace(output, **{field.name: new_value}), True
    return output, False


def select_output(output: Any, selector: OutputSelector | None) -> torch.Tensor:
    """The activation tensor of a module output, picked by ``selector`` (None: the first tensor)."""
    if selector is None:
        return first_tensor(output)
    if callable(selector):
        selected = selector(output)
    elif isinstance(selector, int) or isinstance(output, Mapping):
        selected = output[selector]
    else:
        selected = getattr(output, selector)
    if not isinstance(selected, torch.Tensor):
        raise InvalidInputError(
            f"output_selector {selector!r} picked a {type(selected).__name__}, not a tensor"
        )
    return selected


def module_device(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter (else buffer) lives; CPU for a module with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def zero_units(
    tensor: torch.Tensor, units: Sequence[int], unit_dim: int, *, layer: str | None = None
) -> torch.Tensor:
    """``tensor`` with ``units`` along ``unit_dim`` set to zero, as a new tensor.

    A new tensor rather than an in-place write, so autograd still works and an in-place op
    later in the model cannot undo the ablation. Every ablation path (hooks, TransformerLens,
    nnsight edits, neuron handles) goes through here so they agree on what "ablate" means.
    """
    size = tensor.shape[unit_dim]
    bad = [unit for unit in units if not -size <= unit < size]
    if bad:
        where = f"layer {layer!r}" if layer is not None else "the layer"
        raise InvalidInputError(f"{where} has {size} units (valid: 0..{size - 1}); cannot ablate units {bad}")
    keep = torch.ones(size, dtype=tensor.dtype, device=tensor.device)
    keep[list(units)] = 0
    shape = [1] * tensor.ndim
    shape[unit_dim] = size
    return tensor * keep.view(shape)


def _per_layer(value: Any, layer: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(layer, default)
    return default if value is None else value


class TorchModuleAdapter:
    """Reads the layers of any ``torch.nn.Module`` by dotted module name.

    Args:
        model: the user's module (kept as is).
        name: a short identity for caches and reports (default ``torch:<ClassName>``).
        default_layers: the layers described when the user names none (default: the
            top-level children that hold parameters).
        channel_dim: which dimension of a layer's output holds the units, for every layer or per
            layer name; the activation is returned with that dimension moved to position 1, so
            ``channel_dim=-1`` turns ``(B, T, C)`` tokens into ``(B, C, T)``.
        output_selector: how to pick the activation tensor from a module that returns a tuple,
            dict or dataclass (for every layer or per layer name); by default the first tensor.
        forward: how to call the model on a batch (default ``model(inputs)``), for models that
            take several arguments.
        aliases: extra names accepted for layers (alias -> dotted module name).

    Activations come back as float32 ``(B, units, *spatial)``: ``(B, U)`` outputs become
    ``(B, U, 1, 1)``. A module that runs several times in one forward pass (a shared ReLU, for
    instance) is captured at its last call.
    """

    generative: bool = False

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str | None = None,
        default_layers: Sequence[str] | None = None,
        channel_dim: int | Mapping[str, int] = 1,
        output_selector: OutputSelector | Mapping[str, OutputSelector] | None = None,
        forward: ForwardFunction | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InvalidInputError(f"expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.name = name or f"torch:{type(model).__name__}"
        self.channel_dim = channel_dim
        self.output_selector = output_selector
        self.forward = forward
        self.aliases = dict(aliases or {})
        self._modules = {layer: module for layer, module in model.named_modules() if layer}
        for target in self.aliases.values():
            if target not in self._modules:
                raise UnknownLayerError(target, list(self._modules))
        self._default_layers = list(default_layers) if default_layers is not None else None
        if self._default_layers is not None:
            for layer in self._default_layers:
                self.resolve(layer)
        self._warned_training = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layers={len(self._modules)}, device={self.device})"

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (inputs are moved there); CPU for a weightless model."""
        return module_device(self.model)

    def layer_names(self) -> list[str]:
        """Every named submodule, in registration order (usually the forward order)."""
        return list(self._modules)

    def default_layers(self) -> list[str]:
        if self._default_layers is not None:
            return list(self._default_layers)
        return [
            layer for layer, module in self.model.named_children() if any(True for _ in module.parameters())
        ]

    def fingerprint(self) -> str:
        return digest_module(self.model)

    def resolve(self, layer: str) -> str:
        """The dotted module name for ``layer`` (an alias or a module name).

        Raises :class:`UnknownLayerError`, listing the closest names, when there is none.
        """
        target = self.aliases.get(layer, layer)
        if target not in self._modules:
            raise UnknownLayerError(layer, [*self._modules, *self.aliases])
        return target

    def module(self, layer: str) -> nn.Module:
        return self._modules[self.resolve(layer)]

    def run(self, inputs: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """One forward pass capturing every layer in ``layers``; keys are the names as given."""
        targets = {layer: self.resolve(layer) for layer in layers}
        self._warn_if_training()
        captured: dict[str, torch.Tensor] = {}
        handles = []
        try:
            for layer, target in targets.items():
                handles.append(
                    self._modules[target].register_forward_hook(self._capture_hook(layer, captured))
                )
            with torch.no_grad():
                self._call(inputs)
        finally:
            for handle in handles:
                handle.remove()
        missing = [layer for layer in layers if layer not in captured]
        if missing:
            raise InvalidInputError(
                f"layers {missing} did not run in the forward pass; pick layers the model's forward uses"
            )
        return {layer: self.arrange(layer, captured[layer], inputs) for layer in layers}

    def _capture_hook(self, layer: str, captured: dict[str, torch.Tensor]) -> Callable[..., None]:
        selector = _per_layer(self.output_selector, layer, None)

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            captured[layer] = select_output(output, selector).detach().to(dtype=torch.float32, copy=True)

        return hook

    def _call(self, inputs: torch.Tensor) -> Any:
        inputs = _to_device(inputs, self.device)
        if self.forward is not None:
            return self.forward(self.model, inputs)
        return self.model(inputs)

    def unit_dim_for(self, layer: str, tensor: torch.Tensor) -> int:
        """The dimension of ``layer``'s raw output ``tensor`` that indexes its units."""
        return int(_per_layer(self.channel_dim, layer, 1))

    def arrange(self, layer: str, activation: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Turn a captured output into ``(B, units, *spatial)``; subclasses reshape tokens here."""
        if activation.ndim < 2:
            raise InvalidInputError(
                f"layer {layer!r} produced a tensor of shape {tuple(activation.shape)}; "
                "expected (batch, units, ...)"
            )
        unit_dim = self.unit_dim_for(layer, activation)
        if unit_dim % activation.ndim != 1:
            activation = activation.movedim(unit_dim, 1)
        if activation.ndim == 2:
            activation = activation[:, :, None, None]
        return activation

    @contextmanager
    def ablate(self, layer: str, units: Sequence[int]) -> Iterator[None]:
        """Zero ``units`` of ``layer`` in every forward pass inside the ``with`` block.

        The hook returns a new output instead of writing into the module's, so autograd and
        in-place ops downstream are unaffected (with a custom ``output_selector`` the selected
        tensor is zeroed in place, since the adapter cannot rebuild an output it does not know).
        The hook is removed on exit, also on an exception.
        """
        target = self.resolve(layer)
        unit_list = [int(unit) for unit in units]
        selector = _per_layer(self.output_selector, layer, None)

        def zero(tensor: torch.Tensor) -> torch.Tensor:
            return zero_units(tensor, unit_list, self.unit_dim_for(layer, tensor), layer=layer)

        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            if selector is None:
                return replace_first_tensor(output, zero)
            selected = select_output(output, selector)
            with torch.no_grad():
                selected.copy_(zero(selected))
            return None

        handle = self._modules[target].register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def render(self, inputs: torch.Tensor) -> torch.Tensor:
        raise InvalidInputError(
            f"{self.name} is not a generative model, so it cannot render images from its inputs; "
            "wrap a generator in milan_plugin.adapters.generative.GenerativeAdapter"
        )

    def _warn_if_training(self) -> None:
        if not self._warned_training and _has_live_training_behaviour(self.model):
            self._warned_training = True
            warnings.warn(
                f"{self.name} is in training mode (dropout and batch-norm statistics are live); "
                "call model.eval() first for reproducible exemplars. The adapter leaves the mode as it is.",
                stacklevel=3,
            )


def _has_live_training_behaviour(model: nn.Module) -> bool:
    """Whether a module that acts differently in training mode (dropout, batch norm) is training."""
    mode_dependent = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    return any(module.training and isinstance(module, mode_dependent) for module in model.modules())


def _to_device(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {key: _to_device(value, device) for key, value in inputs.items()}
    if isinstance(inputs, tuple | list):
        return type(inputs)(_to_device(value, device) for value in inputs)
    return inputs
