"""Atomic safetensors files with JSON metadata: a reader sees the old file or the new one, never half.

Why one file: the tensors and the JSON that describes them are replaced together by a single
``os.replace``, so a crash (even SIGKILL) can never pair new tensors with old metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from milan_plugin.errors import InvalidInputError

METADATA_KEY = "milan"


def write_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        contiguous = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
        save_file(contiguous, temporary, metadata={METADATA_KEY: json.dumps(metadata)})
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_tensors(path: str | os.PathLike, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata written by :func:`write_tensors`; a clear error for anything else."""
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
