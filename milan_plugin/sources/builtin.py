"""Built-in exemplar sources, registered like any third-party plugin (``trylast``).

Specs: ``folder:PATH``, ``hf:NAME_OR_PATH:SPLIT`` and ``latents:N:DIM:SEED``. Options that a
source does not take are ignored, so one options dict can serve every spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from milan_plugin.hookspecs import hookimpl

SCHEMES = ("folder", "hf", "latents")


@hookimpl(trylast=True)
def milan_exemplar_source(spec: str, options: Mapping[str, Any]) -> Any:
    scheme, _, rest = spec.partition(":")
    if scheme not in SCHEMES:
        return None
    from milan_plugin.sources.specs import open_builtin_source

    return open_builtin_source(scheme, rest, dict(options))
