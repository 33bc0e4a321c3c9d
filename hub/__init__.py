"""MILANNOTATIONS, annotation sets and MILAN weights on the Hugging Face Hub.

Everything here works on a Hub repo id or on a local folder in the same layout, and downloads go
through the Hub cache, so whatever was fetched once keeps working offline:

* :func:`load_milannotations` — the human-annotated dataset by model key or paper grouping;
  :func:`row_images` / :func:`row_masks` give a row's exemplars as tensors.
* :func:`convert_release` — the original release zips into a Hub dataset folder.
* :func:`push_annotation_set` / :func:`pull_annotation_set` / :func:`load_annotation_set` —
  descriptions computed by a describer; :func:`find_annotation_set` looks one up by model
  fingerprint in the registry.
* :func:`push_describer` / :func:`pull_describer` — describer checkpoints.
* :func:`list_registry` — the packaged registry plus entries from plugins.

Names are imported lazily so that the plugin manager can load the hub's hooks cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "load_milannotations": "milan_plugin.hub.milannotations",
    "row_images": "milan_plugin.hub.milannotations",
    "row_masks": "milan_plugin.hub.milannotations",
    "convert_release": "milan_plugin.hub.convert",
    "push_folder": "milan_plugin.hub.transfer",
    "plan_push": "milan_plugin.hub.transfer",
    "pull_folder": "milan_plugin.hub.transfer",
    "load_folder_dataset": "milan_plugin.hub.transfer",
    "AnnotationSet": "milan_plugin.hub.annotation_sets",
    "write_annotation_set": "milan_plugin.hub.annotation_sets",
    "push_annotation_set": "milan_plugin.hub.annotation_sets",
    "pull_annotation_set": "milan_plugin.hub.annotation_sets",
    "load_annotation_set": "milan_plugin.hub.annotation_sets",
    "push_describer": "milan_plugin.hub.weights",
    "pull_describer": "milan_plugin.hub.weights",
    "download_original_checkpoint": "milan_plugin.hub.weights",
    "convert_original_checkpoint": "milan_plugin.hub.weights",
    "find_annotation_set": "milan_plugin.hub.registry",
    "list_registry": "milan_plugin.hub.registry",
    "get_entry": "milan_plugin.hub.registry",
    "groupings": "milan_plugin.hub.groupings",
    "MODEL_KEYS": "milan_plugin.hub.groupings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'milan_plugin.hub' has no attribute {name!r}")
