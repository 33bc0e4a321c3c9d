"""Per-unit running top-k by spatial max, keeping each kept input's activation map.

Why maps are kept: with the maps of the k best inputs in hand, masks are ``upsample(map) >
threshold`` once the threshold is known, so no second pass over the data is needed.

Ties are broken by value (descending), then source index (ascending). That order is total, so
the result does not depend on batch size, shard boundaries or merge order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The index of an empty slot; larger than any real source index, so real inputs sort first.
EMPTY_ID = 2**62


def _rank(values: torch.Tensor, ids: torch.Tensor, k: int) -> torch.Tensor:
    """Column order of the ``k`` best candidates per row: value descending, then id ascending."""
    by_id = torch.argsort(ids, dim=1, stable=True)
    by_value = torch.argsort(values.gather(1, by_id), dim=1, descending=True, stable=True)
    return by_id.gather(1, by_value)[:, :k]


@dataclass
class RunningTopK:
    """The ``k`` best inputs per unit so far: values ``(U, k)``, ids ``(U, k)``, maps ``(U, k, P)``."""

    values: torch.Tensor
    ids: torch.Tensor
    maps: torch.Tensor

    @classmethod
    def empty(
        cls, units: int, k: int, positions: int, device: torch.device | str | None = None
    ) -> RunningTopK:
        return cls(
            values=torch.full((units, k), float("-inf"), device=device),
            ids=torch.full((units, k), EMPTY_ID, dtype=torch.int64, device=device),
            maps=torch.zeros(units, k, positions, device=device),
        )

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def update(self, activations: torch.Tensor, peaks: torch.Tensor, ids: torch.Tensor) -> None:
        """Offer a batch: ``activations`` ``(B, U, P)``, their spatial max ``peaks`` ``(B, U)``, and
        ``ids`` ``(B,)`` source indices."""
        peaks = peaks.T  # (U, B)
        if not bool((peaks >= self.values[:, -1:]).any()):
            return
        batch = peaks.shape[1]
        candidate_ids = ids.to(self.ids.device).view(1, -1).expand(self.values.shape[0], batch)
        self._absorb(peaks, candidate_ids, activations, batch_major=True)

    def merge(self, other: RunningTopK) -> RunningTopK:
        """The top-k of both states' candidates (exact for disjoint inputs, in any order)."""
        if other.values.shape[0] != self.values.shape[0] or other.maps.shape[2] != self.maps.shape[2]:
            raise ValueError("cannot merge top-k states of different layers or unit subsets")
        merged = RunningTopK(self.values.clone(), self.ids.clone(), self.maps.clone())
        merged._absorb(other.values, other.ids, other.maps, batch_major=False)
        return merged

    def _absorb(
        self, values: torch.Tensor, ids: torch.Tensor, maps: torch.Tensor, *, batch_major: bool
    ) -> None:
        """Merge candidate ``values``/``ids`` ``(U, m)`` whose maps are ``maps``.

        ``maps`` is ``(m, U, P)`` when ``batch_major`` (a model batch), else ``(U, m, P)``.
        """
        k = self.k
        chosen = _rank(torch.cat([self.values, values], dim=1), torch.cat([self.ids, ids], dim=1), k)
        rows = torch.arange(chosen.shape[0], device=chosen.device).view(-1, 1).expand_as(chosen)
        kept = chosen < k
        new_maps = torch.empty_like(self.maps)
        new_maps[kept] = self.maps[rows[kept], chosen[kept]]
        fresh = ~kept
        if batch_major:
            new_maps[fresh] = maps[chosen[fresh] - k, rows[fresh]]
        else:
            new_maps[fresh] = maps[rows[fresh], chosen[fresh] - k]
        self.values = torch.cat([self.values, values], dim=1).gather(1, chosen)
        self.ids = torch.cat([self.ids, ids], dim=1).gather(1, chosen)
        self.maps = new_maps
