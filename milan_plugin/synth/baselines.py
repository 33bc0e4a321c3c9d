"""Baseline describers for the synthetic benchmark: random, most frequent, and a NetDissect-style labeller.

The NetDissect labeller explains a unit by the concept, or concept pair joined by AND, OR or
AND NOT (compositional explanations style), whose masks best overlap the unit's exemplar masks
(IoU summed over the exemplar images). It reads the world's concept masks by key from the synth
source, so it only works on exemplars of synth sources. It cannot express relations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from milan_plugin.descriptions import Description
from milan_plugin.errors import InvalidInputError

if TYPE_CHECKING:
    from milan_plugin.exemplars.exemplar_set import ExemplarSet

VERSION = "1"
MASK_SIZE = 112
BEAM = 8
#: A pair must beat the best single concept by this much IoU to be preferred (shorter wins ties).
PAIR_MARGIN = 0.02


class _TrainingTextDescriber:
    """Shared loading of the training descriptions of a synthetic world."""

    def __init__(
        self, name: str, seed: int = 0, size: str = "small", cache_dir: Any = None, **_: Any
    ) -> None:
        from milan_plugin.synth.dataset import build_synthetic_annotations

        self.name, self.version = name, VERSION
        train = build_synthetic_annotations(seed=seed, size=size, cache_dir=cache_dir, progress=False)[
            "train"
        ]
        self.training_texts = [text for texts in train["descriptions"] for text in texts]
        self.seed = seed

    def _describe(self, exemplars: ExemplarSet, units: Sequence[int] | None, pick) -> list[Description]:
        units = exemplars.units.tolist() if units is None else list(units)
        return [
            Description(
                layer=exemplars.layer,
                unit=int(unit),
                text=pick(int(unit)),
                score=0.0,
                describer=self.name,
                describer_version=self.version,
                exemplar_settings=dict(exemplars.settings),
            )
            for unit in units
        ]


class RandomDescriber(_TrainingTextDescriber):
    """A training description drawn at random (seeded by unit), the chance floor of every metric."""

    def describe(self, exemplars: ExemplarSet, units: Sequence[int] | None = None) -> list[Description]:
        texts = self.training_texts
        return self._describe(
            exemplars,
            units,
            lambda unit: texts[int(np.random.default_rng([self.seed, unit]).integers(len(texts)))],
        )


class MostFrequentDescriber(_TrainingTextDescriber):
    """The most frequent training description for every unit."""

    def describe(self, exemplars: ExemplarSet, units: Sequence[int] | None = None) -> list[Description]:
        counts = Counter(self.training_texts)
        best = min(counts, key=lambda text: (-counts[text], text))
        return self._describe(exemplars, units, lambda unit: best)


class NetDissectDescriber:
    """IoU labeller over the world's concept masks (single concepts and AND / OR / AND NOT pairs)."""

    def __init__(self, name: str = "baseline:netdissect", **_: Any) -> None:
        self.name, self.version = name, VERSION

    def describe(self, exemplars: ExemplarSet, units: Sequence[int] | None = None) -> list[Description]:
        from milan_plugin.synth.language import canonical_description
        from milan_plugin.synth.source import SynthSource

        source = exemplars._require_source()
        if not isinstance(source, SynthSource):
            raise InvalidInputError(
                f"{self.name} reads concept masks from the synthetic world, but these exemplars come from "
                f"{source.spec!r}; use it on exemplars of a `synth:scenes?...` source"
            )
        units = exemplars.units.tolist() if units is None else list(units)
        descriptions = []
        for unit in units:
            form, iou = self.explain(exemplars, int(unit), source)
            descriptions.append(
                Description(
                    layer=exemplars.layer,
                    unit=int(unit),
                    text=canonical_description(form),
                    score=iou,
                    describer=self.name,
                    describer_version=self.version,
                    exemplar_settings=dict(exemplars.settings),
                )
            )
        return descriptions

    def explain(self, exemplars: ExemplarSet, unit: int, source: Any) -> tuple[Any, float]:
        """The best-overlapping logical form of ``unit`` and its IoU."""
        from milan_plugin.synth.catalogue import concept_literals
        from milan_plugin.synth.logic import LogicalForm

        literals = concept_literals()
        unit_masks = exemplars.masks(unit, size=MASK_SIZE).reshape(1, -1)
        concept = source.concept_masks(exemplars.ids[exemplars.row(unit)].tolist(), size=MASK_SIZE)
        concept = concept[:, : len(literals)].transpose(0, 1).reshape(len(literals), -1)
        # "any text" is the union of letters and words
        text_any = concept[[i for i, lit in enumerate(literals) if lit.family == "text"]].any(
            dim=0, keepdim=True
        )
        literals = [*literals, _any_text()]
        concept = torch.cat([concept, text_any])

        def iou(masks: torch.Tensor) -> torch.Tensor:
            inter = (masks & unit_masks).sum(dim=-1).float()
            union = (masks | unit_masks).sum(dim=-1).float()
            return inter / union.clamp(min=1)

        single = iou(concept)
        best_index = int(single.argmax())
        best_form, best_iou = LogicalForm("concept", literals[best_index]), float(single[best_index])
        beam = single.argsort(descending=True)[:BEAM].tolist()
        for a in beam:
            for b in range(len(literals)):
                if a == b:
                    continue
                for operator, masks in (
                    ("and", concept[a] & concept[b]),
                    ("or", concept[a] | concept[b]),
                    ("and_not", concept[a] & ~concept[b]),
                ):
                    if operator == "or" and literals[a].family != literals[b].family:
                        continue
                    score = float(iou(masks[None]))
                    if score > best_iou + PAIR_MARGIN:
                        best_form, best_iou = LogicalForm(operator, literals[a], literals[b]), score
        return best_form, best_iou


def _any_text():
    from milan_plugin.synth.logic import TEXT_ANY, Literal

    return Literal("any_text", TEXT_ANY)


def baseline_describer(name: str, **options: Any) -> Any:
    """The built-in baseline called ``name`` (``baseline:random``, ``:most-frequent``, ``:netdissect``)."""
    if name == "baseline:netdissect":
        return NetDissectDescriber(name)
    known = {"baseline:random": RandomDescriber, "baseline:most-frequent": MostFrequentDescriber}
    if name not in known:
        raise InvalidInputError(
            f"no baseline called {name!r}; known: baseline:netdissect, {', '.join(known)}"
        )
    return known[name](name, **options)
