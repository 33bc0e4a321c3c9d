"""The single-pass exemplar engine: one forward pass per batch feeds every requested layer.

Why one pass: the reference ran two passes per layer (statistics, then a re-run to gather
masks). Keeping each unit's top-k activation maps while streaming, plus a mergeable quantile
sketch, yields the same exemplars from one pass that serves all layers at once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from milan_plugin.errors import (
    EmptySourceError,
    InvalidInputError,
    NonFiniteActivationError,
    UnknownLayerError,
    UnreadableInputError,
)
from milan_plugin.exemplars.exemplar_set import SET_FILE, SET_FORMAT, ExemplarSet
from milan_plugin.exemplars.sketch import MANTISSA_BITS, ZERO_MAGNITUDE
from milan_plugin.exemplars.state import STATE_FORMAT, EngineState, LayerState
from milan_plugin.fingerprint import digest_json

logger = logging.getLogger(__name__)

Units = Sequence[int] | Mapping[str, Sequence[int]] | None


def compute_exemplars(
    model: Any,
    layers: str | Sequence[str] | None,
    source: Any,
    k: int = 15,
    quantile: float = 0.99,
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    units: Units = None,
    device: str | torch.device | None = None,
    on_unreadable: str = "skip",
    checkpoint_every: int = 20,
    indices: Sequence[int] | None = None,
) -> dict[str, ExemplarSet]:
    """Top-``k`` exemplars and ``quantile`` thresholds of every unit of ``layers``, in one pass.

    ``model`` is any ``nn.Module`` or adapter; ``source`` an ExemplarSource or a spec such as
    ``folder:PATH``; ``units`` a list of unit indices for every layer or a dict layer -> list.
    With ``cache_dir`` the running state is checkpointed every ``checkpoint_every`` batches, a
    rerun after a crash resumes from it, and finished sets are cached, keyed by the model and
    source fingerprints, the layer and the settings. Unreadable inputs are skipped with a
    warning and counted in ``settings`` (``on_unreadable="raise"`` stops instead). ``indices``
    restricts the pass to those source indices.
    """
    _check_quantile(quantile)
    run = _prepare(model, layers, source, k, units, device, on_unreadable, indices=indices)
    if k > len(run.indices):
        raise InvalidInputError(f"k={k} is larger than the {len(run.indices)} inputs requested")
    cache = Path(cache_dir) if cache_dir is not None else None
    results: dict[str, ExemplarSet] = {}
    missing = []
    for layer in run.layers:
        cached = cache / _set_directory(run, layer, quantile) if cache else None
        if cached is not None and (cached / SET_FILE).is_file():
            results[layer] = ExemplarSet.load(cached).attach(source=run.source, adapter=run.adapter)
            logger.info("serving cached exemplars of %s from %s", layer, cached)
        else:
            missing.append(layer)
    if missing:
        sub_run = run.restricted_to(missing)
        checkpoint = cache / f"checkpoint-{digest_json(sub_run.settings)}.safetensors" if cache else None
        with _model_on(run.adapter.model, device):
            state = _accumulate(sub_run, batch_size, progress, checkpoint, checkpoint_every)
        computed = exemplar_sets(state, quantile=quantile, source=run.source, adapter=run.adapter)
        if cache is not None:
            for layer, exemplars in computed.items():
                exemplars.save(cache / _set_directory(run, layer, quantile))
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
        results.update(computed)
    return {layer: results[layer] for layer in run.layers}


def compute_exemplar_state(
    model: Any,
    layers: str | Sequence[str] | None,
    source: Any,
    k: int = 15,
    batch_size: int = 64,
    progress: bool = True,
    units: Units = None,
    device: str | torch.device | None = None,
    on_unreadable: str = "skip",
    shard: tuple[int, int] | None = None,
    indices: Sequence[int] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 20,
) -> EngineState:
    """The mergeable state of a pass over part of ``source``: shard ``(i, n)`` or ``indices``.

    Save it with ``state.save(path)``, combine shards with :func:`merge_states` and turn the result
    into exemplar sets with :func:`exemplar_sets`; that equals :func:`compute_exemplars` exactly.
    """
    run = _prepare(model, layers, source, k, units, device, on_unreadable, shard=shard, indices=indices)
    with _model_on(run.adapter.model, device):
        return _accumulate(
            run, batch_size, progress, Path(checkpoint) if checkpoint else None, checkpoint_every
        )


def exemplar_sets(
    state: EngineState, quantile: float = 0.99, source: Any = None, adapter: Any = None
) -> dict[str, ExemplarSet]:
    """Finish a (merged) state: thresholds from the sketches, keys from the source."""
    _check_quantile(quantile)
    if state.seen == 0:
        raise EmptySourceError(
            f"no readable input in {state.settings.get('source_spec')!r} "
            f"({len(state.failures)} unreadable); nothing to compute exemplars from"
        )
    if state.has_empty_slots():
        raise InvalidInputError(
            f"only {state.seen} inputs could be read, fewer than k={state.settings['k']}; "
            "use a smaller k or a larger source"
        )
    if source is None:
        from milan_plugin.plugins import open_source

        source = open_source(state.settings["source_spec"])
    failed_keys = [source.key(index) for index, _ in state.failures]
    results = {}
    for layer, layer_state in state.layers.items():
        ids = layer_state.topk.ids.cpu()
        settings = {
            "format": SET_FORMAT,
            "layer": layer,
            "k": int(state.settings["k"]),
            "quantile": float(quantile),
            "model": state.settings["model"],
            "model_fingerprint": state.settings["model_fingerprint"],
            "source_spec": state.settings["source_spec"],
            "source_fingerprint": state.settings["source_fingerprint"],
            "ranking": "spatial max",
            "threshold": "per-unit quantile over every position of every input at native resolution",
            "mask": "bilinear upsample (align_corners=False) > threshold",
            "sketch": {"mantissa_bits": MANTISSA_BITS, "zero_magnitude": ZERO_MAGNITUDE},
            "layer_units": layer_state.total_units,
            "spatial": list(layer_state.spatial),
            "inputs": state.seen,
            "unreadable": len(state.failures),
            "unreadable_keys": failed_keys[:100],
        }
        results[layer] = ExemplarSet(
            layer=layer,
            units=layer_state.units.clone(),
            ids=ids,
            keys=[[source.key(index) for index in row] for row in ids.tolist()],
            activations=layer_state.topk.values.cpu(),
            thresholds=layer_state.sketch.quantile(quantile),
            maps=layer_state.topk.maps.cpu().reshape(*ids.shape, *layer_state.spatial),
            settings=settings,
            _source=source,
            _adapter=adapter,
        )
    return results


class _Run:
    """A validated request: adapter, source, layers, units and the indices to visit."""

    def __init__(
        self, adapter: Any, source: Any, layers: list[str], settings: dict[str, Any], **options: Any
    ):
        self.adapter = adapter
        self.source = source
        self.layers = layers
        self.settings = settings
        self.units: dict[str, list[int] | None] = options["units"]
        self.indices: list[int] = options["indices"]
        self.device = options["device"]
        self.on_unreadable: str = options["on_unreadable"]

    def restricted_to(self, layers: list[str]) -> _Run:
        settings = dict(
            self.settings, layers=layers, units={layer: self.settings["units"][layer] for layer in layers}
        )
        return _Run(
            self.adapter,
            self.source,
            layers,
            settings,
            units={layer: self.units[layer] for layer in layers},
            indices=self.indices,
            device=self.device,
            on_unreadable=self.on_unreadable,
        )


@contextlib.contextmanager
def _model_on(model: Any, device: str | torch.device | None) -> Iterator[None]:
    """Run on ``device`` and give the model back where it was: the model stays the user's.

    A model spread over several devices, or one that is not an ``nn.Module`` (a framework's
    wrapper), is moved as a whole and left on ``device``.
    """
    if device is None:
        yield
        return
    if not isinstance(model, torch.nn.Module):
        model.to(device)
        yield
        return
    devices = {tensor.device for tensor in itertools.chain(model.parameters(), model.buffers())}
    model.to(device)
    try:
        yield
    finally:
        if len(devices) == 1:
            model.to(devices.pop())


def _prepare(
    model: Any,
    layers: str | Sequence[str] | None,
    source: Any,
    k: int,
    units: Units,
    device: str | torch.device | None,
    on_unreadable: str,
    shard: tuple[int, int] | None = None,
    indices: Sequence[int] | None = None,
) -> _Run:
    """Check everything that can be checked before the first forward pass."""
    from milan_plugin.plugins import get_adapter, open_source

    if on_unreadable not in ("skip", "raise"):
        raise InvalidInputError(f"on_unreadable must be 'skip' or 'raise', not {on_unreadable!r}")
    if not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    adapter = get_adapter(model)
    available = adapter.layer_names()
    if layers is None:
        layers = adapter.default_layers()
    layer_list = [layers] if isinstance(layers, str) else list(layers)
    if not layer_list:
        raise InvalidInputError("no layers requested; name at least one (see adapter.layer_names())")
    for layer in layer_list:
        if layer not in available:
            raise UnknownLayerError(layer, available)
    if isinstance(source, str):
        source = open_source(source)
    size = len(source)
    if size == 0:
        raise EmptySourceError(f"the source {source.spec!r} holds no inputs")
    if k > size:
        raise InvalidInputError(f"k={k} is larger than the source {source.spec!r}, which holds {size} inputs")
    per_layer = _units_per_layer(units, layer_list)
    chosen, described = _indices(size, shard, indices)
    settings = {
        "format": STATE_FORMAT,
        "model": adapter.name,
        "model_fingerprint": adapter.fingerprint(),
        "source_spec": source.spec,
        "source_fingerprint": source.fingerprint(),
        "source_size": size,
        "layers": layer_list,
        "k": k,
        "units": per_layer,
    }
    if described is not None:
        settings["indices"] = described
    return _Run(
        adapter,
        source,
        layer_list,
        settings,
        units=per_layer,
        indices=chosen,
        device=device,
        on_unreadable=on_unreadable,
    )


def _check_quantile(quantile: float) -> None:
    if not 0.0 < quantile < 1.0:
        raise InvalidInputError(f"quantile must lie strictly between 0 and 1, got {quantile!r}")


def _units_per_layer(units: Units, layers: list[str]) -> dict[str, list[int] | None]:
    if units is None:
        return dict.fromkeys(layers)
    if isinstance(units, Mapping):
        unknown = sorted(set(units) - set(layers))
        if unknown:
            raise InvalidInputError(
                f"units names layers that were not requested: {unknown}; requested {layers}"
            )
        return {layer: _unit_list(units[layer]) if layer in units else None for layer in layers}
    chosen = _unit_list(units)
    return dict.fromkeys(layers, chosen)


def _unit_list(units: Sequence[int]) -> list[int]:
    chosen = sorted({int(unit) for unit in units})
    if not chosen or chosen[0] < 0:
        raise InvalidInputError(f"units must be a non-empty list of unit indices >= 0, got {list(units)!r}")
    return chosen


def _indices(
    size: int, shard: tuple[int, int] | None, indices: Sequence[int] | None
) -> tuple[list[int], dict[str, Any] | None]:
    if shard is not None and indices is not None:
        raise InvalidInputError("give either shard=(i, n) or indices=, not both")
    if shard is not None:
        number, count = shard
        if not (isinstance(number, int) and isinstance(count, int) and 0 <= number < count):
            raise InvalidInputError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
        return list(range(size * number // count, size * (number + 1) // count)), {"shard": [number, count]}
    if indices is not None:
        chosen = [int(index) for index in indices]
        bad = [index for index in chosen if not 0 <= index < size]
        if bad or len(set(chosen)) != len(chosen):
            raise InvalidInputError(
                f"indices must be distinct and in [0, {size}); got out-of-range {bad[:5]} or duplicates"
            )
        return chosen, {"indices": digest_json(chosen)}
    return list(range(size)), None


def _set_directory(run: _Run, layer: str, quantile: float) -> str:
    key = digest_json(
        {
            "format": SET_FORMAT,
            "model_fingerprint": run.settings["model_fingerprint"],
            "source_fingerprint": run.settings["source_fingerprint"],
            "indices": run.settings.get("indices"),
            "layer": layer,
            "k": run.settings["k"],
            "quantile": quantile,
            "units": run.units[layer],
        }
    )
    return f"{layer}-{key}"


def _resume(run: _Run, checkpoint: Path | None) -> EngineState:
    if checkpoint is not None and checkpoint.is_file():
        try:
            state = EngineState.load(checkpoint, device=run.device)
        except (ValueError, KeyError, OSError) as error:
            warnings.warn(f"ignoring unreadable checkpoint {checkpoint}: {error}", stacklevel=3)
        else:
            if state.settings == run.settings:
                logger.info(
                    "resuming from %s at input %d of %d", checkpoint, state.position, len(run.indices)
                )
                return state
            warnings.warn(
                f"ignoring checkpoint {checkpoint}: it was written for other settings", stacklevel=3
            )
    return EngineState(settings=run.settings)


def _accumulate(
    run: _Run, batch_size: int, progress: bool, checkpoint: Path | None, checkpoint_every: int
) -> EngineState:
    """Stream the run's indices through the model, updating (and checkpointing) the state."""
    from tqdm.auto import tqdm

    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    state = _resume(run, checkpoint)
    total = len(run.indices)
    batches_since_checkpoint = 0
    with tqdm(
        total=total, initial=state.position, disable=not progress, desc="exemplars", unit="input"
    ) as bar:
        while state.position < total:
            wanted = run.indices[state.position : state.position + batch_size]
            batch = run.source.load(wanted)
            _record_failures(run, state, batch.failures)
            if batch.indices:
                _process(run, state, batch.inputs, batch.indices)
            state.seen += len(batch.indices)
            state.position += len(wanted)
            bar.update(len(wanted))
            batches_since_checkpoint += 1
            if (
                checkpoint is not None
                and batches_since_checkpoint >= checkpoint_every
                and state.position < total
            ):
                state.save(checkpoint)
                batches_since_checkpoint = 0
    if state.seen == 0 and not run.indices:
        return state
    if state.seen == 0:
        raise EmptySourceError(
            f"none of the {total} inputs of {run.source.spec!r} could be read "
            f"(first failure: {state.failures[0][1] if state.failures else 'unknown'})"
        )
    return state


