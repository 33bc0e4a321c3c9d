"""ViT token -> patch-grid layout: a planted activation on patch (r, c) lands at (r, c) of the map.

The plant: the first MLP linear of a block is edited so that unit ``UNIT`` reads the mean of its
input token, and a pre-hook replaces the MLP's input with zeros except token ``prefix + r*cols + c``
(ones) and the CLS token (a different value, so a kept CLS token would show up on the map).
"""

from __future__ import annotations

import pytest
import torch
from milan_plugin.adapters.vit import ViTAdapter, tokens_to_grid
from torch import nn

from milan_plugin.errors import InvalidInputError
from milan_plugin.plugins import get_adapter

UNIT = 3
CLS_VALUE = 7.0


def plant(
    linear: nn.Linear, prefix: int, rows: int, cols: int, r: int, c: int
) -> torch.utils.hooks.RemovableHandle:
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[UNIT] = 1.0 / linear.in_features

    def replace_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        tokens = torch.zeros_like(args[0])
        assert tokens.shape[1] == prefix + rows * cols
        tokens[:, 0] = CLS_VALUE
        tokens[:, prefix + r * cols + c] = 1.0
        return (tokens,)

    return linear.register_forward_pre_hook(replace_input)


def assert_planted_at(activation: torch.Tensor, rows: int, cols: int, r: int, c: int) -> None:
    assert activation.shape[-2:] == (rows, cols)
    grid = activation[0, UNIT]
    expected = torch.zeros(rows, cols)
    expected[r, c] = 1.0
    torch.testing.assert_close(grid, expected)
    assert torch.all(activation[:, [u for u in range(activation.shape[1]) if u != UNIT]] == 0)


def small_torchvision_vit() -> nn.Module:
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    ).eval()


@pytest.mark.parametrize(("r", "c"), [(1, 2), (0, 0), (3, 3), (2, 0)])
def test_torchvision_vit_planted_patch_lands_on_its_cell(r: int, c: int) -> None:
    model = small_torchvision_vit()
    adapter = get_adapter(model)
    assert isinstance(adapter, ViTAdapter)
    assert adapter.default_layers() == [
        "encoder.layers.encoder_layer_0.mlp.0",
        "encoder.layers.encoder_layer_1.mlp.0",
    ]
    layer = adapter.default_layers()[1]
    handle = plant(adapter.module(layer), prefix=1, rows=4, cols=4, r=r, c=c)
    try:
        out = adapter.run(torch.randn(2, 3, 64, 64), [layer, "blocks.1.mlp.fc1"])
    finally:
        handle.remove()
    assert out[layer].shape == (2, 64, 4, 4)
    assert_planted_at(out[layer], 4, 4, r, c)
    torch.testing.assert_close(out["blocks.1.mlp.fc1"], out[layer])


def hf_model(model_type: str) -> nn.Module:
    import transformers

    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=64,
        patch_size=16,
    )
    torch.manual_seed(0)
    if model_type == "vit":
        return transformers.ViTForImageClassification(transformers.ViTConfig(**common)).eval()
    if model_type == "vit-base":
        return transformers.ViTModel(transformers.ViTConfig(**common)).eval()
    if model_type == "deit":
        return transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(**common)).eval()
    config = transformers.Dinov2WithRegistersConfig(**common, num_register_tokens=4)
    return transformers.Dinov2WithRegistersModel(config).eval()


@pytest.mark.parametrize(
    ("model_type", "prefix", "layer"),
    [
        ("vit", 1, "vit.layers.1.mlp.fc1"),
        ("vit-base", 1, "layers.0.mlp.fc1"),
        ("deit", 2, "deit.layers.1.mlp.fc1"),
        ("dinov2-registers", 5, "encoder.layer.1.mlp.fc1"),
    ],
)
def test_transformers_vit_planted_patch_lands_on_its_cell(model_type: str, prefix: int, layer: str) -> None:
    model = hf_model(model_type)
    adapter = get_adapter(model)
    assert isinstance(adapter, ViTAdapter)
    assert adapter.prefix_tokens == prefix
    assert layer in adapter.default_layers()
    r, c = 2, 1
    handle = plant(adapter.module(layer), prefix=prefix, rows=4, cols=4, r=r, c=c)
    try:
        out = adapter.run(torch.randn(1, 3, 64, 64), [layer])[layer]
    finally:
        handle.remove()
    assert out.shape == (1, adapter.module(layer).out_features, 4, 4)
    assert_planted_at(out, 4, 4, r, c)


def test_tokens_to_grid_drops_the_first_token_not_the_last() -> None:
    tokens = torch.arange(1 + 6, dtype=torch.float32).view(1, 7, 1)
    grid = tokens_to_grid(tokens, prefix_tokens=1, rows=2, cols=3)
    assert grid[0, 0].tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(InvalidInputError, match="needs 7"):
        tokens_to_grid(tokens[:, :6], prefix_tokens=1, rows=2, cols=3)


def test_vit_ablation_zeroes_a_hidden_unit_on_every_token() -> None:
    model = small_torchvision_vit()
    adapter = get_adapter(model)
    layer = "blocks.0.mlp.fc1"
    x = torch.randn(1, 3, 64, 64)
    before = adapter.run(x, [layer])[layer]
    encoded = adapter.run(x, ["encoder.ln"])["encoder.ln"]
    with adapter.ablate(layer, [5]):
        after = adapter.run(x, [layer, "encoder.ln"])
    assert torch.all(after[layer][:, 5] == 0)
    torch.testing.assert_close(after[layer][:, :5], before[:, :5])
    assert not torch.allclose(after["encoder.ln"], encoded), "the ablation must reach later layers"


def test_non_token_layers_keep_the_generic_layout() -> None:
    adapter = get_adapter(small_torchvision_vit())
    out = adapter.run(torch.randn(1, 3, 64, 64), ["conv_proj", "heads"])
    assert out["conv_proj"].shape == (1, 32, 4, 4)
    assert out["heads"].shape == (1, 1000, 1, 1)


@pytest.mark.slow
def test_vit_b_16_random_init_planted_patch() -> None:
    from torchvision.models import vit_b_16

    model = vit_b_16().eval()
    adapter = get_adapter(model)
    assert adapter.name == "torchvision:vit_b_16"
    layer = "blocks.3.mlp.fc1"
    handle = plant(adapter.module(layer), prefix=1, rows=14, cols=14, r=5, c=11)
    try:
        out = adapter.run(torch.randn(1, 3, 224, 224), [layer])[layer]
    finally:
        handle.remove()
    assert_planted_at(out, 14, 14, 5, 11)
