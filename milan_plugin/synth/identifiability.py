"""How often *any* describer that reads only the exemplars' masked regions could name a unit.

The MILAN encoder pools backbone features under each exemplar mask, so what a describer can know
about a unit is which concepts its 15 masked regions show. For most forms that is enough. An
exception ``and_not(A, B)`` is different: its masks show A-objects of every concept of B's family
*except* B, and any other concept of that family can be missing from 15 exemplars by chance (a
colour among 11 others is absent from 15 random draws about a quarter of the time). If m concepts
of the family never appear under the masks, ``and_not(A, B')`` for each of them has exemplars
that look the same, and an ideal observer names the right one with probability 1/m.

:func:`exemplar_ceiling` gives that probability per unit (1 for every other operator, so the
figure is an upper bound); the describer benchmark reports its mean next to each describer's
exact match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from milan_plugin.synth.concepts import channel_names
from milan_plugin.synth.logic import LogicalForm

#: A concept "appears" in an exemplar when it covers at least this fraction of the mask.
MIN_COVERAGE = 0.2


def masked_concepts(masks: torch.Tensor, concept_masks: torch.Tensor) -> torch.Tensor:
    """Bool (channels,): concepts covering >= MIN_COVERAGE of at least one exemplar mask.

    ``masks`` is bool (k, s, s); ``concept_masks`` bool (k, channels, s, s) at the same size.
    """
    masks = masks.float()
    covered = (concept_masks.float() * masks[:, None]).sum(dim=(-1, -2))
    area = masks.sum(dim=(-1, -2)).clamp_min(1.0)[:, None]
    return (covered / area >= MIN_COVERAGE).any(dim=0)


def exemplar_ceiling(form: LogicalForm, masks: torch.Tensor, concept_masks: torch.Tensor) -> float:
    """The chance that an ideal reader of the masked regions names ``form`` exactly.

    ``masks`` and ``concept_masks`` as in :func:`masked_concepts`.
    """
    if form.operator != "and_not":
        return 1.0
    excluded = form.literals[1]
    present = masked_concepts(masks, concept_masks)
    names = channel_names()
    family = [index for index, name in enumerate(names) if name.startswith(f"{excluded.family}:")]
    absent = [names[index] for index in family if not present[index]]
    return 1.0 / len(absent) if str(excluded) in absent else 0.0


def row_ceiling(row: Mapping[str, Any]) -> float:
    """:func:`exemplar_ceiling` of a synthetic annotation row."""
    from milan_plugin.synth.dataset import row_concept_masks, row_form, row_masks

    masks = row_masks(row)
    return exemplar_ceiling(row_form(row), masks, row_concept_masks(row, size=masks.shape[-1]))
