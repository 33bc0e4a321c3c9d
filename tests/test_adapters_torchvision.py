"""torchvision presets: recognition, names, default layers, and loading without downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from milan_plugin.adapters.torchvision_presets import MissingWeightsError

from milan_plugin.errors import InvalidInputError, MilanError, UnknownLayerError
from milan_plugin.plugins import get_adapter, load_model

RESNET_LAYERS = ["conv1", "layer1", "layer2", "layer3", "layer4"]
PRESETS = [
    ("resnet18", "torchvision:resnet18", RESNET_LAYERS),
    ("resnet50", "torchvision:resnet50", RESNET_LAYERS),
    ("resnext50_32x4d", "torchvision:resnet", RESNET_LAYERS),
    ("alexnet", "torchvision:alexnet", [f"features.{i}" for i in (0, 3, 6, 8, 10)]),
    ("vgg11_bn", "torchvision:vgg11_bn", [f"features.{i}" for i in (0, 4, 11, 18, 25)]),
    ("vgg16", "torchvision:vgg16", [f"features.{i}" for i in (2, 7, 14, 21, 28)]),
    ("mobilenet_v2", "torchvision:mobilenet_v2", [f"features.{i}" for i in (1, 3, 6, 13, 18)]),
    ("mobilenet_v3_large", "torchvision:mobilenet_v3_large", [f"features.{i}" for i in (1, 3, 6, 12, 16)]),
    ("efficientnet_b0", "torchvision:efficientnet", [f"features.{i}" for i in (1, 2, 3, 5, 8)]),
    (
        "densenet121",
        "torchvision:densenet121",
        [
            "features.relu0",
            "features.denseblock1",
            "features.denseblock2",
            "features.denseblock3",
            "features.norm5",
        ],
    ),
    ("convnext_tiny", "torchvision:convnext", [f"features.{i}" for i in (1, 3, 5, 7)]),
]


@pytest.mark.parametrize(("arch", "name", "layers"), PRESETS)
def test_presets_name_and_default_layers(arch: str, name: str, layers: list[str]) -> None:
    with torch.device("meta"):  # structure only: no time spent initialising weights
        model = torchvision.models.get_model(arch)
    adapter = get_adapter(model)
    assert adapter.name == name
    assert adapter.default_layers() == layers
    assert set(layers) <= set(adapter.layer_names())


def test_default_layers_run_at_decreasing_resolution() -> None:
    model = torchvision.models.mobilenet_v2().eval()
    adapter = get_adapter(model)
    out = adapter.run(torch.randn(1, 3, 64, 64), adapter.default_layers())
    sizes = [tensor.shape[-1] for tensor in out.values()]
    assert sizes == [32, 16, 8, 4, 2]


def test_reference_layer_aliases() -> None:
    alexnet = get_adapter(torchvision.models.alexnet().eval())
    out = alexnet.run(torch.randn(1, 3, 96, 96), ["conv2", "features.4"])
    torch.testing.assert_close(out["conv2"].clamp(min=0), out["features.4"])
    with torch.device("meta"):
        vgg = get_adapter(torchvision.models.vgg11())
    assert vgg.resolve("conv5_2") == "features.18"
    with pytest.raises(UnknownLayerError, match="layer4"):
        get_adapter(torchvision.models.resnet18()).run(torch.randn(1, 3, 32, 32), ["layer5"])


def test_load_model_with_offline_weights(mobilenet_v2: torch.nn.Module) -> None:
    model = load_model("torchvision:mobilenet_v2:IMAGENET1K_V1")
    assert not model.training
    adapter = get_adapter(model)
    assert adapter.name == "torchvision:mobilenet_v2"
    assert adapter.fingerprint() == get_adapter(mobilenet_v2).fingerprint()
    random_model = load_model("torchvision:mobilenet_v2")
    assert get_adapter(random_model).fingerprint() != adapter.fingerprint()


def test_missing_weights_never_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(MissingWeightsError, match=r"resnet18-f37072fd\.pth") as info:
        load_model("torchvision:resnet18:IMAGENET1K_V1")
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value, MilanError)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torchvision:resnt18", "Closest names: resnet18"),
        ("torchvision:resnet18:IMAGENET9K", "choose one of DEFAULT, IMAGENET1K_V1"),
        ("torchvision:resnet18:a:b", "torchvision:NAME"),
    ],
)
def test_bad_model_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load_model(spec)


def test_other_schemes_are_not_ours() -> None:
    from milan_plugin.adapters import builtin

    assert builtin.milan_load_model(spec="synth:planted", options={}) is None
    assert builtin.milan_model_adapter(model="not a model") is None
