"""Test doubles shared by the neuron-handle and nnsight test files (imported as a plain module;
pytest puts ``tests/`` on ``sys.path``)."""

from __future__ import annotations

import torch

from milan_plugin.descriptions import Description
from milan_plugin.sources.tensors import TensorSource


class EvidenceDescriber:
    """Describes a unit by its best exemplar's key and mask coverage, so any change in the
    exemplars (ids, maps or thresholds) changes the text; counts its calls, so tests can tell a
    cache hit from a recomputation."""

    name = "test:evidence"
    version = "1"

    def __init__(self) -> None:
        self.calls = 0

    def describe(self, exemplars, units=None):
        self.calls += 1
        units = exemplars.units.tolist() if units is None else list(units)
        descriptions = []
        for unit in units:
            row = exemplars.row(unit)
            coverage = exemplars.masks(unit, size=32).float().mean().item()
            descriptions.append(
                Description(
                    layer=exemplars.layer,
                    unit=int(unit),
                    text=f"{exemplars.keys[row][0]} covers {coverage:.4f}",
                    score=float(exemplars.activations[row, 0]),
                    describer=self.name,
                    describer_version=self.version,
                    exemplar_settings=dict(exemplars.settings),
                )
            )
        return descriptions


def random_image_source(size: int = 32, count: int = 24, seed: int = 0) -> TensorSource:
    """``count`` reproducible uniform-noise pictures of ``size`` x ``size`` pixels."""
    generator = torch.Generator().manual_seed(seed)
    pictures = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    return TensorSource(pictures, image_size=size)
