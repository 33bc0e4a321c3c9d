"""The ``text:wpmi`` describer: names the n-gram a language-model unit fires on.

MILAN ranks candidate descriptions by weighted pointwise mutual information,
``log p(d | exemplars) - λ log p(d)``. For token exemplars the candidates are the n-grams that
*end* at a token where the unit fires (mask true): ``p(g | masked)`` is the share of firing
positions whose n-gram is ``g`` and ``p(g)`` its share of all n-grams of the corpus. The first
term rewards n-grams that explain every firing; the second prefers the more specific of two that
explain them equally well (a bigram over its last word), as long as it does not cost coverage.

This is a description of *what triggers* a unit, not of what the unit does downstream, and it
only names surface n-grams (at most ``max_n`` tokens) inside the exemplar windows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from milan_plugin.descriptions import Candidate, Description
from milan_plugin.errors import InvalidInputError

NAME = "text:wpmi"
VERSION = "1"


class TextDescriber:
    """wPMI over firing n-grams (see the module docstring).

    Args:
        lm_weight: λ, the weight of ``log p(g)`` (MILAN's 0.2).
        max_n: the longest n-gram considered.
        candidates: how many ranked candidates each description keeps.
    """

    name = NAME
    version = VERSION

    def __init__(self, lm_weight: float = 0.2, max_n: int = 3, candidates: int = 5) -> None:
        if max_n < 1:
            raise InvalidInputError(f"max_n must be at least 1, got {max_n}")
        self.lm_weight = float(lm_weight)
        self.max_n = int(max_n)
        self.candidates = int(candidates)

    def __repr__(self) -> str:
        return f"TextDescriber(lm_weight={self.lm_weight}, max_n={self.max_n})"

    def describe(self, exemplars: Any, units: Sequence[int] | None = None) -> list[Description]:
        source = _text_source(exemplars)
        chosen = exemplars.units.tolist() if units is None else [int(unit) for unit in units]
        return [self._describe_unit(exemplars, source, unit) for unit in chosen]

    def _describe_unit(self, exemplars: Any, source: Any, unit: int) -> Description:
        row = exemplars.row(unit)
        masks = exemplars.masks(unit)
        if masks.dim() != 2:
            raise InvalidInputError(
                f"{NAME} describes token exemplars (masks (k, T)); layer {exemplars.layer!r} has image maps"
            )
        tokens = source.window_tokens(exemplars.ids[row].tolist()).tolist()
        ranked = self.rank(tokens, masks.tolist(), source)
        settings = dict(exemplars.settings)
        if not ranked:
            return Description(
                layer=exemplars.layer,
                unit=int(unit),
                text="(never fires above its threshold on these exemplars)",
                score=float("-inf"),
                describer=self.name,
                describer_version=self.version,
                exemplar_settings=settings,
            )
        best = ranked[0]
        return Description(
            layer=exemplars.layer,
            unit=int(unit),
            text=best.text,
            score=best.score,
            candidates=tuple(ranked[: self.candidates]),
            describer=self.name,
            describer_version=self.version,
            exemplar_settings=settings,
        )

    def rank(self, tokens: list[list[int]], masks: list[list[bool]], source: Any) -> list[Candidate]:
        """Candidates for one unit, best first, from its exemplar windows and firing masks."""
        scored = []
        for n in range(1, self.max_n + 1):
            firing: Counter = Counter()
            total = 0
            for window, mask in zip(tokens, masks, strict=True):
                for end, fires in enumerate(mask):
                    if fires and end + 1 >= n:
                        firing[tuple(window[end + 1 - n : end + 1])] += 1
                        total += 1
            if not total:
                continue
            corpus = source.ngram_counts(n)
            corpus_total = sum(corpus.values())
            for gram, count in firing.items():
                log_given = math.log(count / total)
                log_prior = math.log(corpus.get(gram, 1) / corpus_total)
                text = describe_ngram([source.vocabulary[token] for token in gram])
                scored.append(
                    Candidate(
                        text=text,
                        score=log_given - self.lm_weight * log_prior,
                        captioner_logprob=log_given,
                        lm_logprob=log_prior,
                    )
                )
        scored.sort(key=lambda candidate: (-candidate.score, candidate.text))
        return scored


def describe_ngram(words: Sequence[str]) -> str:
    """``the word "river"`` or ``the phrase "ice cream"``."""
    kind = "word" if len(words) == 1 else "phrase"
    return f'the {kind} "{" ".join(words)}"'


def _text_source(exemplars: Any) -> Any:
    spec = exemplars.settings.get("source_spec", "")
    if not str(spec).startswith("text:"):
        raise InvalidInputError(
            f"{NAME} needs exemplars computed on a text: source (text:synthetic, text:PATH), got {spec!r}"
        )
    from milan_plugin.plugins import open_source

    return open_source(spec)


def open_text_describer(name: str, options: Mapping[str, Any]) -> TextDescriber | None:
    """The describer for ``text:wpmi`` (options ``lm_weight``, ``max_n``, ``candidates``)."""
    if name != NAME:
        return None
    allowed = {"lm_weight", "max_n", "candidates"}
    return TextDescriber(**{key: value for key, value in options.items() if key in allowed})
