"""milan-plugin: natural-language descriptions of the neurons of vision and language models.

The public surface is small and imported lazily, so ``import milan_plugin`` stays cheap:

* :func:`compute_exemplars` — one pass over a source, top-k exemplars and thresholds per unit.
* :class:`ExemplarSet` — a layer's exemplars: ids, activations, maps, masks, images by id.
* :func:`load_describer` — a describer by name, Hub repo id or local folder.
* :func:`wrap` / :func:`attach` — ``model.layer4.neurons[12].describe()`` on an nnsight model.
* :mod:`milan_plugin.hub` — MILANNOTATIONS, annotation sets and weights on the Hugging Face Hub.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "compute_exemplars": "milan_plugin.exemplars.engine",
    "ExemplarSet": "milan_plugin.exemplars.exemplar_set",
    "Description": "milan_plugin.descriptions",
    "Candidate": "milan_plugin.descriptions",
    "load_describer": "milan_plugin.describe.loading",
    "wrap": "milan_plugin.neurons",
    "attach": "milan_plugin.neurons",
    "get_plugin_manager": "milan_plugin.plugins",
    "hookimpl": "milan_plugin.hookspecs",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'milan_plugin' has no attribute {name!r}")
