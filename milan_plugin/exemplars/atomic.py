"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of either.

Every cache, shard and report the plugin writes goes through here, so an interrupted run can
always resume from what is on disk. Why tensors and metadata share one safetensors file: a single
``os.replace`` swaps them together, so a crash (even SIGKILL) can never pair new tensors with old
metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from milan_plugin.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

METADATA_KEY = "milan"


def write_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` through a temporary file and ``os.replace``."""
    from safetensors.torch import save_file

    contiguous = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    header = {METADATA_KEY: json.dumps(metadata)}
    write_with(path, lambda temporary: save_file(contiguous, temporary, metadata=header))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_with(path, lambda temporary: Path(temporary).write_bytes(data))


def write_with(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(temporary_path)``, then move the result onto ``path``; on any failure the
    temporary file is removed and ``path`` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``staging`` onto ``target``, retiring any old ``target`` first.

    Two renames rather than one because ``os.replace`` cannot overwrite a non-empty folder; the
    window in which ``target`` is missing is those two renames, never a half-filled folder.
    """
    staging, target = Path(staging), Path(target)
    retired = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def read_tensors(path: str | os.PathLike, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata written by :func:`write_tensors`; a clear error for anything else."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        tensors = load_file(path)
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
        metadata = json.loads(header[METADATA_KEY])
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise InvalidInputError(
            f"{path} is not a valid {what} (corrupt or not written by milan-plugin): {error}; "
            "delete it and compute it again"
        ) from error
    return tensors, metadata
