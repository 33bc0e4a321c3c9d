"""Neuron handles inside the user's framework: ``model.layer4.neurons[12].describe()``.

:func:`wrap` turns any torch model into an nnsight model whose modules carry ``.neurons``;
:func:`attach` equips an nnsight model the user already built. The model stays the user's:
traces, edits and plain calls behave exactly as before, and the handles add

* ``neurons[i].describe()`` / ``neurons[i].exemplars()`` — outside any trace, from a cache;
* ``neurons[i].output`` (read or assign) and ``neurons[i].ablate()`` — inside a trace, as
  ordinary nnsight interventions on the module's output;
* ``neurons.describe()`` — a table of every unit of the layer.

The first describe on a layer runs the exemplar engine once for the *whole* layer and keeps the
result in memory and, with ``cache_dir``, on disk; descriptions are cached the same way. Every
cache key includes the model fingerprint, so editing a weight makes the next call recompute
instead of serving a stale answer. When the Hub registry lists an annotation set for exactly
this model fingerprint and layer, its descriptions are used instead of computing any.

This module imports neither nnsight nor a describer at import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from milan_plugin.adapters.torch_module import first_tensor, replace_first_tensor, zero_units
from milan_plugin.descriptions import Description
from milan_plugin.errors import InvalidInputError, MilanError
from milan_plugin.fingerprint import digest_json

if TYPE_CHECKING:
    import datasets

    from milan_plugin.exemplars.exemplar_set import ExemplarSet

DEFAULT_DESCRIBER = "milan:demo"


def wrap(
    model: torch.nn.Module,
    *,
    source: Any = None,
    describer: Any = DEFAULT_DESCRIBER,
    cache_dir: str | os.PathLike | None = None,
    k: int = 15,
    quantile: float = 0.99,
    batch_size: int = 64,
    progress: bool = True,
    use_registry: bool = True,
    **nnsight_options: Any,
) -> Any:
    """An nnsight model over ``model`` whose modules have ``.neurons``.

    Args:
        model: any ``torch.nn.Module`` (a model already wrapped by nnsight is equipped in place,
            as :func:`attach` does).
        source: the exemplar source (an ExemplarSource or a spec such as ``folder:PATH``); needed
            by ``describe()``/``exemplars()`` unless a registered annotation set covers the layer.
        describer: a describer object or name (``milan:demo``, ``baseline:...``, ``text:wpmi``).
        cache_dir: where exemplar sets and descriptions are kept between sessions.
        k, quantile, batch_size, progress: exemplar settings (see ``compute_exemplars``).
        use_registry: look up precomputed annotation sets for this model's fingerprint.
        nnsight_options: passed to ``nnsight.NNsight`` (``rename=``, ...).

    Returns:
        a :class:`~milan_plugin.adapters.nnsight_adapter.MilanNNsight` (an ``nnsight.NNsight``).
    """
    from milan_plugin.adapters.nnsight_adapter import MilanNNsight, is_nnsight_model

    settings = dict(
        source=source,
        describer=describer,
        cache_dir=cache_dir,
        k=k,
        quantile=quantile,
        batch_size=batch_size,
        progress=progress,
        use_registry=use_registry,
    )
    if is_nnsight_model(model):
        if nnsight_options:
            raise InvalidInputError(
                f"the model is already an nnsight model, so nnsight options {sorted(nnsight_options)} "
                "cannot apply; pass them where you built it, or wrap the plain torch module"
            )
        return attach(model, **settings)
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"wrap() takes a torch.nn.Module, got {type(model).__name__}")
    wrapped = MilanNNsight(model, **nnsight_options)
    wrapped.milan_store = NeuronStore(wrapped, **settings)
    return wrapped


def attach(model: Any, **settings: Any) -> Any:
    """Give an nnsight model the user already built ``.neurons`` on every module; returns it.

    ``settings`` are the keyword arguments of :func:`wrap` other than nnsight's own (they are
    defined once, by :class:`NeuronStore`). Works on ``NNsight``, ``TransformersModel`` and
    friends by setting instance attributes (no global patching): envoys created later, for
    modules reached by attribute only, get none.
    """
    from milan_plugin.adapters.nnsight_adapter import NeuronEnvoy, is_nnsight_model

    if not is_nnsight_model(model):
        raise InvalidInputError(
            f"attach() takes an nnsight model (nnsight.NNsight(...)), got {type(model).__name__}; "
            "use milan_plugin.wrap(model) for a plain torch module"
        )
    model.milan_store = NeuronStore(model, **settings)
    for envoy in model.modules():
        if envoy is not model and not isinstance(envoy, NeuronEnvoy):
            envoy.neurons = Layer(envoy)
    return model


def store_of(envoy: Any) -> NeuronStore:
    """The plugin state of the model an envoy belongs to; a default one if it has none yet."""
    root = envoy.root
    store = root.__dict__.get("milan_store")
    if store is None:
        store = NeuronStore(root)
        root.milan_store = store
    return store


@dataclass
class NeuronExemplars:
    """The evidence a description is read from: a unit's top-k inputs and where it fires.

    For image models ``images`` is uint8 ``(k, 3, size, size)`` and ``masks`` bool
    ``(k, size, size)``; for token models ``images`` is ``None``, ``masks`` is ``(k, T)`` and
    ``tokens`` holds each exemplar's tokens (when the source can give them).
    """

    layer: str
    unit: int
    keys: list[str]
    ids: list[int]
    activations: torch.Tensor
    threshold: float
    masks: torch.Tensor
    images: torch.Tensor | None = None
    tokens: list[list[str]] | None = None
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{value:.3g}" for value in self.activations[:5].tolist())
        kind = "images" if self.images is not None else "token windows"
        return (
            f"NeuronExemplars({self.layer}[{self.unit}]: {len(self.keys)} {kind}, "
            f"top activations [{shown}{', ...' if len(self.keys) > 5 else ''}], "
            f"threshold={self.threshold:.3g})"
        )

    def grid(self, columns: int = 5) -> torch.Tensor:
        """One uint8 ``(3, H, W)`` picture of the masked exemplars (outside the mask at 25 %)."""
        from milan_plugin.exemplars.viz import masked_images, tile

        if self.images is None:
            raise InvalidInputError(f"{self.layer}[{self.unit}] has token exemplars; there is no image grid")
        return tile(masked_images(self.images, self.masks), columns=columns)

    def _repr_png_(self) -> bytes | None:
        if self.images is None:
            return None
        return png_bytes(self.grid())

    def _repr_html_(self) -> str:
        import html

        if self.images is not None:
            import base64

            encoded = base64.b64encode(png_bytes(self.grid())).decode()
            return (
                f'<img src="data:image/png;base64,{encoded}" alt="exemplars of {self.layer}[{self.unit}]"/>'
            )
        rows = []
        for words, mask in zip(self.tokens or [], self.masks.tolist(), strict=False):
            marked = [
                f"<b>{html.escape(word)}</b>" if firing else html.escape(word)
                for word, firing in zip(words, mask, strict=False)
            ]
            rows.append("<li>" + " ".join(marked) + "</li>")
        return "<ol>" + "".join(rows) + "</ol>"


def png_bytes(image: torch.Tensor) -> bytes:
    """PNG encoding of a uint8 ``(3, H, W)`` tensor."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True, repr=False)
