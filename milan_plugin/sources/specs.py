"""Parsing the built-in source specs and the options each source takes."""

from __future__ import annotations

from typing import Any

from milan_plugin.errors import InvalidInputError

_IMAGE_OPTIONS = ("image_size", "resize_size", "transform", "on_error", "background")


def _pick(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: options[name] for name in names if options.get(name) is not None}


def open_builtin_source(scheme: str, rest: str, options: dict[str, Any]) -> Any:
    """Open ``scheme:rest`` for the schemes ``folder``, ``hf`` and ``latents``."""
    if scheme == "folder":
        from milan_plugin.sources.folder import FolderSource

        if not rest:
            raise InvalidInputError("folder source needs a path: folder:PATH")
        return FolderSource(rest, **_pick(options, (*_IMAGE_OPTIONS, "content_hash")))
    if scheme == "hf":
        from milan_plugin.sources.hf import DatasetSource, load_split

        name, separator, split = rest.rpartition(":")
        if not separator or not name or not split:
            raise InvalidInputError(
                f"bad source spec 'hf:{rest}'; expected hf:NAME_OR_PATH:SPLIT, e.g. hf:./data:validation"
            )
        dataset = load_split(name, split, options.get("config"))
        return DatasetSource(
            dataset,
            spec=f"hf:{rest}",
            split=split,
            **_pick(options, (*_IMAGE_OPTIONS, "image_column", "key_column")),
        )
    if scheme == "latents":
        from milan_plugin.sources.latents import LatentSource

        parts = rest.split(":")
        try:
            count, dims, seed = parts
            numbers = int(count), tuple(int(dim) for dim in dims.lower().split("x")), int(seed)
        except ValueError:
            raise InvalidInputError(
                f"bad source spec 'latents:{rest}'; expected latents:N:DIM:SEED with integers "
                "(DIM may be a shape such as 4x8x8), e.g. latents:10000:128:0"
            ) from None
        return LatentSource(*numbers)
    raise InvalidInputError(f"unknown built-in source scheme {scheme!r}")
