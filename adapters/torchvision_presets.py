"""torchvision CNNs: recognised by class, named ``torchvision:<arch>``, with default layers.

Default layers follow the MILAN paper where it fixed them and otherwise take the output of each
resolution stage (the last block before every downsampling, plus the final block):

========================  =================================================================
ResNet / ResNeXt / Wide   ``conv1, layer1, layer2, layer3, layer4`` (the paper's choice)
AlexNet                   the five convs ``features.{0,3,6,8,10}`` (aliases ``conv1..conv5``)
VGG                       the last conv of each of the five blocks (aliases ``conv<b>_<i>``)
MobileNetV2/V3, EfficientNet, DenseNet, ConvNeXt   stage outputs inside ``features``
========================  =================================================================

Because the generic adapter clones hook outputs, AlexNet and VGG convs are read *before* their
in-place ReLU. The reference code read them after it by accident; name the ReLU module
(``features.1`` for AlexNet ``conv1``) for those values. Masks and top-k rankings agree whenever
the unit's threshold is positive, since ReLU is monotone.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from milan_plugin.adapters.torch_module import TorchModuleAdapter
from torch import nn

from milan_plugin.errors import InvalidInputError, MilanError, closest

#: Architecture names of models built by :func:`load_torchvision_model`, so the adapter can name
#: them exactly without guessing from their structure.
_LOADED_NAMES: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()

_RESNET_NAMES = {
    ("BasicBlock", (2, 2, 2, 2)): "resnet18",
    ("BasicBlock", (3, 4, 6, 3)): "resnet34",
    ("Bottleneck", (3, 4, 6, 3)): "resnet50",
    ("Bottleneck", (3, 4, 23, 3)): "resnet101",
    ("Bottleneck", (3, 8, 36, 3)): "resnet152",
}
_VGG_NAMES = {8: "vgg11", 10: "vgg13", 13: "vgg16", 16: "vgg19"}
_DENSENET_NAMES = {
    (6, 12, 24, 16): "densenet121",
    (6, 12, 36, 24): "densenet161",
    (6, 12, 32, 32): "densenet169",
    (6, 12, 48, 32): "densenet201",
}


class MissingWeightsError(MilanError, FileNotFoundError):
    """Pretrained weights that are not in the local torch hub cache (nothing is downloaded)."""


def torchvision_adapter(model: nn.Module) -> TorchModuleAdapter | None:
    """The preset adapter for a torchvision CNN, or ``None`` for any other model."""
    import torchvision.models as tvm

    recognised: list[tuple[type, Any]] = [
        (tvm.ResNet, _resnet),
        (tvm.AlexNet, _alexnet),
        (tvm.VGG, _vgg),
        (tvm.MobileNetV2, _stages("mobilenet_v2")),
        (tvm.MobileNetV3, _stages(None)),
        (tvm.EfficientNet, _stages(None)),
        (tvm.DenseNet, _stages(None)),
        (tvm.ConvNeXt, _stages(None)),
    ]
    for cls, preset in recognised:
        if isinstance(model, cls):
            arch, layers, aliases = preset(model)
            arch = _LOADED_NAMES.get(model, arch)
            return TorchModuleAdapter(
                model, name=f"torchvision:{arch}", default_layers=layers, aliases=aliases
            )
    return None


def _resnet(model: nn.Module) -> tuple[str, list[str], dict[str, str]]:
    blocks = (model.layer1, model.layer2, model.layer3, model.layer4)
    block_type = type(model.layer1[0]).__name__
    plain = getattr(model, "groups", 1) == 1 and getattr(model, "base_width", 64) == 64
    arch = _RESNET_NAMES.get((block_type, tuple(len(stage) for stage in blocks))) if plain else None
    return arch or "resnet", ["conv1", "layer1", "layer2", "layer3", "layer4"], {}


def _alexnet(model: nn.Module) -> tuple[str, list[str], dict[str, str]]:
    convs = [f"features.{i}" for i, layer in enumerate(model.features) if isinstance(layer, nn.Conv2d)]
    return "alexnet", convs, {f"conv{n}": name for n, name in enumerate(convs, start=1)}


def _vgg(model: nn.Module) -> tuple[str, list[str], dict[str, str]]:
    aliases: dict[str, str] = {}
    block_ends: list[str] = []
    block, conv_in_block, last_conv = 1, 0, None
    for i, layer in enumerate(model.features):
        if isinstance(layer, nn.Conv2d):
            conv_in_block += 1
            last_conv = f"features.{i}"
            aliases[f"conv{block}_{conv_in_block}"] = last_conv
        elif isinstance(layer, nn.MaxPool2d) and last_conv is not None:
            block_ends.append(last_conv)
            block, conv_in_block, last_conv = block + 1, 0, None
    if last_conv is not None:
        block_ends.append(last_conv)
    n_convs = sum(isinstance(layer, nn.Conv2d) for layer in model.features)
    batch_norm = any(isinstance(layer, nn.BatchNorm2d) for layer in model.features)
    arch = _VGG_NAMES.get(n_convs, "vgg")
    return arch + ("_bn" if batch_norm and arch != "vgg" else ""), block_ends, aliases


def _stages(fixed_arch: str | None) -> Any:
    def preset(model: nn.Module) -> tuple[str, list[str], dict[str, str]]:
        arch = fixed_arch or _arch_name(model)
        return arch, [f"features.{name}" for name in stage_ends(model.features)], {}

    return preset


def _arch_name(model: nn.Module) -> str:
    import torchvision.models as tvm

    if isinstance(model, tvm.MobileNetV3):
        return {17: "mobilenet_v3_large", 13: "mobilenet_v3_small"}.get(len(model.features), "mobilenet_v3")
    if isinstance(model, tvm.DenseNet):
        counts = tuple(
            len(block) for name, block in model.features.named_children() if name.startswith("denseblock")
        )
        return _DENSENET_NAMES.get(counts, "densenet")
    return type(model).__name__.lower()


def _stride(module: nn.Module) -> int:
    """The product of the strides of the convs and pools inside ``module`` (1: no downsampling)."""
    stride = 1
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            step = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            stride *= int(step)
    return stride


def stage_ends(features: nn.Module) -> list[str]:
    """Names of the children of ``features`` that end a resolution stage, plus the last child."""
    children = list(features.named_children())
    ends = []
    for position, (_, child) in enumerate(children):
        if position > 0 and _stride(child) > 1:
            ends.append(children[position - 1][0])
    if children:
        ends.append(children[-1][0])
    return list(dict.fromkeys(ends))


def parse_torchvision_spec(spec: str) -> tuple[str, str | None]:
    """``torchvision:NAME[:WEIGHTS]`` -> (name, weights or None for random initialisation)."""
    parts = spec.split(":")
    if parts[0] != "torchvision" or len(parts) not in (2, 3) or not parts[1]:
        raise InvalidInputError(
            f"bad model spec {spec!r}; expected torchvision:NAME[:WEIGHTS], "
            "e.g. torchvision:resnet18:IMAGENET1K_V1"
        )
    weights = parts[2] if len(parts) == 3 and parts[2].lower() not in ("", "none", "random") else None
    return parts[1], weights


def load_torchvision_model(spec: str, device: Any = None) -> nn.Module:
    """Build ``torchvision:NAME[:WEIGHTS]`` in eval mode, from weights already on disk.

    ``WEIGHTS`` is a member of the model's weights enum (``IMAGENET1K_V1``, ``DEFAULT``) or is
    left out (or ``none``) for random initialisation. Weights are never downloaded: when the file
    is not in the torch hub cache, :class:`MissingWeightsError` says which file to put where.
    """
    import torchvision.models as tvm

    name, weights_name = parse_torchvision_spec(spec)
    available = tvm.list_models(module=tvm)
    if name not in available:
        near = closest(name, available)
        hint = f" Closest names: {', '.join(near)}." if near else ""
        raise InvalidInputError(f"torchvision has no model {name!r}.{hint}")
    weights = None
    if weights_name is not None:
        enum = tvm.get_model_weights(name)
        try:
            weights = enum[weights_name]
        except KeyError:
            choices = ", ".join(["DEFAULT", *(member.name for member in enum)])
            raise InvalidInputError(
                f"{name} has no weights {weights_name!r}; choose one of {choices}"
            ) from None
        _require_cached(weights.url, spec)
    model = tvm.get_model(name, weights=weights).eval()
    if device is not None:
        model = model.to(device)
    _LOADED_NAMES[model] = name
    return model


def _require_cached(url: str, spec: str) -> Path:
    from milan_plugin.assets import torch_hub_checkpoints

    path = torch_hub_checkpoints() / Path(url).name
    if not path.is_file():
        raise MissingWeightsError(
            f"the weights for {spec} are not in the torch hub cache and are never downloaded silently; "
            f"download {url} and save it as {path} (or set TORCH_HOME to a directory whose "
            "hub/checkpoints/ holds it)"
        )
    return path
