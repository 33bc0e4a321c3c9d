"""p(d|E): a Show-Attend-Tell LSTM over the k exemplar vectors of one unit.

Module and parameter names follow the original MILAN decoder (``init_h.0``, ``attend.*``,
``feature_gate.0``, ``lstm``, ``output.1``, ...) so that released checkpoints load with a plain
``load_state_dict``. One addition: the buffers ``feature_shift`` / ``feature_scale`` standardise
the exemplar vectors with statistics of the training features (identity for imported checkpoints).
Backbone stages differ in scale (MobileNetV2's five pooled stages: mean per-dimension deviation
from 0.23 to 0.66 on the synthetic exemplars), and the tanh initial state and additive attention
work best on inputs of unit scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from milan_plugin.errors import InvalidInputError

#: Buffers this package adds to the original captioner's parameters.
NORMALISATION_BUFFERS = ("feature_shift", "feature_scale")


@dataclass
class CaptionerConfig:
    """Sizes of the captioner; the defaults are the paper's."""

    feature_size: int
    vocab_size: int
    embedding_size: int = 128
    hidden_size: int = 512
    attention_hidden_size: int | None = None
    dropout: float = 0.5
    length: int = 15

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Attention(nn.Module):
    """Additive attention: a distribution over the k exemplar vectors given the LSTM state."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int | None = None) -> None:
        super().__init__()
        hidden_size = hidden_size or min(query_size, key_size)
        self.query_to_hidden = nn.Linear(query_size, hidden_size)
        self.key_to_hidden = nn.Linear(key_size, hidden_size)
        self.output = nn.Sequential(nn.Linear(hidden_size, 1), nn.Softmax(dim=1))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor | None = None):
        """Weights (batch, k); pass ``projected_keys`` = ``key_to_hidden(keys)`` to reuse it across steps."""
        if projected_keys is None:
            projected_keys = self.key_to_hidden(keys)
        hidden = torch.tanh(self.query_to_hidden(query).unsqueeze(1) + projected_keys)
        return self.output(hidden).view(*keys.shape[:2])


class Captioner(nn.Module):
    """One ``step`` emits log p(w_t | E, w_<t); :meth:`forward` runs teacher-forced."""

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        features, hidden = config.feature_size, config.hidden_size
        self.init_h = nn.Sequential(nn.Linear(features, hidden), nn.Tanh())
        self.init_c = nn.Sequential(nn.Linear(features, hidden), nn.Tanh())
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.attend = Attention(hidden, features, hidden_size=config.attention_hidden_size)
        self.feature_gate = nn.Sequential(nn.Linear(hidden, features), nn.Sigmoid())
        self.lstm = nn.LSTMCell(config.embedding_size + features, hidden)
        self.output = nn.Sequential(
            nn.Dropout(p=config.dropout), nn.Linear(hidden, config.vocab_size), nn.LogSoftmax(dim=-1)
        )
        self.register_buffer("feature_shift", torch.zeros(features))
        self.register_buffer("feature_scale", torch.ones(features))

    @torch.no_grad()
    def fit_normalisation(self, features: torch.Tensor) -> None:
        """Standardise with the mean and deviation of ``features`` (any shape ending in feature_size).

        Deviations are floored at 1e-3, so a dimension that barely varies is not blown up far past
        unit scale (one that never varies becomes 0).
        """
        flat = features.reshape(-1, self.config.feature_size).float()
        self.feature_shift.copy_(flat.mean(dim=0))
        self.feature_scale.copy_(flat.std(dim=0).clamp_min(1e-3))

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """Standardised exemplar vectors: what :meth:`initial_state`, :meth:`project_keys` and
        :meth:`step` take. Decoders call it once per batch of units."""
        if features.dim() != 3 or features.shape[-1] != self.config.feature_size:
            raise InvalidInputError(
                f"captioner expects features (batch, k, {self.config.feature_size}); "
                f"got {tuple(features.shape)}"
            )
        return (features - self.feature_shift) / self.feature_scale

    def initial_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h0, c0 from the mean prepared exemplar vector; ``features`` is (batch, k, feature_size)."""
        mean = features.mean(dim=1)
        return self.init_h(mean), self.init_c(mean)

    def project_keys(self, features: torch.Tensor) -> torch.Tensor:
        """The attention's key projection; it does not change between steps, so decoders compute it once."""
        return self.attend.key_to_hidden(features)

    def step(
        self,
        features: torch.Tensor,
        tokens: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor],
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Log-probabilities of the next token, the attention used, and the new state."""
        h, c = state
        attention = self.attend(h, features, projected_keys)
        context = self.feature_gate(h) * torch.einsum("bk,bkf->bf", attention, features)
        h, c = self.lstm(torch.cat([self.embedding(tokens), context], dim=-1), (h, c))
        return self.output(h), attention, (h, c)

    def forward(
        self, features: torch.Tensor, targets: torch.Tensor, start_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probs (B, T, V) and attentions (B, T, k) for ``targets`` (B, T).

        ``features`` are raw encoder vectors. Step t reads target t-1 (``<start>`` at t = 0), as in
        training.
        """
        features = self.prepare(features)
        state = self.initial_state(features)
        projected = self.project_keys(features)
        previous = torch.full((len(targets),), start_index, dtype=torch.long, device=targets.device)
        log_probs, attentions = [], []
        for t in range(targets.shape[1]):
            step_log_probs, attention, state = self.step(features, previous, state, projected)
            log_probs.append(step_log_probs)
            attentions.append(attention)
            previous = targets[:, t]
        return torch.stack(log_probs, dim=1), torch.stack(attentions, dim=1)

    def sequence_log_prob(
        self, features: torch.Tensor, targets: torch.Tensor, pad_index: int, start_index: int
    ):
        """Summed log p(targets | E) per row, padding ignored."""
        log_probs, _ = self(features, targets, start_index)
        picked = log_probs.gather(2, targets.clamp_max(log_probs.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
        return (picked * (targets != pad_index)).sum(dim=1)
