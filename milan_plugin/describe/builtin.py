"""Built-in ``milan_describer``: the MILAN describer by name, folder, original checkpoint or repo id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from milan_plugin.hookspecs import hookimpl


@hookimpl(trylast=True)
def milan_describer(name: str, options: Mapping[str, Any]) -> Any:
    from milan_plugin.describe.loading import resolve_builtin_describer

    return resolve_builtin_describer(name, options)
