"""The generic torch-module adapter: cloned hook outputs, one forward for all layers, ablation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from milan_plugin.adapters.torch_module import TorchModuleAdapter
from torch import nn

from milan_plugin.errors import InvalidInputError, UnknownLayerError
from milan_plugin.plugins import get_adapter
from milan_plugin.protocols import ModelAdapter


def alexnet_style() -> nn.Module:
    """Conv -> ReLU(inplace=True), the pattern that aliased conv outputs in the MILAN reference."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 4, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    ).eval()


class CountingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = alexnet_style()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.body(x)


def test_captured_conv_output_is_pre_relu_despite_inplace_relu() -> None:
    model = alexnet_style()
    adapter = TorchModuleAdapter(model)
    x = torch.randn(2, 3, 16, 16)
    out = adapter.run(x, ["0", "1"])
    expected_conv = model[0](x)
    assert (out["0"] < 0).any(), "a conv output with no negative values would not show the aliasing"
    torch.testing.assert_close(out["0"], expected_conv.detach())
    torch.testing.assert_close(out["1"], expected_conv.clamp(min=0).detach())


def test_all_layers_captured_in_one_forward_and_shapes() -> None:
    model = CountingModel().eval()
    adapter = TorchModuleAdapter(model)
    out = adapter.run(torch.randn(3, 3, 16, 16), ["body.0", "body.2", "body.6"])
    assert model.calls == 1
    assert out["body.0"].shape == (3, 8, 16, 16)
    assert out["body.2"].shape == (3, 4, 8, 8)
    assert out["body.6"].shape == (3, 5, 1, 1), "(B, units) outputs become 1x1 maps"
    assert all(tensor.dtype == torch.float32 and not tensor.requires_grad for tensor in out.values())


def test_unknown_layer_lists_closest_names_before_running() -> None:
    model = CountingModel()
    adapter = TorchModuleAdapter(model)
    with pytest.raises(UnknownLayerError, match=r"body\.2") as info:
        adapter.run(torch.randn(1, 3, 8, 8), ["body.2", "body.22"])
    assert "body.2" in info.value.suggestions
    assert model.calls == 0


class TupleBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x * 3


@dataclasses.dataclass
class Output:
    scores: torch.Tensor
    features: torch.Tensor


class DataclassBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> Output:
        return Output(scores=x.mean(dim=(2, 3)), features=x + 1)


class StructuredModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = TupleBlock()
        self.record = DataclassBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        doubled, _ = self.pair(x)
        return self.record(doubled).features.sum()


def test_tuple_and_dataclass_outputs_first_tensor_or_selector() -> None:
    model = StructuredModel()
    x = torch.randn(2, 3, 4, 4)
    default = TorchModuleAdapter(model).run(x, ["pair", "record"])
    torch.testing.assert_close(default["pair"], x * 2)
    torch.testing.assert_close(default["record"], (x * 2).mean(dim=(2, 3))[:, :, None, None])
    chosen = TorchModuleAdapter(model, output_selector={"pair": 1, "record": "features"}).run(
        x, ["pair", "record"]
    )
    torch.testing.assert_close(chosen["pair"], x * 3)
    torch.testing.assert_close(chosen["record"], x * 2 + 1)


def test_channel_dim_moves_token_units_to_dim_one() -> None:
    model = nn.Sequential(nn.Linear(6, 4))
    adapter = TorchModuleAdapter(model, channel_dim={"0": -1})
    tokens = torch.randn(2, 5, 6)
    out = adapter.run(tokens, ["0"])["0"]
    assert out.shape == (2, 4, 5)
    torch.testing.assert_close(out, model(tokens).transpose(1, 2).detach())


def test_ablate_zeroes_units_and_is_removed_even_on_error() -> None:
    model = alexnet_style()
    adapter = TorchModuleAdapter(model)
    x = torch.randn(2, 3, 16, 16)
    before = adapter.run(x, ["2"])["2"]
    with adapter.ablate("2", [1, 3]):
        ablated = adapter.run(x, ["2"])["2"]
        logits_ablated = model(x)
    assert torch.all(ablated[:, [1, 3]] == 0)
    torch.testing.assert_close(ablated[:, [0, 2]], before[:, [0, 2]])
    assert not torch.allclose(logits_ablated, model(x))
    with pytest.raises(RuntimeError, match="boom"), adapter.ablate("2", [0]):
        raise RuntimeError("boom")
    assert not model[2]._forward_hooks, "ablation hook left behind after an exception"
    torch.testing.assert_close(adapter.run(x, ["2"])["2"], before)
    with pytest.raises(InvalidInputError, match="has 4 units"), adapter.ablate("2", [9]):
        model(x)


def test_ablate_keeps_gradients_flowing() -> None:
    model = alexnet_style()
    adapter = TorchModuleAdapter(model)
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    with adapter.ablate("0", [0]):
        model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_fingerprint_follows_weights_and_mode_is_left_alone() -> None:
    model = alexnet_style()
    adapter = TorchModuleAdapter(model)
    first = adapter.fingerprint()
    assert first == TorchModuleAdapter(alexnet_style()).fingerprint()
    with_batch_norm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    with pytest.warns(UserWarning, match="training mode"):
        TorchModuleAdapter(with_batch_norm).run(torch.randn(2, 3, 8, 8), ["0"])
    assert with_batch_norm.training, "the adapter must not switch the user's model to eval mode"
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3
    assert adapter.fingerprint() != first


def test_inputs_follow_model_device_and_protocol() -> None:
    model = alexnet_style().to(torch.float64)
    adapter = get_adapter(model)
    assert isinstance(adapter, ModelAdapter)
    assert get_adapter(adapter) is adapter
    assert adapter.device == torch.device("cpu")
    out = adapter.run(torch.randn(1, 3, 8, 8, dtype=torch.float64), ["0"])
    assert out["0"].dtype == torch.float32
    assert adapter.generative is False
    with pytest.raises(InvalidInputError, match="not a generative model"):
        adapter.render(torch.randn(1, 3))


def test_default_layers_and_aliases() -> None:
    model = StructuredModel()
    adapter = TorchModuleAdapter(model, aliases={"doubling": "pair"})
    assert adapter.default_layers() == [], "children without parameters are not default layers"
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(adapter.run(x, ["doubling"])["doubling"], x * 2)
    conv_model = alexnet_style()
    assert TorchModuleAdapter(nn.Sequential(conv_model)).default_layers() == ["0"]
    with pytest.raises(UnknownLayerError):
        TorchModuleAdapter(model, default_layers=["nope"])
