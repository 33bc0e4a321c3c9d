"""Errors that say what was wrong and what would be right.

Every error the plugin raises on bad input derives from :class:`MilanError`, so callers can
catch the family; each also derives from the builtin it specialises (``KeyError``,
``ValueError``, ...) so generic handlers keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class MilanError(Exception):
    """Base class of every error raised by milan-plugin on bad input or state."""


def closest(name: str, options: Iterable[str], limit: int = 5) -> list[str]:
    """The options most similar to ``name``, best first (for 'did you mean' hints)."""
    options = list(options)
    matches = difflib.get_close_matches(name, options, n=limit, cutoff=0.5)
    if not matches:
        matches = [option for option in options if name.lower() in option.lower()][:limit]
    return matches


class PluginLookupError(MilanError, LookupError):
    """No plugin answered for a name or spec."""

    def __init__(self, message: str, *, kind: str, options: Sequence[str]) -> None:
        hint = f" Known {kind}s: {', '.join(options)}." if options else ""
        super().__init__(message + "." + hint if not message.endswith(".") else message + hint)
        self.kind = kind
        self.options = list(options)


class UnknownLayerError(MilanError, KeyError):
    """A layer name that the model does not have; the message lists the closest names."""

    def __init__(self, layer: str, available: Sequence[str]) -> None:
        near = closest(layer, available)
        hint = f" Closest names: {', '.join(near)}." if near else ""
        message = f"model has no layer {layer!r}.{hint} ({len(available)} layers in all)"
        super().__init__(message)
        self.layer = layer
        self.suggestions = near

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class EmptySourceError(MilanError, ValueError):
    """The exemplar source holds no usable input."""


class NonFiniteActivationError(MilanError, FloatingPointError):
    """A layer produced NaN or infinite activations; names the layer and the units."""

    def __init__(self, layer: str, units: Sequence[int], indices: Sequence[int] = ()) -> None:
        shown = ", ".join(str(unit) for unit in units[:20])
        more = f" and {len(units) - 20} more" if len(units) > 20 else ""
        where = f" on inputs {list(indices)[:10]}" if indices else ""
        super().__init__(
            f"layer {layer!r} produced NaN or infinite activations in units {shown}{more}{where}; "
            "check the model's weights and the input normalisation"
        )
        self.layer = layer
        self.units = list(units)


class InvalidInputError(MilanError, ValueError):
    """An input that cannot be used (wrong shape, dtype, range or option)."""


class UnreadableInputError(MilanError, OSError):
    """An input file that cannot be decoded, when the source is set to fail on such files."""


class UntrustedCheckpointError(MilanError, ValueError):
    """A checkpoint that would need arbitrary code to load (a pickle payload); refused."""


class FingerprintMismatchError(MilanError, ValueError):
    """A cache or annotation set that was computed for a different model, source or settings."""
