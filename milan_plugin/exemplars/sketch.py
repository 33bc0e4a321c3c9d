"""A mergeable per-unit quantile sketch: a log-bucketed histogram with integer counts.

Why this design: MILAN's threshold is each unit's 0.99 quantile over *every* spatial position of
*every* input, which is far too much data to keep. The reference uses a randomised KLL sketch,
so its thresholds change from run to run and shards cannot be combined exactly. Here a value's
bucket is read straight from its float32 bits (sign, exponent and the top
:data:`MANTISSA_BITS` mantissa bits), so:

* **Exact merges.** A value always lands in the same bucket, whatever batch or shard it came in,
  and buckets hold integer counts, so adding the counts of shards gives bit for bit the state of
  a single run, in any order.
* **Bounded memory.** The state is one count per (unit, occupied bucket): it does not grow with
  the number of inputs, only (slowly, on demand) with the range of values seen.
* **Guarantee.** Every bucket ``[lo, hi)`` of magnitudes has ``hi / lo <= 1 + 2**-9``. A quantile
  is read by rank, interpolating linearly inside the bucket(s) holding the neighbouring order
  statistics, and clamped to the exact running min/max, so the estimate is within a relative
  ``2**-9`` (0.2 %) of the exact ``torch.quantile`` value (the DDSketch accuracy alpha ~ 1e-3).
  Magnitudes below :data:`ZERO_MAGNITUDE` (2**-24 ~ 6e-8) share one zero bucket read as 0, so
  there the error is absolute, at most 2**-24.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

MANTISSA_BITS = 9
_SHIFT = 23 - MANTISSA_BITS
ZERO_MAGNITUDE = 2.0**-24
_ZERO_KEY = int(torch.tensor(ZERO_MAGNITUDE, dtype=torch.float32).view(torch.int32)) >> _SHIFT
_GROWTH_PAD = 1 << MANTISSA_BITS  # grow by at least one octave so that resizes stay rare


def bucket_keys(values: torch.Tensor) -> torch.Tensor:
    """Signed int32 bucket keys, ordered like the values: 0 is the zero bucket, -k mirrors k.

    Written with in-place integer ops: on a 2-core CPU this runs once per activation value and
    the allocations, not the arithmetic, dominate.
    """
    bits = values.contiguous().view(torch.int32)
    magnitude = torch.bitwise_and(bits, 0x7FFFFFFF)
    magnitude.bitwise_right_shift_(_SHIFT).sub_(_ZERO_KEY - 1).clamp_(min=0)
    sign = bits >> 31  # 0 for positive, -1 for negative
    return magnitude.bitwise_xor_(sign).sub_(sign)


_PARALLEL_MINIMUM = 1 << 20


@functools.lru_cache(maxsize=4)
def _thread_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="milan-histogram")


def _histogram(flat: torch.Tensor, bins: int) -> torch.Tensor:
    """``torch.bincount`` of ``flat``, split over the CPU's threads.

    bincount runs on one core on the CPU and is the engine's largest cost after the model
    itself; chunks counted in parallel threads (torch releases the GIL) and then added give the
    same integer counts.
    """
    threads = torch.get_num_threads()
    if flat.device.type != "cpu" or threads < 2 or flat.numel() < _PARALLEL_MINIMUM:
        return torch.bincount(flat, minlength=bins)
    chunks = flat.chunk(threads)
    parts = list(_thread_pool(threads).map(lambda chunk: torch.bincount(chunk, minlength=bins), chunks))
    total = parts[0]
    for part in parts[1:]:
        total.add_(part)
    return total


def _magnitude_bounds(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 magnitudes ``[lo, hi)`` covered by positive keys."""
    low_bits = ((keys - 1 + _ZERO_KEY) << _SHIFT).to(torch.int32)
    high_bits = ((keys + _ZERO_KEY) << _SHIFT).to(torch.int32)
    return low_bits.view(torch.float32).double(), high_bits.view(torch.float32).double()


