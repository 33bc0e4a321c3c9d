"""The ``milan exemplars`` command (with pictures, resuming) and a smoke run of the benchmark."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from milan_plugin.cli import main
from milan_plugin.exemplars import ExemplarSet


@pytest.fixture
def few_photos(tmp_path, copy_photos):
    return copy_photos(tmp_path / "photos", 5)


def test_cli_writes_sets_and_pictures_and_serves_a_rerun(tmp_path, few_photos, mobilenet_v2, capsys):
    out = tmp_path / "out"
    argv = [
        "exemplars",
        "--model",
        "torchvision:mobilenet_v2:IMAGENET1K_V1",
        "--layers",
        "features.16,features.18",
        "--source",
        f"folder:{few_photos}",
        "--out",
        str(out),
        "--k",
        "3",
        "--units",
        "0,7",
        "--viz",
        "--no-progress",
    ]
    assert main(argv) == 0
    exemplars = ExemplarSet.load(out / "features.18")
    assert exemplars.units.tolist() == [0, 7] and exemplars.k == 3
    assert (out / "features.18" / "viz" / "unit_7" / "image_2.png").is_file()
    page = (out / "features.18" / "viz" / "index.html").read_text()
    assert "unit 7" in page and "unit_0/image_0.png" in page
    images = exemplars.images(7, size=64)  # read back through the stored folder spec
    assert images.shape == (3, 3, 64, 64) and images.dtype == torch.uint8
    capsys.readouterr()
    assert main(argv) == 0
    assert "features.16: 2 units" in capsys.readouterr().out
    assert main([*argv[:4], "features.99", *argv[5:]]) == 2


def test_benchmark_smoke():
    command = [
        sys.executable,
        "-m",
        "milan_plugin.bench",
        "exemplars",
        "--images",
        "4",
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--memory-images",
        "2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    assert "engine/forward = " in result.stdout
    assert "4x/1x = " in result.stdout
    assert "device cpu" in result.stdout and "peak RSS" in result.stdout


def test_benchmark_refuses_a_device_it_cannot_use():
    from milan_plugin.bench.exemplars import resolve_device
    from milan_plugin.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not a device"):
        resolve_device("gpu0")
    with pytest.raises(InvalidInputError, match="only cpu and cuda"):
        resolve_device("meta")
