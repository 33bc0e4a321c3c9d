"""Content digests that key caches and annotation sets.

A cache is served only when the model, the source and the settings it was computed with all
digest to the same values, so a changed model never gets a stale answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

DIGEST_CHARS = 16


def digest_json(value: Any) -> str:
    """A short digest of a JSON-serialisable value (keys sorted, so dict order does not matter)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def digest_state_dict(state: Mapping[str, torch.Tensor]) -> str:
    """A digest of every tensor's name, dtype, shape and bytes.

    Hashes the full bytes: a fine-tuned copy that differs in one weight gets a new digest.
    """
    hasher = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        hasher.update(name.encode())
        if not isinstance(tensor, torch.Tensor):
            hasher.update(repr(tensor).encode())
            continue
        hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        data = tensor.detach().to("cpu").contiguous()
        if data.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        hasher.update(data.numpy().tobytes())
    return hasher.hexdigest()[:DIGEST_CHARS]


def digest_module(module: torch.nn.Module) -> str:
    """Digest of a module's class, structure and weights (parameters and buffers)."""
    structure = digest_json(repr(module))
    weights = digest_state_dict(module.state_dict())
    return digest_json([type(module).__module__, type(module).__qualname__, structure, weights])
