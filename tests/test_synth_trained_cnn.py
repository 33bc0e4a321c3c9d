"""Real trained neurons: the world CNN, its determinism, and NetDissect IoU labels of its units."""

from __future__ import annotations

import pytest
import torch

from milan_plugin.synth.cnn_labels import MIN_IOU, concept_ious, label_units, trained_cnn_annotations
from milan_plugin.synth.concepts import COLOURS
from milan_plugin.synth.scenes import World
from milan_plugin.synth.trained import (
    LAYERS,
    SHAPE_CLASSES,
    TrainingConfig,
    WorldCNN,
    held_out_accuracy,
    main_object_labels,
    train_world_cnn,
    world_cnn,
)

TINY = TrainingConfig(train_images=16, test_images=8, epochs=2, batch_size=8, width=8)


def test_training_is_deterministic_per_seed_and_differs_across_seeds():
    first = train_world_cnn(0, TINY, progress=False).state_dict()
    again = train_world_cnn(0, TINY, progress=False).state_dict()
    other = train_world_cnn(1, TINY, progress=False).state_dict()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["block1.0.weight"], other["block1.0.weight"])


def test_training_gives_the_same_weights_whatever_the_callers_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train_world_cnn(0, TINY, progress=False).state_dict()
        torch.set_num_threads(2)
        two = train_world_cnn(0, TINY, progress=False).state_dict()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(one[name], two[name]) for name in one)


def test_weights_are_cached_and_reloaded_identically(tmp_path):
    trained = world_cnn(0, TINY, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("cnn-seed0-*/weights.safetensors"))) == 1
    loaded = world_cnn(0, TINY, cache_dir=tmp_path, progress=False)
    inputs = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(trained(inputs), loaded(inputs))


def test_world_cnn_spec_rejects_unknown_options():
    from milan_plugin.errors import InvalidInputError
    from milan_plugin.plugins import load_model

    with pytest.raises(InvalidInputError, match="known: seed"):
        load_model("synth:world-cnn?size=small")


def test_main_object_is_the_largest_item_and_bad_inputs_are_refused():
    layout = World(0).layout(3)
    biggest = max(layout.objects, key=lambda item: item.height * item.width)
    shape, colour = main_object_labels(layout)
    assert colour == list(COLOURS).index(biggest.colour)
    assert SHAPE_CLASSES[shape] == (biggest.name if biggest.kind == "shape" else "text")
    with pytest.raises(ValueError, match="inputs=rgb"):
        WorldCNN(8)(torch.zeros(1, 5, 224, 224))


def test_concept_iou_pools_intersections_and_unions_over_exemplars():
    unit = torch.zeros(2, 4, 4, dtype=torch.bool)
    unit[0, :2] = True  # 8 pixels in image 0
    concepts = torch.zeros(2, 41, 4, 4, dtype=torch.bool)
    concepts[0, 12, :2, :2] = True  # colour:red covers half the unit's pixels
    concepts[1, 12, 3] = True  # and 4 pixels of image 1 where the unit is silent
    concepts[0, 31, :2] = True  # text:letter matches exactly
    ious = concept_ious(unit, concepts)
    assert ious.shape == (34,)
    assert ious[12] == pytest.approx(4 / 12)
    assert ious[31] == pytest.approx(1.0) and ious[33] == pytest.approx(1.0)  # letter and "any text"
    assert ious[0] == 0


@pytest.mark.slow
def test_trained_cnn_beats_chance_and_its_units_get_iou_labels(tmp_path, monkeypatch):
    from milan_plugin.plugins import load_model

    monkeypatch.setenv("MILAN_CACHE", str(tmp_path))
    tmp_path = tmp_path / "synth"
    model = world_cnn(0, cache_dir=tmp_path, progress=False)
    loaded = load_model("synth:world-cnn?seed=0", progress=False)  # served from the same cache
    weights, reloaded = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(weights[name], reloaded[name]) for name in weights)
    accuracy = held_out_accuracy(model, 0)
    print(accuracy)
    assert accuracy["colour_accuracy"] > 3 * accuracy["colour_majority"]
    assert accuracy["shape_accuracy"] > accuracy["shape_majority"]
    rows = trained_cnn_annotations(0, cache_dir=tmp_path, progress=False)
    assert len(rows) >= 16 and min(rows["iou"]) >= MIN_IOU
    assert set(rows["layer"]) == set(LAYERS) and set(rows["split"]) == {"cnn"}
    assert max(rows["iou"]) > 0.3
    from milan_plugin.synth.dataset import row_concept_masks, row_form, row_masks
    from milan_plugin.synth.language import exact_match

    row = rows[0]
    ious = concept_ious(row_masks(row), row_concept_masks(row, size=row["mask_shape"][-1]))
    assert float(ious.max()) == pytest.approx(row["iou"], abs=1e-6)
    assert all(exact_match(text, row_form(row)) for text in row["descriptions"])
    again = trained_cnn_annotations(0, cache_dir=tmp_path, progress=False)
    assert again["descriptions"] == rows["descriptions"]


def test_label_units_on_a_tiny_trained_net(tmp_path):
    from milan_plugin import compute_exemplars
    from milan_plugin.synth.cnn_labels import cnn_source

    model = world_cnn(0, TINY, cache_dir=tmp_path, progress=False)
    source = cnn_source(0, images=30)
    exemplars = compute_exemplars(model, "block4", source, k=5, batch_size=15, progress=False)["block4"]
    labels = label_units(exemplars, source)
    assert len(labels) == 16
    assert all(0.0 <= iou <= 1.0 for _, _, iou in labels)
