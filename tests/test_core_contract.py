"""The core contract: errors, fingerprints, description records and the annotation row schema."""

from __future__ import annotations

import pytest
import torch

from milan_plugin.annotations import annotation_features, pack_masks, unpack_masks
from milan_plugin.descriptions import Candidate, Description
from milan_plugin.errors import NonFiniteActivationError, UnknownLayerError, closest
from milan_plugin.fingerprint import digest_json, digest_module


def test_unknown_layer_error_lists_the_closest_names():
    error = UnknownLayerError("layr4", ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"])
    assert error.suggestions[0] == "layer4"
    assert "layer4" in str(error) and "layr4" in str(error)
    assert isinstance(error, KeyError)


def test_closest_falls_back_to_substrings():
    assert closest("mlp", ["blocks.0.mlp.fc1", "blocks.0.attn"]) == ["blocks.0.mlp.fc1"]


def test_non_finite_error_names_layer_and_units():
    message = str(NonFiniteActivationError("features.3", list(range(30))))
    assert "features.3" in message and "0, 1, 2" in message and "10 more" in message


def test_module_digest_changes_with_one_weight_and_not_otherwise():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    before = digest_module(model)
    assert digest_module(model) == before
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3
    assert digest_module(model) != before


def test_json_digest_ignores_key_order():
    assert digest_json({"a": 1, "b": [1, 2]}) == digest_json({"b": [1, 2], "a": 1})
    assert digest_json({"a": 1}) != digest_json({"a": 2})


def test_description_record_round_trip():
    description = Description(
        layer="layer4",
        unit=12,
        text="dog faces",
        score=-3.5,
        candidates=(Candidate("dog faces", -3.5, -4.0, -2.5), Candidate("animals", -5.0)),
        describer="milan:demo",
        describer_version="0.1.0",
        exemplar_settings={"k": 15, "quantile": 0.99},
    )
    assert Description.from_record(description.to_record()) == description
    assert "dog faces" in repr(description) and str(description) == "dog faces"


@pytest.mark.parametrize("shape", [(15, 224, 224), (3, 7, 5), (4, 11)])
def test_masks_pack_and_unpack_exactly(shape):
    generator = torch.Generator().manual_seed(1)
    masks = torch.rand(shape, generator=generator) > 0.7
    packed, packed_shape = pack_masks(masks)
    assert len(packed) == (masks.numel() + 7) // 8
    assert torch.equal(unpack_masks(packed, packed_shape), masks)


def test_annotation_rows_round_trip_through_datasets(tmp_path):
    from datasets import Dataset, load_dataset

    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2:4, 2:4] = True
    packed, shape = pack_masks(masks)
    row = {
        "model": "resnet18",
        "dataset": "imagenet",
        "source": "folder:/data/val",
        "layer": "layer4",
        "unit": 3,
        "image_keys": ["a/1.jpg", "b/2.jpg"],
        "image_ids": [0, 5],
        "images": [],
        "masks": packed,
        "mask_shape": shape,
        "activations": [2.5, 1.0],
        "descriptions": ["red things", "red", "the colour red"],
    }
    Dataset.from_list([row], features=annotation_features()).to_parquet(tmp_path / "train.parquet")
    loaded = load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train")[0]
    assert torch.equal(unpack_masks(loaded["masks"], loaded["mask_shape"]), masks)
    assert loaded["descriptions"] == row["descriptions"] and loaded["image_keys"] == row["image_keys"]
