"""nnsight integration: the wrapper class with neuron envoys, and a ModelAdapter built on traces.

Everything that touches nnsight lives in this module, and the rest of the plugin imports it
only when an nnsight model is actually in play (importing nnsight costs seconds and mounts
``.save`` on every Python object).

Two pieces:

* :class:`MilanNNsight` — an ``nnsight.NNsight`` whose envoys are :class:`NeuronEnvoy`, so every
  module has ``.neurons``. nnsight 0.8.1 ignores an ``envoys`` class attribute, so the class
  passes ``envoys=`` from ``__init__``. Plain ``NNsight`` refuses several ``tracer.invoke``
  blocks in one trace; this class batches them by concatenating their tensors on dim 0.
* :class:`NNsightAdapter` — the :class:`~milan_plugin.protocols.ModelAdapter` protocol over an
  nnsight model. ``run`` reads the layers inside one ``trace`` (in execution order, cloned at
  once so an in-place op later in the forward cannot change them) and ``ablate`` is an nnsight
  edit. Which module a layer name means and how its raw output becomes ``(B, units, *spatial)``
  is delegated to the adapter the plugin would pick for the *unwrapped* model (torch module,
  ViT token grid, TransformerLens hook point), so exemplars computed through nnsight and through
  plain hooks are the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import nnsight
import torch
from milan_plugin.adapters.torch_module import first_tensor, module_device, replace_first_tensor, zero_units
from nnsight import Envoy, NNsight

from milan_plugin.errors import InvalidInputError, UnknownLayerError


class NeuronEnvoy(Envoy):
    """An envoy with a ``neurons`` handle: ``model.layer4.neurons[12].describe()``."""

    @property
    def neurons(self) -> Any:
        from milan_plugin.neurons import Layer

        return Layer(self)


class MilanNNsight(NNsight):
    """``nnsight.NNsight`` with neuron envoys and batching of several invokes.

    It is still the user's model: traces, edits, sessions and plain calls behave exactly as on
    ``NNsight``. The plugin's state (source, describer, caches) hangs off the root as
    ``milan_store``.
    """

    def __init__(self, module: torch.nn.Module, *, envoys: Any = None, **kwargs: Any) -> None:
        super().__init__(module, envoys=envoys or NeuronEnvoy, **kwargs)

    def _batch_size(self, *inputs: Any, **kwargs: Any) -> int:
        first = inputs[0] if inputs else None
        if isinstance(first, torch.Tensor):
            return int(first.shape[0])
        return 1 if (inputs or kwargs) else 0

    def _batch(self, invokes: list[tuple], fn: Any) -> tuple:
        if len(invokes) <= 1:
            return super()._batch(invokes, fn)
        firsts = [args[0] if args else None for args, _ in invokes]
        if not all(isinstance(first, torch.Tensor) for first in firsts) or any(
            len(args) != 1 or kwargs for args, kwargs in invokes
        ):
            raise InvalidInputError(
                "several invokes are batched by concatenating one tensor argument each on dim 0; "
                "pass exactly one tensor per invoke"
            )
        return (torch.cat(firsts, 0),), {}


def is_nnsight_model(model: Any) -> bool:
    """True for any nnsight envoy (``NNsight``, ``TransformersModel``, :class:`MilanNNsight`)."""
    return isinstance(model, Envoy)


def layer_name(envoy: Envoy) -> str:
    """The plugin's layer name for an envoy: its module path without the root's ``model.``."""
    root_path = envoy.root.path
    if envoy.path == root_path:
        return ""
    return envoy.path[len(root_path) + 1 :]


class NNsightAdapter:
    """Captures layers of an nnsight model through its envoys (see the module docstring).

    Args:
        model: an nnsight envoy tree root (``NNsight``, :class:`MilanNNsight`, ...).
        inner: the adapter of the unwrapped module that names layers and arranges their outputs;
            by default the one the plugin manager picks for ``model._module``.

    The adapter takes the inner adapter's ``name`` and fingerprint: it is the same model, so
    exemplar caches computed through nnsight and through plain hooks are interchangeable.
    ``ablate`` stores an nnsight edit on a shallow copy of the model, so it applies to this
    adapter's own traces (``run``) and leaves the user's model and its own edits untouched.
    A module that runs several times in one forward pass is read at its first call (nnsight's
    ``.output``); the hook-based adapter reads the last call.
    """

    def __init__(self, model: Envoy, inner: Any = None) -> None:
        if not is_nnsight_model(model):
            raise InvalidInputError(f"expected an nnsight model, got {type(model).__name__}")
        if inner is None:
            from milan_plugin.plugins import get_adapter

            inner = get_adapter(model._module)
        self.envoy = model
        self.inner = inner
        self.model = model._module
        self.name = inner.name
        self.generative = bool(getattr(inner, "generative", False))
        self._tracing_model: Envoy = model
        self._call_order: dict[tuple[str, ...], list[str]] = {}
        self._layer_set: set[str] | None = None
        self._layer_by_module: dict[int, str] | None = None

    def __repr__(self) -> str:
        return f"NNsightAdapter({self.inner!r})"

    def layer_names(self) -> list[str]:
        return self.inner.layer_names()

    def default_layers(self) -> list[str]:
        return self.inner.default_layers()

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def resolve(self, layer: str) -> str:
        """The module path behind ``layer`` (an alias or a name), as the inner adapter reads it."""
        resolve = getattr(self.inner, "resolve", None)
        if resolve is not None:
            return resolve(layer)
        if layer not in self.inner.layer_names():
            raise UnknownLayerError(layer, self.inner.layer_names())
        return layer

    def unit_dim(self, layer: str, tensor: torch.Tensor) -> int:
        """The dimension of ``layer``'s raw output ``tensor`` that indexes units (1 unless the inner
        adapter says otherwise: TransformerLens hooks and ViT token layers keep units last)."""
        unit_dim_for = getattr(self.inner, "unit_dim_for", None)
        return 1 if unit_dim_for is None else int(unit_dim_for(layer, tensor))

    def arrange(self, layer: str, activation: torch.Tensor, inputs: Any) -> torch.Tensor:
        """The raw output of ``layer`` as ``(B, units, *spatial)``, exactly as the inner adapter does."""
        arrange = getattr(self.inner, "arrange", None)
        if arrange is not None:
            return arrange(layer, activation, inputs)
        if activation.ndim == 2:
            return activation[:, :, None, None]
        return activation

    def layer_of(self, envoy: Envoy) -> str:
        """The layer name for an envoy of this model.

        Usually its module path; when that is not a layer name (TransformerLens hook names are
        aliases of deeper module paths), the name whose module it is, preferring default layers
        and then the shortest name.
        """
        path_name = layer_name(envoy)
        if path_name in self._known_layers():
            return path_name
        if self._layer_by_module is None:
            preferred = self.default_layers()
            names = preferred + sorted(
                set(self.layer_names()) - set(preferred), key=lambda name: (len(name), name)
            )
            self._layer_by_module = {}
            for name in reversed(names):
                self._layer_by_module[id(self.envoy_for(name)._module)] = name
        layer = self._layer_by_module.get(id(envoy._module))
        if layer is None:
            raise UnknownLayerError(path_name, self.layer_names())
        return layer

    def _known_layers(self) -> set[str]:
        if self._layer_set is None:
            self._layer_set = set(self.layer_names())
        return self._layer_set

    def envoy_for(self, layer: str, model: Envoy | None = None) -> Envoy:
        """The envoy of ``layer`` in ``model`` (this adapter's model by default)."""
        target = self.resolve(layer)
        return (model or self.envoy).get(target)

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def run(self, inputs: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """One traced forward pass reading every layer in ``layers``."""
        model = self._tracing_model
        order = self._execution_order(layers, inputs)
        envoys = [self.envoy_for(layer, model) for layer in order]
        inputs = inputs.to(self.device) if isinstance(inputs, torch.Tensor) else inputs
        with torch.no_grad(), model.trace(inputs):
            captured = nnsight.save([])
            for envoy in envoys:
                captured.append(first_tensor(envoy.output).detach().to(dtype=torch.float32, copy=True))
        by_layer = dict(zip(order, captured, strict=True))
        return {layer: self.arrange(layer, by_layer[layer], inputs) for layer in layers}

    def _execution_order(self, layers: Sequence[str], inputs: torch.Tensor) -> list[str]:
        """``layers`` in the order the forward pass reaches them (nnsight reads must follow it).

        Found once per set of layers with an nnsight cache over one input, which records modules
        as they run.
        """
        unique = list(dict.fromkeys(layers))
        key = tuple(sorted(unique))
        if key not in self._call_order:
            paths = {self.envoy_for(layer).path: layer for layer in unique}
            probe = inputs[:1].to(self.device) if isinstance(inputs, torch.Tensor) else inputs
            with torch.no_grad(), self.envoy.trace(probe) as tracer:
                cache = tracer.cache(modules=list(paths))
            ran = [paths[path] for path in cache.keys() if path in paths]  # noqa: SIM118 (CacheView iterates values)
            missing = [layer for layer in unique if layer not in ran]
            if missing:
                raise InvalidInputError(
                    f"layers {missing} did not run in the forward pass; pick layers the model's forward uses"
                )
            self._call_order[key] = ran
        return [layer for layer in self._call_order[key] if layer in unique]

    @contextmanager
    def ablate(self, layer: str, units: Sequence[int]) -> Iterator[None]:
        """Zero ``units`` of ``layer`` in this adapter's traces, as an nnsight edit."""
        unit_list = [int(unit) for unit in units]
        path = self.resolve(layer)
        adapter = self
        previous = self._tracing_model
        with previous.edit() as (_, edited):
            envoy = edited.get(path)
            envoy.output = replace_first_tensor(
                envoy.output,
                lambda tensor: zero_units(tensor, unit_list, adapter.unit_dim(layer, tensor), layer=layer),
            )
        self._tracing_model = edited
        try:
            yield
        finally:
            self._tracing_model = previous

    def render(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.inner.render(inputs)
