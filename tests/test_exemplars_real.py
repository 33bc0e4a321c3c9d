"""Acceptance 1: exemplars equal an independent brute-force computation.

The real-model check (ImageNet MobileNetV2 over 320 real photos) runs in the slow suite, since it
needs two full passes plus decoding on two shared cores; the default suite runs the same checks on
a small random CNN.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from milan_plugin.exemplars import compute_exemplars
from milan_plugin.sources.folder import FolderSource
from milan_plugin.sources.tensors import TensorSource

K = 15
BATCH = 64


def brute_force(model: nn.Module, layers: list[str], source, count: int) -> dict[str, torch.Tensor]:
    """Every activation of every layer over the first ``count`` inputs, with plain forward hooks."""
    captured: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    modules = dict(model.named_modules())
    handles = [
        modules[layer].register_forward_hook(
            lambda module, args, output, layer=layer: captured[layer].append(output.detach().clone())
        )
        for layer in layers
    ]
    try:
        with torch.no_grad():
            for start in range(0, count, BATCH):
                model(source.load(list(range(start, min(start + BATCH, count)))).inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {layer: torch.cat(parts) for layer, parts in captured.items()}


def check_against_brute_force(model: nn.Module, layers: list[str], source, count: int) -> None:
    results = compute_exemplars(
        model, layers, source, k=K, batch_size=BATCH, progress=False, indices=range(count)
    )
    exact = brute_force(model, layers, source, count)
    for layer in layers:
        exemplars = results[layer]
        activations = exact[layer]  # (N, U, H, W)
        units = activations.shape[1]
        assert exemplars.units.tolist() == list(range(units))
        peaks = activations.amax(dim=(2, 3)).T  # (U, N)
        ids = torch.arange(count).expand(units, count)
        # value descending, then index ascending: a stable sort on value keeps index order in ties
        order = torch.sort(peaks, dim=1, descending=True, stable=True).indices[:, :K]
        torch.testing.assert_close(exemplars.activations, peaks.gather(1, order), rtol=1e-5, atol=0)
        assert torch.equal(exemplars.ids, ids.gather(1, order)), layer
        assert exemplars.keys[0][0] == source.key(int(exemplars.ids[0, 0]))

        positions = activations.transpose(0, 1).reshape(units, -1)
        for start in range(0, units, 256):  # torch.quantile takes at most 2**24 elements
            chunk = positions[start : start + 256]
            low = torch.quantile(chunk, 0.989, dim=1)
            high = torch.quantile(chunk, 0.991, dim=1)
            threshold = exemplars.thresholds[start : start + 256]
            assert bool(((threshold >= low) & (threshold <= high)).all()), layer

        for unit in (0, units // 2, units - 1):
            row = exemplars.row(unit)
            maps = activations[exemplars.ids[row], unit]
            torch.testing.assert_close(exemplars.maps[row], maps, rtol=1e-5, atol=0)
            upsampled = F.interpolate(maps[:, None], size=(224, 224), mode="bilinear", align_corners=False)[
                :, 0
            ]
            assert torch.equal(exemplars.masks(unit), upsampled > exemplars.thresholds[row])
        assert exemplars.settings["inputs"] == count


@pytest.mark.slow
def test_real_mobilenet_over_real_photos_matches_brute_force(mobilenet_v2, photo_folder):
    folder = FolderSource(photo_folder)
    assert len(folder) >= 320
    check_against_brute_force(mobilenet_v2, ["features.7", "features.18"], folder, 320)


def test_small_random_cnn_matches_brute_force():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 16, 5, stride=4, padding=2),
            relu1=nn.ReLU6(),
            conv2=nn.Conv2d(16, 32, 3, stride=2, padding=1),
        )
    ).eval()
    images = torch.rand(300, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    check_against_brute_force(model, ["relu1", "conv2"], TensorSource(images, image_size=48), 300)