class NeuronDescription(Description):
    """A :class:`Description` that can show its evidence in a notebook (masked exemplars)."""

    def __repr__(self) -> str:
        best = ", ".join(f"{candidate.text!r} ({candidate.score:.2f})" for candidate in self.candidates[:3])
        lines = [f"{self.layer}[{self.unit}]: {self.text!r}  (score {self.score:.3f})"]
        lines.append(f"  describer: {self.describer} {self.describer_version}".rstrip())
        if best:
            lines.append(f"  candidates: {best}")
        k = self.exemplar_settings.get("k")
        if k is not None:
            lines.append(f"  exemplars: k={k}, quantile={self.exemplar_settings.get('quantile')}")
        return "\n".join(lines)

    def exemplars(self) -> NeuronExemplars:
        """The exemplars this description was read from (computed or cached on demand)."""
        neuron = self.__dict__.get("_neuron")
        if neuron is None:
            raise InvalidInputError("this description is not attached to a neuron handle")
        return neuron.exemplars()

    def _repr_png_(self) -> bytes | None:
        try:
            return self.exemplars()._repr_png_()
        except MilanError:
            return None

    def _repr_html_(self) -> str:
        import html

        try:
            evidence = self.exemplars()._repr_html_()
        except MilanError:
            evidence = ""
        return (
            f"<p><b>{html.escape(self.layer)}[{self.unit}]</b>: {html.escape(self.text)} "
            f"<small>(score {self.score:.3f}, {html.escape(self.describer)})</small></p>{evidence}"
        )

    @classmethod
    def of(cls, description: Description, neuron: Neuron | None) -> NeuronDescription:
        """``description`` as a :class:`NeuronDescription` that knows its neuron."""
        fields = {name: getattr(description, name) for name in Description.__dataclass_fields__}
        result = cls(**fields)
        object.__setattr__(result, "_neuron", neuron)
        return result


