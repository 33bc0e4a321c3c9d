"""The interfaces that hooks return: model adapters, exemplar sources, scorers, describers.

These are structural (``typing.Protocol``): a plugin's classes need not inherit from anything,
they only need the attributes and methods below. ``isinstance`` checks work because the
protocols are ``runtime_checkable`` (they check names, not signatures).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from milan_plugin.descriptions import Description
    from milan_plugin.exemplars.exemplar_set import ExemplarSet


@runtime_checkable
class ModelAdapter(Protocol):
    """How the plugin sees one model: its layers, their activations, and unit ablation.

    Activations are always returned as ``(batch, units, *spatial)`` float tensors that the caller
    owns (cloned, so an in-place op later in the model cannot change them): conv maps as
    ``(B, C, H, W)``, ViT MLP units as ``(B, C, rows, cols)`` with the CLS token dropped and the
    first patch top-left, dense layers as ``(B, C, 1, 1)``, text models as ``(B, C, tokens)``.
    """

    #: A short human-readable identity, e.g. ``torchvision:resnet18``.
    name: str
    #: The user's model, untouched (adapters never replace modules or forward methods).
    model: torch.nn.Module
    #: True when the model maps latents to images, so the generated image is the exemplar.
    generative: bool

    def layer_names(self) -> list[str]:
        """Every layer that can be captured, in forward order where known."""
        ...

    def default_layers(self) -> list[str]:
        """The layers described when the user names none (e.g. the paper's for torchvision)."""
        ...

    def fingerprint(self) -> str:
        """A digest of the architecture and weights; changes whenever the model's outputs could."""
        ...

    def run(self, inputs: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """One forward pass over ``inputs`` capturing every layer in ``layers`` at once.

        Raises :class:`~milan_plugin.errors.UnknownLayerError` for a name not in
        :meth:`layer_names`. Runs under ``torch.no_grad()`` on the model's device.
        """
        ...

    def ablate(self, layer: str, units: Sequence[int]) -> AbstractContextManager[None]:
        """A context in which ``units`` of ``layer`` output zero in every forward pass."""
        ...

    def render(self, inputs: torch.Tensor) -> torch.Tensor:
        """For generative models: the uint8 ``(B, 3, H, W)`` images generated from ``inputs``."""
        ...


@dataclass
class LoadedBatch:
    """What a source returns for a list of indices: the inputs that could be read.

    ``indices`` lists, in order, the source indices whose input is in ``inputs``; ``failures``
    pairs each index that could not be read with the reason.
    """

    inputs: torch.Tensor
    indices: list[int]
    failures: list[tuple[int, str]] = field(default_factory=list)


@runtime_checkable
class ExemplarSource(Protocol):
    """A finite, indexable collection of model inputs with stable ids."""

    #: The text spec that reopens this source, e.g. ``folder:/data/val``.
    spec: str

    def __len__(self) -> int: ...

    def key(self, index: int) -> str:
        """The stable id of input ``index`` (a relative path, a dataset row id, ``latent-17``)."""
        ...

    def fingerprint(self) -> str:
        """A digest of the ids, content identity and transform; changes when inputs could."""
        ...

    def load(self, indices: Sequence[int]) -> LoadedBatch:
        """Model-ready inputs for ``indices`` (normalised tensors or latents)."""
        ...

    def images(self, indices: Sequence[int], size: int = 224) -> torch.Tensor | None:
        """The uint8 ``(n, 3, size, size)`` images the model saw (same crop), or ``None``.

        ``None`` means the source holds latents: the images come from the generative model's
        :meth:`ModelAdapter.render`.
        """
        ...


@runtime_checkable
class Scorer(Protocol):
    """Rates candidate descriptions of one unit against its exemplars; higher is better."""

    name: str

    def score(self, texts: Sequence[str], images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(len(texts),)``, for uint8 images ``(k, 3, H, W)`` and bool masks ``(k, H, W)``."""
        ...


@runtime_checkable
class Describer(Protocol):
    """Turns a layer's exemplars into one description per unit."""

    name: str
    version: str

    def describe(self, exemplars: ExemplarSet, units: Sequence[int] | None = None) -> list[Description]:
        """Descriptions for ``units`` (all units of the set when ``None``), in the order asked."""
        ...


@dataclass(frozen=True)
class RegistryEntry:
    """One entry of the Hub registry (packaged YAML or a plugin's ``milan_annotation_sets``).

    ``kind`` is ``milannotations`` (a human-annotated dataset), ``annotation-set`` (descriptions
    computed by a describer for one model) or ``describer`` (captioner and LM weights).
    """

    name: str
    kind: str
    repo_id: str
    revision: str = "main"
    description: str = ""
    model: str | None = None
    model_fingerprint: str | None = None
    layers: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
