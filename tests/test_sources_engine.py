"""Real sources through the real engine: real photos, a real pretrained CNN, bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from milan_plugin import compute_exemplars
from milan_plugin.errors import EmptySourceError, InvalidInputError, UnreadableInputError
from milan_plugin.plugins import open_source
from milan_plugin.sources.tensors import TensorSource


@pytest.fixture
def photos_with_a_broken_file(photo_folder: Path, tmp_path: Path) -> Path:
    photos = sorted(photo_folder.rglob("*.png"))[::40][:16]
    for number, photo in enumerate(photos):
        shutil.copyfile(photo, tmp_path / f"photo-{number:02d}.png")
    (tmp_path / "photo-99-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return tmp_path


def test_real_photos_through_mobilenet_skip_and_count_unreadable(
    mobilenet_v2: torch.nn.Module, photos_with_a_broken_file: Path
) -> None:
    spec = f"folder:{photos_with_a_broken_file}"
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable input.*photo-99-broken\.png"):
        sets = compute_exemplars(mobilenet_v2, ["features.13"], spec, k=5, batch_size=8, progress=False)
    exemplars = sets["features.13"]
    assert exemplars.settings["unreadable"] == 1
    assert exemplars.settings["inputs"] == 16
    assert exemplars.settings["model"] == "torchvision:mobilenet_v2"
    assert exemplars.maps.shape[1:] == (5, 14, 14)
    assert "photo-99-broken.png" not in {key for row in exemplars.keys for key in row}
    source = open_source(spec)
    unit = int(exemplars.units[7])
    ids = exemplars.ids[exemplars.row(unit)].tolist()
    assert torch.equal(exemplars.images(unit, size=224), source.images(ids, size=224))
    activations = mobilenet_v2.features[:14](source.load(ids).inputs)[:, unit]
    torch.testing.assert_close(activations.amax(dim=(1, 2)), exemplars.activations[exemplars.row(unit)])
    with pytest.raises(UnreadableInputError, match=r"photo-99-broken\.png"):
        compute_exemplars(
            mobilenet_v2, ["features.13"], spec, k=5, batch_size=32, progress=False, on_unreadable="raise"
        )


def test_bad_sources_fail_clearly_before_any_work(mobilenet_v2: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(EmptySourceError, match="no image files"):
        compute_exemplars(mobilenet_v2, ["features.13"], f"folder:{tmp_path}", k=5, progress=False)
    with pytest.raises(InvalidInputError, match="expected images shaped"):
        TensorSource(torch.rand(10, 1000))
    with pytest.raises(EmptySourceError):
        compute_exemplars(mobilenet_v2, ["features.13"], "latents:0:8:0", k=5, progress=False)
