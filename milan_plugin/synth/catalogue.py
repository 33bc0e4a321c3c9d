"""Which units get planted, and which split each belongs to.

Candidate logical forms cover single concepts, conjunctions, disjunctions, exceptions and
relations. A form is planted only when enough scenes of the source contain it (counted from
layouts, without drawing), so every unit has real exemplars. Splits mirror the paper: ``test``
holds out concept *combinations* never planted in training, ``test_family`` holds out a whole
shape family (every form that mentions one of those shapes). Held-out shapes are drawn from the
shapes that do not stand in relations (:data:`RELATION_THINGS`): holding out one of those would
move every relation form that mentions it out of training and leave too few to learn relations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

from milan_plugin.synth.concepts import COLOURS, RELATIONS, SHAPES, TEXT_KINDS, TEXTURES
from milan_plugin.synth.language import reference_descriptions
from milan_plugin.synth.logic import TEXT_ANY, FormTable, Literal, LogicalForm, image_gates
from milan_plugin.synth.scenes import RELATION_THINGS, SceneLayout, World, object_code

SPLITS: tuple[str, ...] = ("train", "validation", "test", "test_family")
#: Changes whenever the same seed would plan different units or splits (part of the cache key).
PLAN_VERSION = "2"
HELD_OUT_SHAPES = 3
HELD_OUT_COMBINATIONS = 0.15
SINGLE_TEST_FRACTION = 0.1
VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class UnitPlan:
    """One planted unit: its index in the layer, form, split and three reference descriptions."""

    unit: int
    form: LogicalForm
    split: str
    descriptions: tuple[str, ...]
    positive_images: int


def concept_literals() -> list[Literal]:
    """The concept literals in mask-channel order (shapes, colours, textures, text kinds)."""
    return (
        [Literal("shape", name) for name in SHAPES]
        + [Literal("colour", name) for name in COLOURS]
        + [Literal("texture", name) for name in TEXTURES]
        + [Literal("text", name) for name in TEXT_KINDS]
    )


def candidate_forms() -> list[LogicalForm]:
    """Every logical form the world can plant, in a fixed order."""
    shapes = [Literal("shape", name) for name in SHAPES]
    colours = [Literal("colour", name) for name in COLOURS]
    textures = [Literal("texture", name) for name in TEXTURES]
    texts = [Literal("text", name) for name in TEXT_KINDS] + [Literal("any_text", TEXT_ANY)]
    forms = [LogicalForm("concept", literal) for literal in shapes + colours + textures + texts]
    forms += [LogicalForm("and", c, s) for c in colours for s in shapes]
    forms += [LogicalForm("and", c, t) for c in colours for t in textures]
    forms += [LogicalForm("and", t, s) for t in textures for s in shapes]
    forms += [LogicalForm("and", c, x) for c in colours for x in texts]
    for family in (shapes, colours, textures):
        forms += [LogicalForm("or", a, b) for a, b in combinations(family, 2)]
    forms += [LogicalForm("and_not", s, c) for s in shapes for c in colours]
    forms += [LogicalForm("and_not", c, s) for c in colours for s in shapes]
    forms += [LogicalForm("and_not", s, t) for s in shapes for t in textures]
    forms += [LogicalForm("and_not", texts[-1], c) for c in colours]
    things = [Literal("shape", name) for name in RELATION_THINGS[:-1]] + [texts[-1]]
    for relation in RELATIONS:
        partners = things[:-1] if relation in ("inside", "on") else things
        forms += [LogicalForm(relation, a, b) for a in things for b in partners if a != b]
    return forms


def layout_codes(layout: SceneLayout) -> list[int]:
    """The attribute code of every object of a layout (see :mod:`milan_plugin.synth.logic`)."""
    return [object_code(item) for item in layout.objects]


def positive_images(forms: Sequence[LogicalForm], world: World, count: int) -> torch.Tensor:
    """Bool ``(count, forms)``: whether each of the first ``count`` scenes contains each form."""
    per_scene = [layout_codes(world.layout(index)) for index in range(count)]
    distinct = sorted({code for codes in per_scene for code in codes})
    column = {code: position for position, code in enumerate(distinct)}
    present = torch.zeros(count, len(distinct), dtype=torch.bool)
    for index, codes in enumerate(per_scene):
        present[index, [column[code] for code in codes]] = True
    fire_a, gate_a, fire_b, gate_b = FormTable.from_forms(forms).lookup(torch.tensor(distinct))
    side_a = image_gates(present, fire_a) & image_gates(present, gate_a)
    side_b = image_gates(present, fire_b) & image_gates(present, gate_b)
    return side_a | side_b


def plan_units(
    seed: int, num_images: int, copies: int, min_images: int, max_forms: int | None = None
) -> list[UnitPlan]:
    """Choose the planted units of a world and assign splits, deterministically from ``seed``."""
    rng = np.random.default_rng([seed, 7])
    forms = candidate_forms()
    counts = positive_images(forms, World(seed), num_images).sum(dim=0)
    eligible = [
        (form, int(total)) for form, total in zip(forms, counts.tolist(), strict=True) if total >= min_images
    ]
    if max_forms is not None and len(eligible) > max_forms:
        singles = [item for item in eligible if item[0].operator == "concept"]
        others = [item for item in eligible if item[0].operator != "concept"]
        keep = rng.choice(len(others), size=max(0, max_forms - len(singles)), replace=False)
        eligible = singles + [others[index] for index in sorted(keep)]
    unrelated_shapes = [name for name in SHAPES if name not in RELATION_THINGS]
    held_out = {
        str(Literal("shape", name)) for name in rng.choice(unrelated_shapes, HELD_OUT_SHAPES, replace=False)
    }
    plans: list[tuple[LogicalForm, str, int]] = []
    for form, total in eligible:
        if any(str(literal) in held_out for literal in form.literals):
            plans += [(form, "test_family", total)] * copies
        elif form.operator != "concept" and rng.random() < HELD_OUT_COMBINATIONS:
            plans += [(form, "test", total)] * copies
        else:
            for _ in range(copies):
                draw = rng.random()
                if form.operator == "concept" and draw < SINGLE_TEST_FRACTION:
                    split = "test"
                elif draw > 1 - VALIDATION_FRACTION:
                    split = "validation"
                else:
                    split = "train"
                plans.append((form, split, total))
    order = rng.permutation(len(plans))
    return [
        UnitPlan(
            unit=unit,
            form=plans[position][0],
            split=plans[position][1],
            descriptions=tuple(reference_descriptions(plans[position][0], rng)),
            positive_images=plans[position][2],
        )
        for unit, position in enumerate(order.tolist())
    ]
