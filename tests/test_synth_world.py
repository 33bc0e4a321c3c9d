"""The synthetic world: determinism per seed and index, masks that match pixels, the lexicon."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from milan_plugin.synth.catalogue import candidate_forms, plan_units
from milan_plugin.synth.language import exact_match, parse_description, reference_descriptions
from milan_plugin.synth.planted import PlantedNeurons
from milan_plugin.synth.scenes import World
from milan_plugin.synth.source import SynthSource


def test_same_seed_same_scenes_bit_for_bit_and_other_seeds_differ():
    first, again, other = World(3), World(3), World(4)
    for index in (0, 7, 123):
        a, b, c = first.render(index), again.render(index), other.render(index)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.codes, b.codes)
        assert np.array_equal(a.noise, b.noise)
        assert not np.array_equal(a.image, c.image)


def test_scene_does_not_depend_on_batching_or_order():
    source = SynthSource(seed=1, n=40)
    batch = source.load([5, 6, 7]).inputs
    fresh = SynthSource(seed=1, n=40)
    alone = torch.stack([fresh.load([7]).inputs[0], fresh.load([5]).inputs[0]])
    assert torch.equal(batch[2], alone[0]) and torch.equal(batch[0], alone[1])


def test_planted_units_and_splits_are_deterministic_per_seed():
    plans = plan_units(0, 300, copies=1, min_images=3, max_forms=120)
    again = plan_units(0, 300, copies=1, min_images=3, max_forms=120)
    other = plan_units(1, 300, copies=1, min_images=3, max_forms=120)
    assert plans == again
    assert [(p.form, p.split) for p in plans] != [(p.form, p.split) for p in other]
    source = SynthSource(seed=0, n=8)
    inputs = source.load(range(8)).inputs
    model_a = PlantedNeurons([p.form for p in plans], seed=0)
    model_b = PlantedNeurons([p.form for p in again], seed=0)
    assert torch.equal(model_a(inputs), model_b(inputs))
    assert torch.equal(model_a(inputs[:3]), model_a(inputs)[:3])


def test_test_split_holds_out_combinations_and_family_split_holds_out_shapes():
    plans = plan_units(0, 600, copies=2, min_images=3, max_forms=None)
    train_forms = {p.form for p in plans if p.split == "train"}
    held_out = [p for p in plans if p.split == "test" and p.form.operator != "concept"]
    assert held_out and not any(p.form in train_forms for p in held_out)
    seen_shapes = {
        lit.name
        for p in plans
        if p.split in ("train", "validation")
        for lit in p.form.literals
        if lit.family == "shape"
    }
    family = [p for p in plans if p.split == "test_family"]
    assert family
    # Relations keep their whole vocabulary: no held-out shape is one that stands in relations.
    assert not any(p.form.kind == "relation" for p in family)
    assert {p.split for p in plans if p.form.kind == "relation"} >= {"train", "test"}
    for p in family:
        assert any(lit.family == "shape" and lit.name not in seen_shapes for lit in p.form.literals)


def test_concept_masks_match_drawn_pixels():
    from milan_plugin.synth.concepts import COLOURS

    world = World(0)
    checked = 0
    for index in range(30):
        scene = world.render(index)
        for item in scene.layout.objects:
            if item.kind != "shape" or item.texture is not None:
                continue
            both = (
                scene.masks[world.channels.index(f"shape:{item.name}")]
                & scene.masks[world.channels.index(f"colour:{item.colour}")]
            )
            pixels = scene.image[both].astype(int)
            assert len(pixels) > 0
            assert np.abs(pixels - np.array(COLOURS[item.colour])).max() <= 10
            checked += 1
    assert checked > 10


def test_every_reference_description_matches_its_form_exactly():
    rng = np.random.default_rng(0)
    for form in candidate_forms():
        for text in reference_descriptions(form, rng):
            assert exact_match(text, form), (text, str(form))


def test_exact_match_rejects_wrong_concepts_relations_and_negations():
    forms = {str(f): f for f in candidate_forms()}
    red_circles = forms["and(colour:red, shape:circle)"]
    assert exact_match("Round red objects.", red_circles)
    assert not exact_match("red squares", red_circles)
    assert not exact_match("circles that are not red", red_circles)
    next_to = forms["next_to(shape:square, any_text:text)"]
    assert exact_match("squares beside some writing", next_to)
    assert not exact_match("text next to squares", next_to)
    assert not exact_match("squares above text", next_to)
    assert parse_description("non-red circles").negated == {"colour:red"}


def test_source_rejects_bad_specs_and_indices():
    from milan_plugin.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="unknown option"):
        SynthSource.from_spec("synth:scenes?seed=0&colour=1")
    with pytest.raises(IndexError, match="out of range"):
        SynthSource(n=5).images([5])
    with pytest.raises(InvalidInputError, match="5 channels"):
        PlantedNeurons(candidate_forms()[:3])(torch.zeros(1, 3, 224, 224))


def test_hooks_open_the_synth_source_and_refuse_other_specs(fresh_plugin_manager):
    from milan_plugin.plugins import get_describer, open_source

    source = open_source("synth:scenes?seed=2&n=10")
    assert isinstance(source, SynthSource) and len(source) == 10 and source.key(3) == "scene-000003"
    assert source.images([0, 1], size=112).shape == (2, 3, 112, 112)
    assert get_describer("baseline:netdissect").name == "baseline:netdissect"
    assert fresh_plugin_manager.hook.milan_exemplar_source(spec="synth:other", options={}) is None
