"""The engine's running state: per layer a top-k and a quantile sketch, plus bookkeeping.

Why a separate, saveable state: it is what a checkpoint holds (resume after a crash) and what a
shard produces (run shards anywhere, merge them later). Merging is exact, so a merged state
finalises to the same exemplars as a single run over all the inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from milan_plugin.exemplars.atomic import read_tensors, write_tensors
from milan_plugin.exemplars.sketch import QuantileSketch
from milan_plugin.exemplars.topk import EMPTY_ID, RunningTopK

STATE_FORMAT = "milan-exemplar-state/1"


@dataclass
class LayerState:
    """Statistics of one layer: which units, their map shape, top-k and sketch."""

    units: torch.Tensor  # (n,) int64, the layer's unit indices covered
    total_units: int  # how many units the layer has
    spatial: tuple[int, ...]
    topk: RunningTopK
    sketch: QuantileSketch

    @classmethod
    def empty(
        cls,
        units: torch.Tensor,
        total_units: int,
        spatial: Sequence[int],
        k: int,
        device: torch.device | str | None,
    ) -> LayerState:
        positions = 1
        for size in spatial:
            positions *= int(size)
        return cls(
            units=units.cpu(),
            total_units=int(total_units),
            spatial=tuple(int(size) for size in spatial),
            topk=RunningTopK.empty(len(units), k, positions, device),
            sketch=QuantileSketch.empty(len(units), device),
        )

    def update(self, activations: torch.Tensor, ids: torch.Tensor) -> list[int]:
        """Add a batch of this layer's activations ``(B, n, P)`` for source indices ``ids``.

        Returns the layer units with NaN or infinite values, in which case nothing was added.
        """
        peaks = activations.amax(dim=2)
        lows = activations.amin(dim=2)
        finite = torch.isfinite(peaks).all(dim=0) & torch.isfinite(lows).all(dim=0)
        if not bool(finite.all()):
            return self.units[~finite.cpu()].tolist()
        self.topk.update(activations, peaks, ids)
        self.sketch.update(activations, lows.amin(dim=0), peaks.amax(dim=0))
        return []

    def merge(self, other: LayerState) -> LayerState:
        if not torch.equal(self.units, other.units) or self.spatial != other.spatial:
            raise ValueError("cannot merge states that cover different units or map shapes")
        return LayerState(
            self.units,
            self.total_units,
            self.spatial,
            self.topk.merge(other.topk),
            self.sketch.merge(other.sketch),
        )


@dataclass
class EngineState:
    """Everything a pass over (part of) a source has accumulated.

    ``settings`` identifies the computation (model, source, layers, k, units) and must match for
    states to merge or a checkpoint to resume; ``position`` counts how many of the run's indices
    have been processed; ``failures`` lists ``(index, reason)`` of unreadable inputs.
    """

    settings: dict[str, Any]
    layers: dict[str, LayerState] = field(default_factory=dict)
    seen: int = 0
    position: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> None:
        """Write the state atomically (safetensors + JSON metadata)."""
        tensors: dict[str, torch.Tensor] = {}
        layers: dict[str, Any] = {}
        for number, (name, layer) in enumerate(self.layers.items()):
            sketch = layer.sketch.trimmed()
            prefix = f"layer{number}."
            tensors[prefix + "units"] = layer.units
            tensors[prefix + "top_values"] = layer.topk.values
            tensors[prefix + "top_ids"] = layer.topk.ids
            tensors[prefix + "top_maps"] = layer.topk.maps
            tensors[prefix + "sketch_counts"] = sketch.counts
            tensors[prefix + "sketch_min"] = sketch.minimum
            tensors[prefix + "sketch_max"] = sketch.maximum
            layers[name] = {
                "prefix": prefix,
                "total_units": layer.total_units,
                "spatial": list(layer.spatial),
                "sketch_base": sketch.base,
            }
        metadata = {
            "format": STATE_FORMAT,
            "settings": self.settings,
            "layers": layers,
            "seen": self.seen,
            "position": self.position,
            "failures": [[index, reason] for index, reason in self.failures],
        }
        write_tensors(path, tensors, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str | None = None) -> EngineState:
        tensors, metadata = read_tensors(path, "exemplar engine state")
        if metadata.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} holds format {metadata.get('format')!r}, expected {STATE_FORMAT!r}")
        layers = {}
        for name, info in metadata["layers"].items():
            prefix = info["prefix"]
            layers[name] = LayerState(
                units=tensors[prefix + "units"],
                total_units=int(info["total_units"]),
                spatial=tuple(info["spatial"]),
                topk=RunningTopK(
                    tensors[prefix + "top_values"].to(device),
                    tensors[prefix + "top_ids"].to(device),
                    tensors[prefix + "top_maps"].to(device),
                ),
                sketch=QuantileSketch(
                    tensors[prefix + "sketch_counts"].to(device),
                    int(info["sketch_base"]),
                    tensors[prefix + "sketch_min"].to(device),
                    tensors[prefix + "sketch_max"].to(device),
                ),
            )
        return cls(
            settings=metadata["settings"],
            layers=layers,
            seen=int(metadata["seen"]),
            position=int(metadata["position"]),
            failures=[(int(index), str(reason)) for index, reason in metadata["failures"]],
        )

    def has_empty_slots(self) -> bool:
        """True while some unit has fewer than k inputs (fewer than k inputs seen)."""
        return any(bool((layer.topk.ids == EMPTY_ID).any()) for layer in self.layers.values())


def merge_states(states: Sequence[EngineState]) -> EngineState:
    """Combine the states of disjoint shards into the state of one run over all their inputs.

    Exact: top-k merges by the same total order and sketch counts add, so the result is equal,
    bit for bit, to a single run, whatever the order of ``states``.
    """
    if not states:
        raise ValueError("merge_states needs at least one state")
    first = states[0]
    merged = EngineState(settings=dict(first.settings), layers=dict(first.layers), seen=first.seen)
    merged.failures = list(first.failures)
    for state in states[1:]:
        if _identity(state.settings) != _identity(first.settings):
            raise ValueError(
                "cannot merge states computed with different settings: "
                f"{_identity(first.settings)} vs {_identity(state.settings)}"
            )
        for name, layer in state.layers.items():
            merged.layers[name] = merged.layers[name].merge(layer) if name in merged.layers else layer
        merged.seen += state.seen
        merged.failures.extend(state.failures)
    merged.failures.sort()
    merged.settings.pop("indices", None)
    merged.position = merged.seen + len(merged.failures)
    return merged


def _identity(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that must agree for states to merge (everything but which indices)."""
    return {key: value for key, value in settings.items() if key != "indices"}
