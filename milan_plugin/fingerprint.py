"""Content digests that key caches and annotation sets.

A cache is served only when the model, the source and the settings it was computed with all
digest to the same values, so a changed model never gets a stale answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

DIGEST_CHARS = 16
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


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


def describe_callable(function: Callable[..., Any]) -> str:
    """A text that names what a callable computes, the same in every process.

    ``repr`` of a lambda or of an object without its own ``__repr__`` holds a memory address, which
    would make every new process miss the cache. Addresses are dropped and replaced by what
    decides the result: a function's bytecode, constants, names, closure values and defaults; an
    object's attributes.
    """
    parts = [repr(function)]
    code = getattr(function, "__code__", None)
    if code is not None:
        closure = [cell.cell_contents for cell in getattr(function, "__closure__", None) or ()]
        parts += [code.co_code.hex(), repr(code.co_consts), repr(code.co_names), repr(closure)]
        parts.append(repr(getattr(function, "__defaults__", None)))
    elif _ADDRESS.search(parts[0]) and hasattr(function, "__dict__"):
        parts.append(repr(sorted(vars(function).items())))
    return _ADDRESS.sub("", "|".join(parts))
