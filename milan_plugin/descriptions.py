"""Descriptions of units: the records every describer returns and every consumer reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """One candidate description with the scores it was ranked by.

    ``captioner_logprob`` is log p(d|E) summed over tokens (stop token included) and
    ``lm_logprob`` is log p(d) under the language model; either is ``None`` for describers that
    do not compute it. ``score`` is what the ranking used (for MILAN, the weighted PMI).
    """

    text: str
    score: float
    captioner_logprob: float | None = None
    lm_logprob: float | None = None


@dataclass(frozen=True)
class Description:
    """The description of one unit, with provenance.

    ``exemplar_settings`` records how the exemplars were made (k, quantile, source fingerprint,
    ...) so that a description can always be traced back to the evidence it was read from.
    """

    layer: str
    unit: int
    text: str
    score: float
    candidates: tuple[Candidate, ...] = ()
    describer: str = ""
    describer_version: str = ""
    exemplar_settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        where = f"{self.layer}[{self.unit}]"
        return f"Description({where}: {self.text!r}, score={self.score:.3f}, by {self.describer})"

    def __str__(self) -> str:
        return self.text

    def to_record(self) -> dict[str, Any]:
        """A flat, table-ready dict (candidates as a list of dicts)."""
        record = asdict(self)
        record["candidates"] = [asdict(candidate) for candidate in self.candidates]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Description:
        """Inverse of :meth:`to_record`."""
        data = dict(record)
        data["candidates"] = tuple(Candidate(**candidate) for candidate in data.get("candidates") or ())
        data["exemplar_settings"] = dict(data.get("exemplar_settings") or {})
        return cls(**data)
