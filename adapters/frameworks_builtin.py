"""Built-in hooks for frameworks and language models: nnsight models, TransformerLens models,
the ``text:`` exemplar source and the ``text:wpmi`` describer.

These answer before the generic torch adapter (no ``trylast``), since that one accepts any
``nn.Module`` and would treat a TransformerLens model as plain modules. Nothing heavy is
imported until a hook knows the model or spec is its own.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from milan_plugin.hookspecs import hookimpl


@hookimpl
def milan_model_adapter(model: Any) -> Any:
    nnsight = sys.modules.get("nnsight")
    if nnsight is not None and isinstance(model, nnsight.Envoy):
        from milan_plugin.adapters.nnsight_adapter import NNsightAdapter

        return NNsightAdapter(model)
    from milan_plugin.adapters.transformer_lens_adapter import (
        TransformerLensAdapter,
        is_transformer_lens_model,
    )

    if is_transformer_lens_model(model):
        return TransformerLensAdapter(model)
    return None


@hookimpl(trylast=True)
def milan_exemplar_source(spec: str, options: Mapping[str, Any]) -> Any:
    if not spec.startswith("text:"):
        return None
    from milan_plugin.adapters.text import open_text_source

    return open_text_source(spec, options)


@hookimpl(trylast=True)
def milan_describer(name: str, options: Mapping[str, Any]) -> Any:
    if not name.startswith("text:"):
        return None
    from milan_plugin.adapters.text_describer import open_text_describer

    return open_text_describer(name, options)