class Neuron:
    """One unit of one layer. ``describe``/``exemplars`` work anywhere; ``output``/``ablate`` in a trace."""

    def __init__(self, layer: Layer, unit: int) -> None:
        self.layer = layer
        self.unit = unit

    def __repr__(self) -> str:
        return f"Neuron({self.layer.name}[{self.unit}])"

    def describe(self) -> NeuronDescription:
        """This unit's description (computes the layer's exemplars on first use, then cached)."""
        description = self.layer.store.descriptions(self.layer.name, [self.unit])[0]
        return NeuronDescription.of(description, self)

    def exemplars(self, size: int = 224) -> NeuronExemplars:
        """The unit's top-k inputs with their masks, from the layer's cached exemplar set."""
        return self.layer.store.neuron_exemplars(self.layer.name, self.unit, size=size)

    @property
    def output(self) -> torch.Tensor:
        """Inside a trace: this unit's activation map (the layer output with the unit's index taken)."""
        tensor = first_tensor(self.layer.envoy.output)
        return tensor.select(self.layer.unit_dim(tensor), self.unit)

    @output.setter
    def output(self, value: Any) -> None:
        """Inside a trace: replace this unit's activation map (``neurons[i].output = 0``)."""
        unit_dim_of = self.layer.unit_dim
        unit = self.unit

        def assign(tensor: torch.Tensor) -> torch.Tensor:
            changed = tensor.clone()
            changed.select(unit_dim_of(tensor), unit).copy_(torch.as_tensor(value, dtype=tensor.dtype))
            return changed

        envoy = self.layer.envoy
        envoy.output = replace_first_tensor(envoy.output, assign)

    def ablate(self) -> None:
        """Inside a trace: zero this unit for the rest of the forward pass (composes with other edits)."""
        self.layer.ablate([self.unit])


class Layer(Sequence[Neuron]):
    """The units of one module: ``len``, indexing, slicing, iteration, and a layer-wide describe."""

    def __init__(self, envoy: Any) -> None:
        self.envoy = envoy
        self.name = self.store.adapter.layer_of(envoy)

    @property
    def store(self) -> NeuronStore:
        return store_of(self.envoy)

    def __repr__(self) -> str:
        return f"Layer({self.name!r}, units={len(self)})"

    def __len__(self) -> int:
        return self.store.unit_count(self.name)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [Neuron(self, unit) for unit in range(len(self))[index]]
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"neurons are indexed by int or slice, not {type(index).__name__}")
        if index >= 0 and self.envoy.interleaver.interleaving:
            # Inside a trace: counting units would need a forward pass of its own; an index past
            # the end fails at the tensor operation instead.
            return Neuron(self, index)
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"layer {self.name!r} has {count} units; index {index} is out of range")
        return Neuron(self, index % count)

    def __iter__(self) -> Iterator[Neuron]:
        return (Neuron(self, unit) for unit in range(len(self)))

    def unit_dim(self, tensor: torch.Tensor) -> int:
        """Which dimension of this module's raw output holds the units."""
        return self.store.adapter.unit_dim(self.name, tensor)

    def ablate(self, units: Sequence[int]) -> None:
        """Inside a trace: zero ``units`` of this layer."""
        unit_list = [int(unit) for unit in units]
        unit_dim_of = self.unit_dim
        name = self.name
        self.envoy.output = replace_first_tensor(
            self.envoy.output, lambda tensor: zero_units(tensor, unit_list, unit_dim_of(tensor), layer=name)
        )

    def exemplars(self) -> ExemplarSet:
        """The layer's exemplar set (computed once, then cached)."""
        return self.store.exemplars(self.name)

    def describe(self, units: Sequence[int] | None = None) -> datasets.Dataset:
        """A table (``datasets.Dataset``) with one row per unit: unit, description, score, describer."""
        from datasets import Dataset

        chosen = list(range(len(self))) if units is None else [int(unit) for unit in units]
        descriptions = self.store.descriptions(self.name, chosen)
        return Dataset.from_dict(
            {
                "layer": [d.layer for d in descriptions],
                "unit": [d.unit for d in descriptions],
                "description": [d.text for d in descriptions],
                "score": [float(d.score) for d in descriptions],
                "describer": [d.describer for d in descriptions],
                "describer_version": [d.describer_version for d in descriptions],
            }
        )


