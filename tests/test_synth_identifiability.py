"""The exemplar ceiling: how often a reader of the masked regions alone could name a unit."""

from __future__ import annotations

import torch

from milan_plugin.synth.catalogue import plan_units
from milan_plugin.synth.concepts import channel_names
from milan_plugin.synth.identifiability import exemplar_ceiling, masked_concepts
from milan_plugin.synth.logic import Literal, LogicalForm
from milan_plugin.synth.planted import PlantedNeurons
from milan_plugin.synth.source import SynthSource

CHANNELS = 41
SIZE = 8


def _exemplars(colours_per_image: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """One circle per exemplar, masked, coloured as given; an unmasked red object in every image."""
    names = channel_names()
    masks = torch.zeros(len(colours_per_image), SIZE, SIZE, dtype=torch.bool)
    concepts = torch.zeros(len(colours_per_image), CHANNELS, SIZE, SIZE, dtype=torch.bool)
    for index, colour in enumerate(colours_per_image):
        masks[index, :4, :4] = True
        concepts[index, names.index("shape:circle"), :4, :4] = True
        concepts[index, names.index(f"colour:{colour}"), :4, :4] = True
        concepts[index, names.index("colour:red"), 6:, 6:] = True  # outside the mask: unseen
    return masks, concepts


def test_an_exception_is_as_ambiguous_as_the_concepts_missing_from_its_masks():
    masks, concepts = _exemplars(["blue", "green", "yellow", "white", "black", "gray", "cyan", "pink"])
    present = masked_concepts(masks, concepts)
    names = channel_names()
    assert {names[i] for i in present.nonzero().flatten().tolist()} == {
        "shape:circle",
        *(f"colour:{c}" for c in ("blue", "green", "yellow", "white", "black", "gray", "cyan", "pink")),
    }
    non_red_circles = LogicalForm("and_not", Literal("shape", "circle"), Literal("colour", "red"))
    # Red, orange, purple and brown never appear under a mask: four exceptions fit these exemplars.
    assert exemplar_ceiling(non_red_circles, masks, concepts) == 0.25
    non_blue_circles = LogicalForm("and_not", Literal("shape", "circle"), Literal("colour", "blue"))
    assert exemplar_ceiling(non_blue_circles, masks, concepts) == 0.0
    red_circles = LogicalForm("and", Literal("colour", "red"), Literal("shape", "circle"))
    assert exemplar_ceiling(red_circles, masks, concepts) == 1.0


def test_a_concept_covering_a_sliver_of_a_mask_does_not_count_as_shown():
    masks, concepts = _exemplars(["blue"])
    concepts[0, channel_names().index("colour:orange"), 0, 0] = True  # 1 of 16 mask pixels
    assert not masked_concepts(masks, concepts)[channel_names().index("colour:orange")]


def test_engine_exemplars_of_planted_exceptions_never_show_the_excluded_concept():
    from milan_plugin import compute_exemplars

    plans = [plan for plan in plan_units(0, 300, copies=1, min_images=20) if plan.form.operator == "and_not"]
    plans = plans[:6]
    source = SynthSource(seed=0, n=300, cache_scenes=300)
    model = PlantedNeurons([plan.form for plan in plans], seed=0)
    exemplars = compute_exemplars(model, "units", source, k=15, batch_size=50, progress=False)["units"]
    for unit, plan in enumerate(plans):
        ids = exemplars.ids[exemplars.row(unit)].tolist()
        masks = exemplars.masks(unit)
        concepts = source.concept_masks(ids, size=masks.shape[-1])
        shown = masked_concepts(masks, concepts)
        included = plan.form.literals[0]
        if included.family != "any_text":
            assert shown[channel_names().index(str(included))], str(plan.form)
        ceiling = exemplar_ceiling(plan.form, masks, concepts)
        assert 0.0 < ceiling <= 1.0, (str(plan.form), ceiling)
