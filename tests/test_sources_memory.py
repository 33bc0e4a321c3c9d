"""In-memory tensors, seeded latents, ``datasets`` datasets and spec parsing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from milan_plugin.errors import EmptySourceError, InvalidInputError, PluginLookupError
from milan_plugin.plugins import open_source
from milan_plugin.protocols import ExemplarSource
from milan_plugin.sources.hf import DatasetSource
from milan_plugin.sources.latents import LatentSource
from milan_plugin.sources.tensors import TensorSource


def test_tensor_source_uint8_and_float_images_agree() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 48), dtype=torch.uint8, generator=generator)
    as_uint8 = TensorSource(images, image_size=32)
    as_float = TensorSource(images.float() / 255, image_size=32)
    assert isinstance(as_uint8, ExemplarSource)
    assert len(as_uint8) == 4 and as_uint8.key(2) == "tensor-2"
    assert torch.equal(as_uint8.images([0, 3], size=32), as_float.images([0, 3], size=32))
    assert as_uint8.fingerprint() == as_float.fingerprint()
    batch = as_uint8.load([3, 1])
    assert batch.indices == [3, 1] and batch.inputs.shape == (2, 3, 32, 32)
    assert abs(float(batch.inputs.mean())) < 1.0, "inputs are ImageNet-normalised"
    grey = TensorSource(images[:, :1], image_size=32).images([0], size=32)
    assert torch.equal(grey[0, 0], grey[0, 2])


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.rand(5, 10), "expected images shaped"),
        (torch.rand(2, 5, 8, 8), "expected images shaped"),
        (torch.rand(3, 8, 8), "expected images shaped"),
        (torch.randn(2, 3, 8, 8) * 5, r"must lie in \[0, 1\]"),
        (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
        (torch.ones(2, 3, 8, 8, dtype=torch.int64), "uint8"),
    ],
)
def test_tensor_source_rejects_non_images(tensor: torch.Tensor, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        TensorSource(tensor)


def test_tensor_source_empty_and_raw_mode() -> None:
    with pytest.raises(EmptySourceError):
        TensorSource(torch.zeros(0, 3, 8, 8, dtype=torch.uint8))
    tokens = torch.arange(20).view(5, 4)
    raw = TensorSource.raw(tokens, keys=[f"sentence-{i}" for i in range(5)])
    batch = raw.load([4, 0])
    assert torch.equal(batch.inputs, tokens[[4, 0]])
    assert raw.images([0]) is None
    assert raw.key(4) == "sentence-4"
    with pytest.raises(IndexError):
        raw.load([5])


def test_latents_are_deterministic_per_index_whatever_the_batch() -> None:
    source = open_source("latents:100:16:7")
    assert isinstance(source, LatentSource)
    assert len(source) == 100 and source.key(42) == "latent-42"
    together = source.load([3, 42, 99]).inputs
    alone = torch.stack([source.load([i]).inputs[0] for i in (99, 3, 42)])
    assert torch.equal(together, alone[[1, 2, 0]])
    assert together.shape == (3, 16)
    assert not torch.equal(open_source("latents:100:16:8").load([3]).inputs[0], together[0])
    assert source.images([1]) is None
    assert open_source("latents:4:2x3x3:0").load([0]).inputs.shape == (1, 2, 3, 3)
    assert open_source(source.spec).fingerprint() == source.fingerprint()


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("latents:10:16", InvalidInputError, "latents:N:DIM:SEED"),
        ("latents:ten:16:0", InvalidInputError, "latents:N:DIM:SEED"),
        ("latents:0:16:0", EmptySourceError, "must be positive"),
        ("hf:only-a-name", InvalidInputError, "hf:NAME_OR_PATH:SPLIT"),
        ("folder:", InvalidInputError, "folder:PATH"),
        ("nosuchscheme:x", PluginLookupError, "no plugin can open"),
    ],
)
def test_bad_specs_say_what_would_be_right(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        open_source(spec)


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def saved_dataset(tmp_path: Path) -> Path:
    import datasets

    rows = {
        "label": [0, 1, 2],
        "picture": [
            {"bytes": png_bytes((255, 0, 0)), "path": None},
            {"bytes": png_bytes((0, 255, 0)), "path": None},
            {"bytes": b"corrupt bytes", "path": None},
        ],
        "name": ["red", "green", "broken"],
    }
    features = datasets.Features(
        {"label": datasets.Value("int64"), "picture": datasets.Image(), "name": datasets.Value("string")}
    )
    dataset_dict = datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows, features=features)})
    dataset_dict.save_to_disk(str(tmp_path / "ds"))
    return tmp_path / "ds"


def test_hf_spec_on_a_saved_dataset(saved_dataset: Path) -> None:
    source = open_source(f"hf:{saved_dataset}:validation", image_size=32)
    assert isinstance(source, DatasetSource)
    assert source.image_column == "picture"
    assert len(source) == 3 and source.key(1) == "validation/1"
    batch = source.load([0, 1, 2])
    assert batch.indices == [0, 1]
    assert [index for index, _ in batch.failures] == [2]
    assert "row 2" in batch.failures[0][1]
    images = source.images([1], size=32)
    assert images[0, :, 16, 16].tolist() == [0, 255, 0]
    assert source.spec == f"hf:{saved_dataset}:validation"
    assert open_source(source.spec, image_size=32).fingerprint() == source.fingerprint()
    with pytest.raises(InvalidInputError, match="no split 'test'"):
        open_source(f"hf:{saved_dataset}:test")


def test_dataset_object_with_key_column_and_errors(saved_dataset: Path) -> None:
    import datasets

    dataset = datasets.load_from_disk(str(saved_dataset))["validation"]
    source = DatasetSource(dataset, key_column="name", image_size=32, on_error="raise")
    assert source.key(0) == "red"
    with pytest.raises(InvalidInputError, match="no column 'pixels'"):
        DatasetSource(dataset, image_column="pixels")
    with pytest.raises(InvalidInputError, match=r"datasets\.Image"):
        DatasetSource(dataset.remove_columns("picture"))
    with pytest.raises(EmptySourceError):
        DatasetSource(dataset.select([]))
    assert DatasetSource(dataset.select([0, 1])).fingerprint() != DatasetSource(dataset).fingerprint()
