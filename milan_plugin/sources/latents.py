"""``latents:N:DIM:SEED`` — seeded Gaussian latent codes for generative models.

Latent ``i`` is drawn from its own generator, seeded from ``(SEED, i)`` through SHA-256, so it is
the same whatever batch it is loaded in, in whatever order, on whatever machine: exemplar sets can
store only the index and regenerate the input. The images of a latent source are whatever the
generator renders, so :meth:`LatentSource.images` returns ``None``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from milan_plugin.errors import EmptySourceError, InvalidInputError
from milan_plugin.fingerprint import digest_json
from milan_plugin.protocols import LoadedBatch


class LatentSource:
    """``count`` latent codes of shape ``shape`` (an int for flat codes), drawn from N(0, 1)."""

    def __init__(self, count: int, shape: int | Sequence[int], seed: int = 0) -> None:
        dims = (int(shape),) if isinstance(shape, int) else tuple(int(dim) for dim in shape)
        if int(count) <= 0:
            raise EmptySourceError(f"latent source: the number of latents must be positive, got {count}")
        if not dims or any(dim <= 0 for dim in dims):
            raise InvalidInputError(f"latent source: the latent shape must be positive, got {shape!r}")
        self.count = int(count)
        self.shape = dims
        self.seed = int(seed)
        self.spec = f"latents:{self.count}:{'x'.join(str(dim) for dim in dims)}:{self.seed}"

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"LatentSource(count={self.count}, shape={self.shape}, seed={self.seed})"

    def key(self, index: int) -> str:
        return f"latent-{self._check_index(index)}"

    def fingerprint(self) -> str:
        return digest_json({"kind": "latents", "count": self.count, "shape": self.shape, "seed": self.seed})

    def latent(self, index: int) -> torch.Tensor:
        """Latent ``index``, identical on every call."""
        index = self._check_index(index)
        digest = hashlib.sha256(f"milan-latent:{self.seed}:{index}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
        return torch.randn(self.shape, generator=generator)

    def load(self, indices: Sequence[int]) -> LoadedBatch:
        latents = [self.latent(index) for index in indices]
        inputs = torch.stack(latents) if latents else torch.empty(0, *self.shape)
        return LoadedBatch(inputs=inputs, indices=[int(index) for index in indices])

    def images(self, indices: Sequence[int], size: int = 224) -> None:
        return None

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} is out of range for {self.count} latents")
        return index
