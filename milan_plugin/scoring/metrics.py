"""Caption metrics for any annotation set: corpus BLEU-1..4, CIDEr-D and BERTScore F1, all offline.

BLEU and CIDEr-D follow the COCO caption evaluation code (``pycocoevalcap``) exactly, so numbers
are comparable with published ones; tests check both against it. Text is lowercased, a trailing
"." dropped and words split on whitespace and punctuation before counting n-grams.
BERTScore is in :mod:`milan_plugin.scoring.metric_bertscore`.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

_TINY, _SMALL = 1e-15, 1e-9
CIDER_SIGMA = 6.0


def tokenize(text: str) -> list[str]:
    """Lowercase words and numbers; the tokenisation every metric here uses."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for order in range(1, n + 1):
        for start in range(len(words) - order + 1):
            counts[tuple(words[start : start + order])] += 1
    return counts


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(
            f"{len(candidates)} candidates but {len(references)} reference lists; give one list per candidate"
        )
    if not candidates:
        raise ValueError("no candidates to score")
    empty = [index for index, refs in enumerate(references) if not refs]
    if empty:
        raise ValueError(f"candidates {empty[:5]} have no references; every candidate needs at least one")


def corpus_bleu(
    candidates: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4
) -> list[float]:
    """Corpus BLEU-1..``max_order`` with several references per candidate (closest reference length).

    Clipped n-gram counts are summed over the corpus before the geometric mean, and the brevity
    penalty uses, per candidate, the reference length closest to it, as in ``pycocoevalcap``.
    """
    _check(candidates, references)
    correct, total = [0] * max_order, [0] * max_order
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        words = tokenize(candidate)
        ref_words = [tokenize(ref) for ref in refs]
        best: dict[tuple[str, ...], int] = defaultdict(int)
        for ref in ref_words:
            for gram, count in _ngrams(ref, max_order).items():
                best[gram] = max(best[gram], count)
        for gram, count in _ngrams(words, max_order).items():
            correct[len(gram) - 1] += min(count, best.get(gram, 0))
        for order in range(max_order):
            total[order] += max(len(words) - order, 0)
        candidate_length += len(words)
        reference_length += min((abs(len(ref) - len(words)), len(ref)) for ref in ref_words)[1]
    scores, product = [], 1.0
    ratio = (candidate_length + _TINY) / (reference_length + _SMALL)
    for order in range(max_order):
        product *= (correct[order] + _TINY) / (total[order] + _SMALL)
        score = product ** (1.0 / (order + 1))
        if ratio < 1:
            score *= math.exp(1 - 1 / ratio)
        scores.append(score)
    return scores


def cider_d(
    candidates: Sequence[str], references: Sequence[Sequence[str]], sigma: float = CIDER_SIGMA
) -> tuple[float, list[float]]:
    """CIDEr-D (corpus mean, per-candidate scores), n-grams up to 4, IDF from these references.

    As in ``pycocoevalcap``: tf-idf vectors per n-gram order, clipped cosine similarity, a
    Gaussian length penalty (``sigma``) and a factor 10. The length it penalises is the bigram
    count, exactly as the COCO code does, so scores match published ones.
    """
    _check(candidates, references)
    order = 4
    ref_counts = [[_ngrams(tokenize(ref), order) for ref in refs] for refs in references]
    document_frequency: Counter[tuple[str, ...]] = Counter()
    for counts in ref_counts:
        for gram in set().union(*(set(count) for count in counts)):
            document_frequency[gram] += 1
    log_documents = math.log(float(len(references)))

    def vector(counts: Counter[tuple[str, ...]]) -> tuple[list[dict], list[float], int]:
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(order)]
        norms = [0.0] * order
        length = 0
        for gram, frequency in counts.items():
            index = len(gram) - 1
            weight = frequency * (log_documents - math.log(max(1.0, document_frequency[gram])))
            vec[index][gram] = weight
            norms[index] += weight**2
            if index == 1:
                length += frequency
        return vec, [math.sqrt(norm) for norm in norms], length

    scores = []
    for candidate, counts in zip(candidates, ref_counts, strict=True):
        hyp_vec, hyp_norm, hyp_len = vector(_ngrams(tokenize(candidate), order))
        total = [0.0] * order
        for ref in counts:
            ref_vec, ref_norm, ref_len = vector(ref)
            penalty = math.exp(-((hyp_len - ref_len) ** 2) / (2 * sigma**2))
            for index in range(order):
                value = sum(
                    min(weight, ref_vec[index].get(gram, 0.0)) * ref_vec[index].get(gram, 0.0)
                    for gram, weight in hyp_vec[index].items()
                )
                if hyp_norm[index] and ref_norm[index]:
                    value /= hyp_norm[index] * ref_norm[index]
                total[index] += value * penalty
        scores.append(sum(total) / order / len(counts) * 10.0)
    return sum(scores) / len(scores), scores
