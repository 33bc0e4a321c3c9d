"""p(d): a 2-layer LSTM language model over the captioner's vocabulary.

Names (``embedding``, ``lstm``, ``output.0``) follow the original MILAN language model so that
released weights load directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class LanguageModelConfig:
    """Sizes of the language model; the defaults are the paper's."""

    vocab_size: int
    pad_index: int
    embedding_size: int = 128
    hidden_size: int = 512
    layers: int = 2
    dropout: float = 0.5

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class LanguageModel(nn.Module):
    """Next-token log-probabilities for ``<start> w1 ... wn``."""

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_index)
        self.lstm = nn.LSTM(
            input_size=config.embedding_size,
            hidden_size=config.hidden_size,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.output = nn.Sequential(nn.Linear(config.hidden_size, config.vocab_size), nn.LogSoftmax(dim=-1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Log-probs (B, T, V): position t predicts the token after ``inputs[:, t]``."""
        hidden, _ = self.lstm(self.embedding(inputs))
        return self.output(hidden)

    def sequence_log_prob(
        self, tokens: torch.Tensor, lengths: torch.Tensor, start_index: int
    ) -> torch.Tensor:
        """log p(``<start>`` + d) summed over exactly the first ``lengths[i]`` tokens of row i.

        ``tokens`` (B, T) holds d and, where the hypothesis stopped, its single ``<stop>``
        (counted in ``lengths``); nothing after it is scored.
        """
        start = torch.full((len(tokens), 1), start_index, dtype=torch.long, device=tokens.device)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1).clamp_max(self.config.vocab_size - 1)
        log_probs = self(inputs)
        picked = log_probs.gather(2, tokens.clamp_max(self.config.vocab_size - 1).unsqueeze(-1)).squeeze(-1)
        positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        return (picked * (positions < lengths.unsqueeze(1))).sum(dim=1)
