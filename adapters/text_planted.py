"""A tiny language model with planted neurons whose triggers are known, to judge text describers.

``PlantedTextModel`` embeds tokens one-hot, runs a causal width-2 convolution (each position
sees its own token and the previous one) whose units are the planted neurons, then a ReLU
(``act``) and a linear read-out to next-token logits. Unit ``i`` is set to fire (value 1) exactly
where its trigger occurs: a word (weight 1 on the current token, bias 0) or a two-word phrase
(weight 1 on each of its words at their positions, bias -1, so either word alone gives 0 after
the ReLU). Every other weight is 0, so the ground truth is exact; the describer still has to
find the trigger from the exemplars alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from milan_plugin.errors import InvalidInputError


class PlantedTextModel(nn.Module):
    """Next-token logits from ``(batch, tokens)`` ids; describe layer ``act`` (``(B, units, T)``).

    Args:
        vocabulary_size: number of token ids.
        triggers: one tuple of token ids per unit, of length 1 (a word) or 2 (a phrase, in order).
        seed: seeds the read-out weights (they do not affect the planted units).
    """

    def __init__(self, vocabulary_size: int, triggers: Sequence[Sequence[int]], seed: int = 0) -> None:
        super().__init__()
        if not triggers:
            raise InvalidInputError("plant at least one trigger")
        self.vocabulary_size = int(vocabulary_size)
        self.units = nn.Conv1d(self.vocabulary_size, len(triggers), kernel_size=2)
        self.act = nn.ReLU()
        generator = torch.Generator().manual_seed(seed)
        self.readout = nn.Linear(len(triggers), self.vocabulary_size)
        with torch.no_grad():
            self.units.weight.zero_()
            self.units.bias.zero_()
            for unit, trigger in enumerate(triggers):
                if not 1 <= len(trigger) <= 2 or not all(0 <= t < self.vocabulary_size for t in trigger):
                    raise InvalidInputError(
                        f"trigger {tuple(trigger)} must be 1 or 2 token ids below {self.vocabulary_size}"
                    )
                if len(trigger) == 1:
                    self.units.weight[unit, trigger[0], 1] = 1.0
                else:
                    self.units.weight[unit, trigger[0], 0] = 1.0
                    self.units.weight[unit, trigger[1], 1] = 1.0
                    self.units.bias[unit] = -1.0
            self.readout.weight.copy_(torch.randn(self.readout.weight.shape, generator=generator) * 0.1)
            self.readout.bias.zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dtype != torch.long or tokens.ndim != 2:
            raise InvalidInputError(
                f"expected token ids (batch, tokens) of dtype long, got {tuple(tokens.shape)}"
            )
        onehot = F.one_hot(tokens, self.vocabulary_size).to(self.units.weight.dtype).transpose(1, 2)
        hidden = self.act(self.units(F.pad(onehot, (1, 0))))
        return self.readout(hidden.transpose(1, 2))


def plant_triggers(
    source: object, words: int = 5, phrases: int = 5, max_share: float = 0.008
) -> list[tuple[str, ...]]:
    """Triggers for a planted model over a text source: ``words`` single words and ``phrases``
    two-word phrases, each occurring in the corpus but at most ``max_share`` of positions (so it
    stays above a unit's 0.99 quantile), picked deterministically from the middle of the
    frequency range."""
    unigrams = source.ngram_counts(1)  # type: ignore[attr-defined]
    bigrams = source.ngram_counts(2)  # type: ignore[attr-defined]
    vocabulary = source.vocabulary  # type: ignore[attr-defined]
    total = sum(unigrams.values())
    from milan_plugin.adapters.text import PHRASES

    rare_enough = [
        (vocabulary[gram[0]],)
        for gram, count in sorted(unigrams.items(), key=lambda item: (-item[1], item[0]))
        if count / total <= max_share and vocabulary[gram[0]].isalpha() and count >= 20
    ]
    phrase_words = {word for phrase in PHRASES for word in phrase.split()}
    chosen_words = [gram for gram in rare_enough if gram[0] not in phrase_words][:words]
    index = {word: position for position, word in enumerate(vocabulary)}
    present = [
        tuple(phrase.split())
        for phrase in PHRASES
        if all(word in index for word in phrase.split())
        and bigrams.get(tuple(index[word] for word in phrase.split()), 0) >= 10
    ]
    if len(chosen_words) < words or len(present) < phrases:
        raise InvalidInputError(
            f"the corpus has {len(chosen_words)} usable words and {len(present)} phrases; "
            f"asked for {words} and {phrases}: use a longer corpus"
        )
    return chosen_words + present[:phrases]


def planted_text_model(source: object, triggers: Sequence[Sequence[str]], seed: int = 0) -> PlantedTextModel:
    """A :class:`PlantedTextModel` whose unit ``i`` fires on ``triggers[i]`` (words of ``source``)."""
    vocabulary = source.vocabulary  # type: ignore[attr-defined]
    index = {word: position for position, word in enumerate(vocabulary)}
    unknown = [word for trigger in triggers for word in trigger if word not in index]
    if unknown:
        raise InvalidInputError(f"trigger words {unknown} are not in the source's vocabulary")
    return PlantedTextModel(
        len(vocabulary), [[index[word] for word in trigger] for trigger in triggers], seed=seed
    )