def _record_failures(run: _Run, state: EngineState, failures: list[tuple[int, str]]) -> None:
    if not failures:
        return
    if run.on_unreadable == "raise":
        index, reason = failures[0]
        raise UnreadableInputError(
            f"cannot read input {index} ({run.source.key(index)!r}) of {run.source.spec!r}: {reason}"
        )
    shown = ", ".join(f"{run.source.key(index)!r} ({reason})" for index, reason in failures[:3])
    warnings.warn(
        f"skipped {len(failures)} unreadable input(s) of {run.source.spec!r}: {shown}; they are counted in "
        "the exemplar settings ('unreadable')",
        stacklevel=4,
    )
    state.failures.extend((int(index), str(reason)) for index, reason in failures)


def _process(run: _Run, state: EngineState, inputs: torch.Tensor, indices: list[int]) -> None:
    """One forward pass capturing every layer, then every layer's statistics."""
    if run.device is not None:
        inputs = inputs.to(run.device)
    try:
        outputs = run.adapter.run(inputs, run.layers)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        if isinstance(error, InvalidInputError):
            raise
        raise InvalidInputError(
            f"the model {run.adapter.name!r} cannot run on inputs of shape {tuple(inputs.shape)} and dtype "
            f"{inputs.dtype} from {run.source.spec!r}: {error}"
        ) from error
    ids = torch.tensor(indices, dtype=torch.int64)
    for layer in run.layers:
        activations, spatial = _flatten(layer, outputs[layer], len(indices))
        layer_state = state.layers.get(layer)
        if layer_state is None:
            layer_state = _new_layer_state(run, layer, activations.shape[1], spatial)
            state.layers[layer] = layer_state
        elif layer_state.spatial != spatial or layer_state.total_units != activations.shape[1]:
            raise InvalidInputError(
                f"layer {layer!r} changed shape between batches: {layer_state.total_units} units x "
                f"{layer_state.spatial} before, {activations.shape[1]} x {spatial} now; exemplars need "
                "inputs of one size"
            )
        if len(layer_state.units) != activations.shape[1]:
            activations = activations[:, layer_state.units.to(activations.device)]
        bad_units = layer_state.update(activations.float(), ids.to(activations.device))
        if bad_units:
            raise NonFiniteActivationError(layer, bad_units, indices)


