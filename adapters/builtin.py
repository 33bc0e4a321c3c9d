"""Built-in model adapters and model loading, registered like any third-party plugin.

``milan_model_adapter`` tries, in order: objects that already are adapters (returned as they
are), Vision Transformers (token -> patch-grid reshaping), torchvision CNNs (the paper's default
layers) and finally any ``torch.nn.Module`` through the generic adapter. Every implementation here
is ``trylast`` so installed plugins answer first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from milan_plugin.hookspecs import hookimpl


@hookimpl(trylast=True)
def milan_model_adapter(model: Any) -> Any:
    from milan_plugin.protocols import ModelAdapter

    if isinstance(model, ModelAdapter):
        return model
    import torch

    if not isinstance(model, torch.nn.Module):
        return None
    from milan_plugin.adapters.torchvision_presets import torchvision_adapter
    from milan_plugin.adapters.vit import vit_adapter

    for recognise in (vit_adapter, torchvision_adapter):
        adapter = recognise(model)
        if adapter is not None:
            return adapter
    from milan_plugin.adapters.torch_module import TorchModuleAdapter

    return TorchModuleAdapter(model)


@hookimpl(trylast=True)
def milan_load_model(spec: str, options: Mapping[str, Any]) -> Any:
    if not spec.startswith("torchvision:"):
        return None
    from milan_plugin.adapters.torchvision_presets import load_torchvision_model

    return load_torchvision_model(spec, device=options.get("device"))
