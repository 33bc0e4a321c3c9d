"""The registry of known Hub repos: the packaged YAML plus whatever plugins add.

Like sae-lens's ``pretrained_saes.yaml``, short names map to a repo id and a pinned revision,
so user code says ``milan:base`` or ``load_milannotations("base")`` and never hard-codes a repo.
The packaged file is the hub plugin's answer to ``milan_annotation_sets``; other plugins answer
the same hook, and :func:`list_registry` sees them all.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

from milan_plugin.errors import InvalidInputError, PluginLookupError
from milan_plugin.protocols import RegistryEntry

SECTION_KINDS: dict[str, str] = {
    "milannotations": "milannotations",
    "annotation_sets": "annotation-set",
    "describers": "describer",
}
ENTRY_FIELDS = (
    "name",
    "repo_id",
    "revision",
    "description",
    "model",
    "model_fingerprint",
    "layers",
    "configs",
)


@functools.cache
def _packaged_document() -> dict[str, Any]:
    import yaml

    text = resources.files("milan_plugin.hub").joinpath("registry.yaml").read_text()
    return yaml.safe_load(text) or {}


def parse_registry(document: Mapping[str, Any]) -> list[RegistryEntry]:
    """Registry entries from a parsed registry YAML document (sections as in ``registry.yaml``)."""
    entries = []
    for section, items in document.items():
        if section not in SECTION_KINDS:
            raise InvalidInputError(
                f"unknown registry section {section!r}; sections are {', '.join(SECTION_KINDS)}"
            )
        for item in items or ():
            missing = {"name", "repo_id"} - set(item)
            if missing:
                raise InvalidInputError(f"registry entry {item!r} lacks {', '.join(sorted(missing))}")
            values = {name: item[name] for name in ENTRY_FIELDS if item.get(name) is not None}
            values["layers"] = tuple(values.get("layers", ()))
            values["configs"] = tuple(values.get("configs", ()))
            values["revision"] = str(values.get("revision", "main"))
            entries.append(RegistryEntry(kind=SECTION_KINDS[section], **values))
    return entries


def packaged_registry() -> list[RegistryEntry]:
    """The entries shipped in ``milan_plugin/hub/registry.yaml``."""
    return parse_registry(_packaged_document())


def original_checkpoint_urls() -> dict[str, str]:
    """Describer name -> URL of the reference release's ``milan-<group>.pth`` file."""
    return {
        item["name"]: item["original_url"]
        for item in _packaged_document().get("describers") or ()
        if item.get("original_url")
    }


def list_registry(kind: str | None = None) -> list[RegistryEntry]:
    """Every entry from every plugin (the packaged ones first), optionally of one ``kind``."""
    from milan_plugin.plugins import annotation_registry

    entries = annotation_registry()
    packaged = set(packaged_registry())
    ordered = [entry for entry in entries if entry in packaged] + [
        entry for entry in entries if entry not in packaged
    ]
    return [entry for entry in ordered if kind is None or entry.kind == kind]


def get_entry(name: str, kind: str | None = None) -> RegistryEntry:
    """The entry called ``name`` (a later plugin's entry of the same name wins over the packaged one)."""
    entries = list_registry(kind)
    matches = [entry for entry in entries if entry.name == name]
    if not matches:
        raise PluginLookupError(
            f"no registry entry called {name!r}",
            kind="registry name",
            options=[entry.name for entry in entries],
        )
    return matches[-1]


def find_annotation_set(model_fingerprint: str, layer: str) -> RegistryEntry | None:
    """A registered annotation set computed for exactly this model and covering ``layer``, or ``None``.

    An entry with no ``layers`` listed covers every layer of its model.
    """
    for entry in reversed(list_registry("annotation-set")):
        if entry.model_fingerprint == model_fingerprint and (not entry.layers or layer in entry.layers):
            return entry
    return None
