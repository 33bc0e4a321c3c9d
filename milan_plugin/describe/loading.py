"""Find a describer by name: ``milan:demo``, a checkpoint folder, an original ``.pth`` or a Hub repo id."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The small describer shipped inside the package (see docs/describer.md for how it was trained).
DEMO_DIRECTORY = Path(__file__).resolve().parent / "pretrained" / "demo"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def load_describer(name_or_path: str | os.PathLike[str], **options: Any) -> Any:
    """The describer called ``name_or_path``, through the ``milan_describer`` hook.

    ``options`` (``beam_size``, ``lm_weight``, ``strategy``, ``device``, ``progress``, ...) are
    passed to the plugin that answers.
    """
    from milan_plugin.plugins import get_describer

    return get_describer(os.fspath(name_or_path), **options)


#: Options a MILAN describer takes; others in a hook call (a benchmark's world ``size``, ...) are not ours.
DESCRIBER_OPTIONS = frozenset(
    {"name", "strategy", "beam_size", "lm_weight", "max_length", "batch_size", "num_candidates", "progress",
     "seed", "device", "revision"}
)  # fmt: skip


def _split_query(name: str) -> tuple[str, dict[str, Any]]:
    """``milan:demo?strategy=greedy&beam_size=10`` -> name and typed options."""
    from urllib.parse import parse_qsl

    from milan_plugin.errors import InvalidInputError

    base, _, query = name.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in DESCRIBER_OPTIONS:
            raise InvalidInputError(
                f"unknown describer option {key!r} in {name!r}; known: {sorted(DESCRIBER_OPTIONS)}"
            )
        for kind in (int, float):
            try:
                options[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            options[key] = value
    return base, options


def resolve_builtin_describer(name: str, options: Mapping[str, Any]) -> Any:
    """The built-in answer to ``milan_describer``: a MILAN describer, or ``None`` if not ours.

    ``name`` may carry decoding options as a query, e.g. ``milan:demo?strategy=greedy``.
    """
    from milan_plugin.describe.describer import CONFIG_FILE, MilanDescriber

    given = name
    name, query = _split_query(name)
    options = {key: value for key, value in options.items() if key in DESCRIBER_OPTIONS} | query
    if name == "milan:demo":
        options.setdefault("name", given)
        return MilanDescriber.from_pretrained(DEMO_DIRECTORY, **options)
    path = Path(name).expanduser()
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return MilanDescriber.from_pretrained(path, **options)
    if path.is_file() and path.suffix in (".pth", ".pt"):
        from milan_plugin.describe.importer import import_original_checkpoint

        return import_original_checkpoint(path, **options)
    if not path.exists() and _REPO_ID.match(name):
        return MilanDescriber.from_pretrained(name, **options)
    return None
