"""``folder:PATH``: ids, transparency, grey images, unreadable files, fingerprints, real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from milan_plugin.errors import EmptySourceError, InvalidInputError, UnreadableInputError
from milan_plugin.plugins import open_source
from milan_plugin.protocols import ExemplarSource
from milan_plugin.sources.folder import FolderSource
from milan_plugin.sources.images import IMAGENET_MEAN, IMAGENET_STD, NEUTRAL_GREY


def save(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def rgb(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    save(tmp_path / "b_class" / "z.PNG", rgb((255, 0, 0)))
    save(tmp_path / "b_class" / "nested" / "deep.jpeg", rgb((0, 255, 0)))
    save(tmp_path / "a_class" / "one.bmp", rgb((0, 0, 255)))
    save(tmp_path / "a_class" / "two.TIFF", rgb((9, 9, 9)))
    save(tmp_path / "a_class" / "three.webp", rgb((10, 20, 30)))
    save(tmp_path / "a_class" / "four.gif", rgb((200, 200, 200)).convert("P"))
    save(tmp_path / ".hidden" / "skip.png", rgb((1, 2, 3)))
    save(tmp_path / "a_class" / ".skip.png", rgb((1, 2, 3)))
    (tmp_path / "a_class" / "notes.txt").write_text("not an image")
    return tmp_path


def test_ids_are_sorted_relative_paths_recursive_case_insensitive(tree: Path) -> None:
    source = open_source(f"folder:{tree}")
    assert isinstance(source, FolderSource)
    assert isinstance(source, ExemplarSource)
    assert [source.key(i) for i in range(len(source))] == [
        "a_class/four.gif",
        "a_class/one.bmp",
        "a_class/three.webp",
        "a_class/two.TIFF",
        "b_class/nested/deep.jpeg",
        "b_class/z.PNG",
    ]
    assert source.spec == f"folder:{tree.resolve()}"
    assert len(open_source(source.spec)) == len(source)


def denormalise(inputs: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((inputs * std + mean) * 255).round().to(torch.uint8)


def test_load_gives_normalised_crop_and_images_the_same_crop(tree: Path) -> None:
    source = FolderSource(tree)
    batch = source.load([1, 5])
    assert batch.inputs.shape == (2, 3, 224, 224) and batch.inputs.dtype == torch.float32
    assert batch.indices == [1, 5] and batch.failures == []
    images = source.images([1, 5])
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 224, 224)
    assert torch.equal(denormalise(batch.inputs), images)
    assert images[1, :, 100, 100].tolist() == [255, 0, 0]
    assert source.images([1], size=64).shape == (1, 3, 64, 64)


def test_center_crop_follows_resize_256_crop_224(tmp_path: Path) -> None:
    picture = np.zeros((100, 200, 3), dtype=np.uint8)
    picture[:, :50] = 255  # the left quarter falls outside the centre crop
    save(tmp_path / "wide.png", Image.fromarray(picture))
    crop = FolderSource(tmp_path).images([0])[0]
    assert crop.shape == (3, 224, 224)
    assert int(crop.max()) == 0


def test_transparency_composited_over_grey_or_white(tmp_path: Path) -> None:
    cutout = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    cutout.paste((255, 0, 0, 255), (8, 8, 24, 24))
    save(tmp_path / "cutout.png", cutout)
    save(tmp_path / "la.png", Image.new("LA", (32, 32), (50, 0)))
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([10, 20, 30] + [0] * 765)
    palette.info["transparency"] = 0
    save(tmp_path / "palette.png", palette)
    grey = FolderSource(tmp_path).images([0, 1, 2])
    expected_grey = list(NEUTRAL_GREY)
    assert grey[0, :, 2, 2].tolist() == expected_grey
    assert grey[0, :, 112, 112].tolist() == [255, 0, 0]
    assert grey[1, :, 2, 2].tolist() == expected_grey
    assert grey[2, :, 2, 2].tolist() == expected_grey
    white = FolderSource(tmp_path, background="white").images([0])
    assert white[0, :, 2, 2].tolist() == [255, 255, 255]


def test_grayscale_and_16_bit_become_rgb(tmp_path: Path) -> None:
    save(tmp_path / "grey.png", Image.new("L", (20, 20), 77))
    save(tmp_path / "deep.png", Image.fromarray(np.full((20, 20), 256 * 200, dtype=np.uint16)))
    images = FolderSource(tmp_path).images([0, 1])
    assert images[1, :, 5, 5].tolist() == [77, 77, 77]
    assert images[0, :, 5, 5].tolist() == [200, 200, 200]


def test_unreadable_files_are_reported_not_fatal(tree: Path) -> None:
    (tree / "a_class" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    truncated = save(tree / "b_class" / "truncated.png", rgb((1, 1, 1), (200, 200)))
    truncated.write_bytes(truncated.read_bytes()[:60])
    source = FolderSource(tree)
    broken = source.paths.index("a_class/broken.jpg")
    cut = source.paths.index("b_class/truncated.png")
    batch = source.load(range(len(source)))
    assert [index for index, _ in batch.failures] == [broken, cut]
    assert "broken.jpg" in batch.failures[0][1] and "cannot read" in batch.failures[0][1]
    assert batch.indices == [i for i in range(len(source)) if i not in (broken, cut)]
    assert batch.inputs.shape[0] == len(source) - 2
    strict = FolderSource(tree, on_error="raise")
    with pytest.raises(UnreadableInputError, match=r"broken\.jpg"):
        strict.load([broken])
    with pytest.raises(UnreadableInputError):
        source.images([cut])


def test_empty_and_missing_folders_raise_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(EmptySourceError, match="no image files"):
        open_source(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(InvalidInputError, match="not a directory"):
        open_source(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(InvalidInputError, match="on_error"):
        FolderSource(tmp_path, on_error="ignore")


def test_fingerprint_tracks_files_and_settings(tree: Path) -> None:
    first = FolderSource(tree).fingerprint()
    assert FolderSource(tree).fingerprint() == first
    assert FolderSource(tree, image_size=160).fingerprint() != first
    assert FolderSource(tree, background="white").fingerprint() != first
    target = tree / "a_class" / "one.bmp"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    assert FolderSource(tree).fingerprint() != first
    hashed = FolderSource(tree, content_hash=True).fingerprint()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 20_000_000))
    assert FolderSource(tree, content_hash=True).fingerprint() == hashed
    save(target, rgb((0, 0, 254)))
    assert FolderSource(tree, content_hash=True).fingerprint() != hashed


def test_real_photos(photo_folder: Path) -> None:
    source = open_source(f"folder:{photo_folder}", image_size=224)
    assert len(source) > 700
    batch = source.load(range(0, len(source), 50))
    assert batch.failures == []
    assert batch.inputs.shape == (len(batch.indices), 3, 224, 224)
    assert torch.isfinite(batch.inputs).all()
    assert source.key(0).endswith(".png")


def _lambda_with(offset: float):
    return lambda image: image + offset


class _Shift:
    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self, image):
        return image + self.offset


def test_a_lambda_transform_fingerprints_by_what_it_computes_not_where_it_lives(tree: Path) -> None:
    first = FolderSource(tree, transform=lambda image: image * 2).fingerprint()
    assert FolderSource(tree, transform=lambda image: image * 2).fingerprint() == first
    assert FolderSource(tree, transform=lambda image: image * 3).fingerprint() != first
    assert FolderSource(tree, transform=_lambda_with(1.0)).fingerprint() == (
        FolderSource(tree, transform=_lambda_with(1.0)).fingerprint()
    )
    assert FolderSource(tree, transform=_lambda_with(1.0)).fingerprint() != (
        FolderSource(tree, transform=_lambda_with(2.0)).fingerprint()
    )
    assert FolderSource(tree, transform=_Shift(1.0)).fingerprint() == (
        FolderSource(tree, transform=_Shift(1.0)).fingerprint()
    )
    assert FolderSource(tree, transform=_Shift(1.0)).fingerprint() != (
        FolderSource(tree, transform=_Shift(2.0)).fingerprint()
    )