class NeuronStore:
    """The plugin state of one wrapped model: settings, exemplar and description caches.

    Its keyword arguments are the settings :func:`wrap` and :func:`attach` accept (documented on
    :func:`wrap`); they are declared here only, so the two entry points cannot drift apart.
    """

    def __init__(
        self,
        model: Any,
        *,
        source: Any = None,
        describer: Any = DEFAULT_DESCRIBER,
        cache_dir: str | os.PathLike | None = None,
        k: int = 15,
        quantile: float = 0.99,
        batch_size: int = 64,
        progress: bool = True,
        use_registry: bool = True,
    ) -> None:
        if k < 1:
            raise InvalidInputError(f"k must be a positive number of exemplars, got {k}")
        if not 0.0 < quantile < 1.0:
            raise InvalidInputError(f"quantile must lie strictly between 0 and 1, got {quantile}")
        self.model = model
        self.source_spec = source
        self.describer_spec = describer
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.k = int(k)
        self.quantile = float(quantile)
        self.batch_size = int(batch_size)
        self.progress = progress
        self.use_registry = use_registry
        self._adapter: Any = None
        self._source: Any = None
        self._describer: Any = None
        self._exemplars: dict[str, ExemplarSet] = {}
        self._descriptions: dict[str, dict[int, Description]] = {}
        self._unit_counts: dict[tuple[str, str], int] = {}
        self._fingerprint: tuple[tuple, str] | None = None

    @property
    def adapter(self) -> Any:
        if self._adapter is None:
            from milan_plugin.plugins import get_adapter

            self._adapter = get_adapter(self.model)
        return self._adapter

    @property
    def source(self) -> Any:
        if self._source is None:
            if self.source_spec is None:
                raise InvalidInputError(
                    "no exemplar source: pass source= to milan_plugin.wrap/attach (e.g. 'folder:PATH') "
                    "to compute exemplars"
                )
            if isinstance(self.source_spec, str):
                from milan_plugin.plugins import open_source

                self._source = open_source(self.source_spec)
            else:
                self._source = self.source_spec
        return self._source

    @property
    def describer(self) -> Any:
        if self._describer is None:
            if isinstance(self.describer_spec, str):
                from milan_plugin.plugins import get_describer

                self._describer = get_describer(self.describer_spec)
            else:
                self._describer = self.describer_spec
        return self._describer

    def model_fingerprint(self) -> str:
        """The model's digest, recomputed only when a parameter or buffer changed.

        A tensor's identity, storage and version counter change on any in-place update,
        ``.data`` assignment or replacement, which is what decides when to re-hash.
        """
        module = self.adapter.model
        state = tuple(
            (name, id(tensor), tensor.data_ptr(), tensor._version)
            for name, tensor in module.state_dict(keep_vars=True).items()
            if isinstance(tensor, torch.Tensor)
        )
        if self._fingerprint is None or self._fingerprint[0] != state:
            self._fingerprint = (state, self.adapter.fingerprint())
        return self._fingerprint[1]

    def exemplar_key(self, layer: str) -> str:
        """What an exemplar set depends on: the model's weights, the source's data, the layer, k, quantile."""
        settings = {"k": self.k, "quantile": self.quantile}
        return digest_json(
            [self.model_fingerprint(), self.source.fingerprint(), self.source.spec, layer, settings]
        )

    def exemplars(self, layer: str) -> ExemplarSet:
        """The whole layer's exemplar set, from memory, the engine's disk cache, or one engine pass."""
        key = self.exemplar_key(layer)
        if key not in self._exemplars:
            from milan_plugin.exemplars.engine import compute_exemplars

            computed = compute_exemplars(
                self.adapter,
                [layer],
                self.source,
                k=self.k,
                quantile=self.quantile,
                batch_size=self.batch_size,
                cache_dir=self.cache_dir / "exemplars" if self.cache_dir is not None else None,
                progress=self.progress,
            )[layer]
            computed.attach(source=self.source)
            self._exemplars[key] = computed
        return self._exemplars[key]

    def unit_count(self, layer: str) -> int:
        """How many units ``layer`` has: from a cached exemplar set, one forward pass on one input,
        or (with no source) the registered annotation set."""
        fingerprint = self.model_fingerprint()
        for exemplars in self._exemplars.values():
            if exemplars.layer == layer and exemplars.settings.get("model_fingerprint") == fingerprint:
                return len(exemplars)
        key = (fingerprint, layer)
        if key not in self._unit_counts and self.source_spec is None and self.use_registry:
            published = self._registered(fingerprint, layer)
            if published:
                self._unit_counts[key] = max(published) + 1
        if key not in self._unit_counts:
            inputs = self.source.load([0]).inputs
            self._unit_counts[key] = int(self.adapter.run(inputs, [layer])[layer].shape[1])
        return self._unit_counts[key]

    def neuron_exemplars(self, layer: str, unit: int, size: int = 224) -> NeuronExemplars:
        """One unit's slice of the layer's exemplar set, with images (or token words) read back."""
        exemplars = self.exemplars(layer)
        row = exemplars.row(unit)
        masks = exemplars.masks(unit, size=size)
        images = None
        tokens = None
        if masks.dim() == 3:
            images = exemplars.images(unit, size=size)
        else:
            window_tokens = getattr(self.source, "window_words", None)
            if window_tokens is not None:
                tokens = window_tokens(exemplars.ids[row].tolist())
        return NeuronExemplars(
            layer=layer,
            unit=int(unit),
            keys=list(exemplars.keys[row]),
            ids=exemplars.ids[row].tolist(),
            activations=exemplars.activations[row].clone(),
            threshold=float(exemplars.thresholds[row]),
            masks=masks,
            images=images,
            tokens=tokens,
            settings=dict(exemplars.settings),
        )

    def descriptions(self, layer: str, units: Sequence[int]) -> list[Description]:
        """Descriptions of ``units``: a registered annotation set, the caches, or the describer."""
        fingerprint = self.model_fingerprint()
        if self.use_registry:
            published = self._registered(fingerprint, layer)
            if published is not None:
                missing = [unit for unit in units if unit not in published]
                if missing:
                    raise InvalidInputError(
                        f"the registered annotation set for layer {layer!r} has no units {missing[:10]}"
                    )
                return [published[unit] for unit in units]
        key = self._description_key(layer)
        if key not in self._descriptions:
            self._descriptions[key] = self._read_descriptions(key)
        known = self._descriptions[key]
        missing = [unit for unit in dict.fromkeys(units) if unit not in known]
        if missing:
            exemplars = self.exemplars(layer)
            for description in self.describer.describe(exemplars, missing):
                known[int(description.unit)] = description
            self._write_descriptions(key, known)
        return [known[unit] for unit in units]

    def _registered(self, fingerprint: str, layer: str) -> dict[int, Description] | None:
        key = f"registry:{fingerprint}:{layer}"
        if key not in self._descriptions:
            from milan_plugin.hub import find_annotation_set, pull_annotation_set

            entry = find_annotation_set(fingerprint, layer)
            if entry is None:
                return None
            pulled = pull_annotation_set(entry.repo_id, revision=entry.revision, layers=[layer])
            pulled.check_model(fingerprint)
            self._descriptions[key] = pulled.for_layer(layer)
        return self._descriptions[key]

    def _description_key(self, layer: str) -> str:
        describer = self.describer
        return digest_json(
            [
                self.exemplar_key(layer),
                getattr(describer, "name", type(describer).__name__),
                getattr(describer, "version", ""),
            ]
        )

    def _description_file(self, key: str) -> Path | None:
        return self.cache_dir / "descriptions" / f"{key}.json" if self.cache_dir is not None else None

    def _read_descriptions(self, key: str) -> dict[int, Description]:
        path = self._description_file(key)
        if path is None or not path.is_file():
            return {}
        records = json.loads(path.read_text())
        return {int(unit): Description.from_record(record) for unit, record in records.items()}

    def _write_descriptions(self, key: str, descriptions: dict[int, Description]) -> None:
        from milan_plugin.exemplars.atomic import write_bytes

        path = self._description_file(key)
        if path is None:
            return
        records = {str(unit): description.to_record() for unit, description in sorted(descriptions.items())}
        write_bytes(path, json.dumps(records, default=str).encode())