def bucket_bounds(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 value range ``[low, high]`` of each signed key (``[0, 0]`` for the zero bucket)."""
    magnitude = keys.abs().clamp(min=1)
    low, high = _magnitude_bounds(magnitude)
    negative = keys < 0
    zero = keys == 0
    value_low = torch.where(negative, -high, low).masked_fill(zero, 0.0)
    value_high = torch.where(negative, -low, high).masked_fill(zero, 0.0)
    return value_low, value_high


@dataclass
class QuantileSketch:
    """Per-unit histogram over bucket keys ``base .. base + counts.shape[1] - 1``."""

    counts: torch.Tensor  # (units, buckets) int64
    base: int
    minimum: torch.Tensor  # (units,) float32, exact
    maximum: torch.Tensor  # (units,) float32, exact

    @classmethod
    def empty(cls, units: int, device: torch.device | str | None = None) -> QuantileSketch:
        return cls(
            counts=torch.zeros(units, 0, dtype=torch.int64, device=device),
            base=0,
            minimum=torch.full((units,), float("inf"), device=device),
            maximum=torch.full((units,), float("-inf"), device=device),
        )

    @property
    def units(self) -> int:
        return self.counts.shape[0]

    def total(self) -> torch.Tensor:
        """How many values each unit has seen."""
        return self.counts.sum(dim=1)

    def _cover(self, low: int, high: int) -> None:
        """Grow the key range (padded, so growth is rare) to include ``low .. high``."""
        top = self.base + self.counts.shape[1] - 1
        if self.counts.shape[1] and low >= self.base and high <= top:
            return
        if self.counts.shape[1] == 0:
            new_base, new_top = low - _GROWTH_PAD, high + _GROWTH_PAD
        else:
            new_base = min(self.base, low - _GROWTH_PAD) if low < self.base else self.base
            new_top = max(top, high + _GROWTH_PAD) if high > top else top
        grown = torch.zeros(self.units, new_top - new_base + 1, dtype=torch.int64, device=self.counts.device)
        if self.counts.shape[1]:
            offset = self.base - new_base
            grown[:, offset : offset + self.counts.shape[1]] = self.counts
        self.counts, self.base = grown, new_base

    def update(self, values: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        """Add every value of ``values`` (``(batch, units, positions)``, finite float32) whose
        per-unit min and max over the batch are ``low`` and ``high``."""
        self.minimum = torch.minimum(self.minimum, low)
        self.maximum = torch.maximum(self.maximum, high)
        keys = bucket_keys(values)
        # Keys are monotonic in values, so the batch's key range is that of its extreme values.
        key_low, key_high = bucket_keys(torch.stack([low.min(), high.max()])).tolist()
        self._cover(key_low, key_high)
        width = self.counts.shape[1]
        index_dtype = torch.int32 if self.units * width < 2**31 else torch.int64
        offsets = torch.arange(self.units, dtype=index_dtype, device=keys.device).mul_(width) - self.base
        flat = keys.to(index_dtype).add_(offsets.view(1, -1, 1)).view(-1)
        self.counts.view(-1).add_(_histogram(flat, self.units * width))

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """The sketch of both inputs' values (exact: integer counts add)."""
        if other.units != self.units:
            raise ValueError(f"cannot merge sketches of {self.units} and {other.units} units")
        merged = QuantileSketch(self.counts.clone(), self.base, self.minimum.clone(), self.maximum.clone())
        if other.counts.shape[1]:
            merged._cover(other.base, other.base + other.counts.shape[1] - 1)
            offset = other.base - merged.base
            merged.counts[:, offset : offset + other.counts.shape[1]] += other.counts.to(merged.counts.device)
        merged.minimum = torch.minimum(merged.minimum, other.minimum.to(merged.minimum.device))
        merged.maximum = torch.maximum(merged.maximum, other.maximum.to(merged.maximum.device))
        return merged

    def trimmed(self) -> QuantileSketch:
        """The same sketch with empty buckets at both ends dropped (a canonical form)."""
        occupied = self.counts.sum(dim=0).nonzero()
        if occupied.numel() == 0:
            return QuantileSketch(self.counts[:, :0].clone(), 0, self.minimum.clone(), self.maximum.clone())
        first, last = int(occupied[0]), int(occupied[-1])
        return QuantileSketch(
            self.counts[:, first : last + 1].clone(),
            self.base + first,
            self.minimum.clone(),
            self.maximum.clone(),
        )

    def quantile(self, q: float) -> torch.Tensor:
        """Each unit's ``q`` quantile (float32, ``(units,)``), as ``torch.quantile`` defines it."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must lie in [0, 1], got {q}")
        total = self.total()
        if bool((total == 0).any()):
            raise ValueError("the sketch has units that saw no values; cannot read a quantile")
        # Read out where the counts live: copying a GPU histogram to the host costs more than
        # the whole readout.
        counts = self.counts
        cumulative = counts.cumsum(dim=1)
        rank = q * (total - 1).double()
        lower = rank.floor().long()
        upper = torch.minimum(lower + 1, total - 1)
        fraction = rank - lower.double()
        minimum, maximum = self.minimum.double(), self.maximum.double()
        low_value = self._value_at(cumulative, counts, lower, minimum, maximum)
        high_value = self._value_at(cumulative, counts, upper, minimum, maximum)
        return (low_value + fraction * (high_value - low_value)).float().cpu()

    def _value_at(
        self,
        cumulative: torch.Tensor,
        counts: torch.Tensor,
        rank: torch.Tensor,
        minimum: torch.Tensor,
        maximum: torch.Tensor,
    ) -> torch.Tensor:
        """Estimated order statistic ``rank`` of each unit: spread uniformly inside its bucket.

        The first and last order statistics are the exact running min and max.
        """
        column = torch.searchsorted(cumulative, rank.view(-1, 1), right=True).view(-1)
        in_bucket = counts.gather(1, column.view(-1, 1)).view(-1).double()
        before = cumulative.gather(1, column.view(-1, 1)).view(-1) - in_bucket.long()
        low, high = bucket_bounds(column + self.base)
        position = ((rank - before).double() + 0.5) / in_bucket
        estimate = torch.maximum(torch.minimum(low + position * (high - low), maximum), minimum)
        estimate = torch.where(rank == 0, minimum, estimate)
        return torch.where(rank == cumulative[:, -1] - 1, maximum, estimate)