def _flatten(layer: str, activations: torch.Tensor, batch: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``(B, U, *spatial)`` -> ``(B, U, positions)`` and the spatial shape (2-D is 1x1)."""
    if not isinstance(activations, torch.Tensor) or activations.dim() not in (2, 3, 4):
        shape = tuple(activations.shape) if isinstance(activations, torch.Tensor) else type(activations)
        raise InvalidInputError(
            f"layer {layer!r} gave activations of shape {shape}; expected (B, U), (B, U, T) or (B, U, H, W)"
        )
    if activations.shape[0] != batch:
        raise InvalidInputError(
            f"layer {layer!r} gave {activations.shape[0]} rows for a batch of {batch} inputs; "
            "the adapter must return (batch, units, *spatial)"
        )
    spatial = (1, 1) if activations.dim() == 2 else tuple(activations.shape[2:])
    return activations.reshape(batch, activations.shape[1], -1), spatial


def _new_layer_state(run: _Run, layer: str, total_units: int, spatial: tuple[int, ...]) -> LayerState:
    chosen = run.units[layer]
    if chosen is None:
        units = torch.arange(total_units)
    else:
        if chosen[-1] >= total_units:
            raise InvalidInputError(
                f"layer {layer!r} has {total_units} units (0..{total_units - 1}); "
                f"unit {chosen[-1]} does not exist"
            )
        units = torch.tensor(chosen, dtype=torch.int64)
    device = run.device if run.device is not None else None
    return LayerState.empty(units, total_units, spatial, run.settings["k"], device)
