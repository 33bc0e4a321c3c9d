"""Training rows from local folders in the Hub layout, each folder read by its own file paths."""

from __future__ import annotations

import torch
from datasets import Dataset, DatasetDict

from milan_plugin.annotations import annotation_features, pack_masks
from milan_plugin.describe.annotation_data import load_annotation_splits
from milan_plugin.synth.dataset import write_hub_layout


def _rows(description: str, count: int) -> list[dict]:
    packed, shape = pack_masks(torch.ones(2, 4, 4, dtype=torch.bool))
    return [
        {
            "model": "m",
            "dataset": "d",
            "source": "folder:/nowhere",
            "layer": "layer4",
            "unit": unit,
            "image_keys": ["a.png", "b.png"],
            "image_ids": [0, 1],
            "images": [],
            "masks": packed,
            "mask_shape": shape,
            "activations": [2.0, 1.0],
            "descriptions": [description] * 3,
        }
        for unit in range(count)
    ]


def _write(folder, description: str) -> None:
    features = annotation_features()
    splits = DatasetDict(
        {
            "train": Dataset.from_list(_rows(description, 6), features=features),
            "validation": Dataset.from_list(_rows(description, 2), features=features),
        }
    )
    write_hub_layout(splits, folder, "---\nlicense: mit\n---\n# test set\n")


def test_two_folders_with_the_same_name_give_their_own_rows(tmp_path):
    first, second = tmp_path / "one" / "set", tmp_path / "two" / "set"
    _write(first, "red circles")
    _write(second, "blue squares")
    rows_first = load_annotation_splits(str(first), progress=False)
    rows_second = load_annotation_splits(str(second), progress=False)
    assert rows_first["train"][0]["descriptions"] == ["red circles"] * 3
    assert rows_second["train"][0]["descriptions"] == ["blue squares"] * 3
    assert len(rows_second["train"]) == 6 and len(rows_second["validation"]) == 2
