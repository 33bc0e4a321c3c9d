"""Decoding, batched over units: beam search on p(d|E), wPMI reranking, greedy and sampling.

The paper's procedure: beam search (beam 50, at most 15 tokens, summed log-probabilities, no
length normalisation) on the captioner alone, then rerank the finished beams by
``log p(d|E) - λ log p(d)``. A finished hypothesis stays in the beam with its score frozen (its
only continuation is a free ``<stop>``), so it competes fairly with longer ones. The language
model scores exactly what the captioner scored: ``<start>`` + the words + one ``<stop>`` when the
hypothesis stopped, and nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from milan_plugin.describe.captioner import Captioner
from milan_plugin.describe.language_model import LanguageModel


@dataclass(frozen=True)
class Hypothesis:
    """A decoded token sequence (ending in ``<stop>`` when it stopped) and its scores."""

    tokens: tuple[int, ...]
    captioner_log_prob: float
    lm_log_prob: float | None = None
    score: float = 0.0


def _trim(row: list[int], stop_index: int) -> tuple[int, ...]:
    return tuple(row[: row.index(stop_index) + 1]) if stop_index in row else tuple(row)


@torch.no_grad()
def beam_search(
    captioner: Captioner,
    features: torch.Tensor,
    *,
    start_index: int,
    stop_index: int,
    beam_size: int = 50,
    max_length: int = 15,
) -> list[list[Hypothesis]]:
    """The final beam of every unit, best first; ``features`` is (units, k, feature_size)."""
    units, beams = len(features), beam_size
    vocab = captioner.config.vocab_size
    device = features.device
    features = captioner.prepare(features)
    repeated = features.repeat_interleave(beams, dim=0)
    projected = captioner.project_keys(features).repeat_interleave(beams, dim=0)
    state = captioner.initial_state(repeated)
    scores = torch.full((units, beams), float("-inf"), device=device)
    scores[:, 0] = 0.0  # every beam starts identical: expand only one of them
    finished = torch.zeros(units, beams, dtype=torch.bool, device=device)
    tokens = torch.zeros(units, beams, 0, dtype=torch.long, device=device)
    previous = torch.full((units * beams,), start_index, dtype=torch.long, device=device)
    frozen = torch.full((vocab,), float("-inf"), device=device)
    frozen[stop_index] = 0.0
    offsets = torch.arange(units, device=device).unsqueeze(1) * beams
    for _ in range(max_length):
        log_probs, _, new_state = captioner.step(repeated, previous, state, projected)
        log_probs = torch.where(finished.unsqueeze(-1), frozen, log_probs.view(units, beams, vocab))
        candidates = (scores.unsqueeze(-1) + log_probs).view(units, beams * vocab)
        scores, flat = candidates.topk(beams, dim=1)
        origin, words = flat // vocab, flat % vocab
        tokens = torch.cat(
            [tokens.gather(1, origin.unsqueeze(-1).expand_as(tokens)), words.unsqueeze(-1)], dim=2
        )
        finished = finished.gather(1, origin) | (words == stop_index)
        chosen = (origin + offsets).view(-1)
        state = (new_state[0][chosen], new_state[1][chosen])
        previous = words.view(-1)
        if bool(finished.all()):
            break
    results = []
    for unit_tokens, unit_scores in zip(tokens.tolist(), scores.tolist(), strict=True):
        unit = [
            Hypothesis(_trim(row, stop_index), score, score=score)
            for row, score in zip(unit_tokens, unit_scores, strict=True)
            if score != float("-inf")
        ]
        results.append(unit)
    return results


@torch.no_grad()
def greedy(
    captioner: Captioner,
    features: torch.Tensor,
    *,
    start_index: int,
    stop_index: int,
    max_length: int = 15,
    generator: torch.Generator | None = None,
    sample: bool = False,
) -> list[Hypothesis]:
    """Argmax decoding (or ancestral sampling with ``sample=True``) of p(d|E), one per unit."""
    units = len(features)
    features = captioner.prepare(features)
    state = captioner.initial_state(features)
    projected = captioner.project_keys(features)
    previous = torch.full((units,), start_index, dtype=torch.long, device=features.device)
    finished = torch.zeros(units, dtype=torch.bool, device=features.device)
    totals = torch.zeros(units, device=features.device)
    steps = []
    for _ in range(max_length):
        log_probs, _, state = captioner.step(features, previous, state, projected)
        if sample:
            words = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
        else:
            words = log_probs.argmax(dim=-1)
        words = torch.where(finished, torch.full_like(words, stop_index), words)
        totals += torch.where(
            finished, torch.zeros_like(totals), log_probs.gather(1, words[:, None]).squeeze(1)
        )
        steps.append(words)
        finished |= words == stop_index
        previous = words
        if bool(finished.all()):
            break
    rows = torch.stack(steps, dim=1).tolist()
    return [
        Hypothesis(_trim(row, stop_index), total, score=total)
        for row, total in zip(rows, totals.tolist(), strict=True)
    ]


@torch.no_grad()
def lm_log_probs(
    lm: LanguageModel, sequences: list[tuple[int, ...]], *, start_index: int, pad_index: int
) -> torch.Tensor:
    """log p(``<start>`` + sequence) for each sequence, scoring exactly its tokens."""
    device = next(lm.parameters()).device
    if not sequences:
        return torch.zeros(0, device=device)
    width = max(1, max(len(sequence) for sequence in sequences))
    tokens = torch.full((len(sequences), width), pad_index, dtype=torch.long, device=device)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    lengths = torch.tensor([len(sequence) for sequence in sequences], device=device)
    return lm.sequence_log_prob(tokens, lengths, start_index)


def rerank(
    beams: list[list[Hypothesis]],
    lm: LanguageModel,
    *,
    lm_weight: float,
    start_index: int,
    pad_index: int,
) -> list[list[Hypothesis]]:
    """Rescore every hypothesis by ``log p(d|E) - lm_weight * log p(d)``; best first per unit."""
    flat = [hypothesis for beam in beams for hypothesis in beam]
    scores = lm_log_probs(
        lm, [hypothesis.tokens for hypothesis in flat], start_index=start_index, pad_index=pad_index
    ).tolist()
    rescored = iter(
        replace(hypothesis, lm_log_prob=lm_score, score=hypothesis.captioner_log_prob - lm_weight * lm_score)
        for hypothesis, lm_score in zip(flat, scores, strict=True)
    )
    return [sorted((next(rescored) for _ in beam), key=lambda item: -item.score) for beam in beams]
