"""Acceptance 4: bad input gets a clear error and leaves no partial output behind."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from milan_plugin.errors import (
    EmptySourceError,
    InvalidInputError,
    NonFiniteActivationError,
    UnknownLayerError,
    UnreadableInputError,
)
from milan_plugin.exemplars import compute_exemplars
from milan_plugin.protocols import LoadedBatch
from milan_plugin.sources.folder import FolderSource
from milan_plugin.sources.tensors import TensorSource


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(conv1=nn.Conv2d(3, 8, 3, stride=4), relu1=nn.ReLU(), conv2=nn.Conv2d(8, 8, 3, stride=2))
    ).eval()


def small_source(count: int = 20) -> TensorSource:
    return TensorSource(
        torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(0)), image_size=32
    )


def assert_no_final_output(cache: Path) -> None:
    assert not list(cache.rglob("exemplars.safetensors"))
    assert not list(cache.rglob("*.partial"))


class CountingSource:
    """Counts loads, so a test can show that an error came before any work."""

    def __init__(self, inner):
        self.inner, self.spec, self.loads = inner, inner.spec, 0

    def __len__(self):
        return len(self.inner)

    def key(self, index):
        return self.inner.key(index)

    def fingerprint(self):
        return self.inner.fingerprint()

    def load(self, indices):
        self.loads += 1
        return self.inner.load(indices)

    def images(self, indices, size=224):
        return self.inner.images(indices, size)


class EmptySource:
    spec = "memory:empty"

    def __len__(self):
        return 0

    def key(self, index):
        raise IndexError(index)

    def fingerprint(self):
        return "empty"

    def load(self, indices):
        return LoadedBatch(torch.zeros(0, 3, 32, 32), [])

    def images(self, indices, size=224):
        return None


def test_unknown_layer_lists_closest_names_before_any_work(tmp_path):
    source = CountingSource(small_source())
    with pytest.raises(UnknownLayerError, match="conv2") as caught:
        compute_exemplars(small_model(), ["conv1", "conv_2"], source, k=3, cache_dir=tmp_path, progress=False)
    assert "conv2" in caught.value.suggestions
    assert source.loads == 0
    assert_no_final_output(tmp_path)


def test_empty_source_and_k_larger_than_source(tmp_path):
    with pytest.raises(EmptySourceError, match="no inputs"):
        compute_exemplars(small_model(), "conv1", EmptySource(), k=3, cache_dir=tmp_path, progress=False)
    with pytest.raises(InvalidInputError, match="k=21 is larger than the source"):
        compute_exemplars(small_model(), "conv1", small_source(20), k=21, cache_dir=tmp_path, progress=False)
    with pytest.raises(InvalidInputError, match="quantile"):
        compute_exemplars(small_model(), "conv1", small_source(20), k=2, quantile=1.5, progress=False)
    with pytest.raises(InvalidInputError, match="unit 9 does not exist"):
        compute_exemplars(small_model(), "conv1", small_source(20), k=2, units=[1, 9], progress=False)
    assert_no_final_output(tmp_path)


def test_non_image_tensors_are_refused(tmp_path):
    with pytest.raises(InvalidInputError):
        TensorSource(torch.rand(4, 5))
    with pytest.raises(InvalidInputError):
        TensorSource(torch.rand(4, 2, 32, 32))
    flat = TensorSource.raw(torch.rand(10, 7))
    with pytest.raises(InvalidInputError, match=r"cannot run on inputs of shape \(10, 7\)"):
        compute_exemplars(
            small_model(), "conv1", flat, k=3, batch_size=16, cache_dir=tmp_path, progress=False
        )
    assert_no_final_output(tmp_path)


def test_nan_activations_name_the_layer_and_units(tmp_path):
    model = small_model()
    with torch.no_grad():
        model.conv2.weight[5, 0, 0, 0] = float("nan")
        model.conv2.bias[2] = float("inf")
    with pytest.raises(NonFiniteActivationError, match=r"'conv2'.*units 2, 5") as caught:
        compute_exemplars(model, ["conv1", "conv2"], small_source(), k=3, cache_dir=tmp_path, progress=False)
    assert caught.value.layer == "conv2" and caught.value.units == [2, 5]
    assert_no_final_output(tmp_path)


@pytest.fixture
def folder_with_broken_file(tmp_path, copy_photos) -> Path:
    folder = copy_photos(tmp_path / "photos", 6)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return folder


def test_unreadable_files_are_skipped_warned_and_counted(tmp_path, folder_with_broken_file):
    source = FolderSource(folder_with_broken_file)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable input.*broken\.png"):
        results = compute_exemplars(
            small_model(), "conv2", source, k=3, cache_dir=tmp_path / "c", progress=False
        )
    settings = results["conv2"].settings
    assert settings["unreadable"] == 1 and settings["unreadable_keys"] == ["broken.png"]
    assert settings["inputs"] == 6
    assert "broken.png" not in {key for row in results["conv2"].keys for key in row}


def test_unreadable_files_raise_when_asked(tmp_path, folder_with_broken_file):
    source = FolderSource(folder_with_broken_file)
    with pytest.raises(UnreadableInputError, match=r"broken\.png"):
        compute_exemplars(
            small_model(), "conv2", source, k=3, cache_dir=tmp_path, on_unreadable="raise", progress=False
        )
    assert_no_final_output(tmp_path)
