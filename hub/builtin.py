"""Built-in hook implementations of this area (see milan_plugin.hookspecs)."""

from __future__ import annotations

from milan_plugin.hookspecs import hookimpl


@hookimpl(trylast=True)
def milan_annotation_sets():
    """The packaged registry (``registry.yaml``): MILANNOTATIONS, annotation sets, describer weights."""
    from milan_plugin.hub.registry import packaged_registry

    return packaged_registry()
