"""Generative adapter: inner-layer activations, rendered images, and exemplars from latents."""

from __future__ import annotations

import pytest
import torch
from milan_plugin.adapters.generative import GenerativeAdapter, to_uint8_images
from torch import nn

from milan_plugin.errors import InvalidInputError
from milan_plugin.plugins import get_adapter, open_source


class TinyGenerator(nn.Module):
    """latent (B, 8) -> block (B, 6, 4, 4) -> image (B, 3, 16, 16) in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = nn.Linear(8, 6 * 4 * 4)
        self.block = nn.Sequential(nn.Unflatten(1, (6, 4, 4)), nn.ReLU())
        self.to_image = nn.Sequential(nn.Upsample(scale_factor=4), nn.Conv2d(6, 3, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.block(self.project(z)))


def test_render_maps_output_range_to_bytes() -> None:
    generator = TinyGenerator().eval()
    adapter = GenerativeAdapter(generator)
    assert adapter.generative is True
    assert get_adapter(adapter) is adapter
    z = torch.randn(5, 8)
    images = adapter.render(z)
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 16, 16)
    expected = ((generator(z).detach() + 1) / 2 * 255).round().to(torch.uint8)
    assert torch.equal(images, expected)
    assert adapter.run(z, ["block"])["block"].shape == (5, 6, 4, 4)


def test_output_ranges_and_bad_outputs() -> None:
    pixels = torch.tensor([0.0, 0.5, 1.0, 1.5]).view(1, 1, 2, 2)
    assert to_uint8_images(pixels, 0.0, 1.0)[0, 0].flatten().tolist() == [0, 128, 255, 255]
    sigmoid_model = nn.Sequential(nn.Linear(4, 3 * 2 * 2), nn.Unflatten(1, (3, 2, 2)), nn.Sigmoid())
    rendered = GenerativeAdapter(sigmoid_model, output_range="sigmoid").render(torch.zeros(1, 4))
    expected = (sigmoid_model(torch.zeros(1, 4)).detach() * 255).round().to(torch.uint8)
    assert torch.equal(rendered, expected)
    with pytest.raises(InvalidInputError, match="output_range"):
        GenerativeAdapter(sigmoid_model, output_range="percent")
    with pytest.raises(InvalidInputError, match=r"\(B, 3, H, W\)"):
        GenerativeAdapter(nn.Linear(4, 5)).render(torch.zeros(1, 4))


def test_exemplars_of_a_generator_render_their_images() -> None:
    from milan_plugin import compute_exemplars

    adapter = GenerativeAdapter(TinyGenerator().eval())
    source = open_source("latents:40:8:3")
    sets = compute_exemplars(adapter, ["block"], source, k=4, batch_size=16, progress=False)
    exemplars = sets["block"]
    assert len(exemplars) == 6
    unit = 2
    ids = exemplars.ids[exemplars.row(unit)].tolist()
    images = exemplars.images(unit, size=16)
    assert torch.equal(images, adapter.render(source.load(ids).inputs))
    maps = adapter.run(source.load(ids).inputs, ["block"])["block"][:, unit]
    torch.testing.assert_close(maps.amax(dim=(1, 2)), exemplars.activations[exemplars.row(unit)])
