"""The wPMI scorer: ``log p(d|E) - λ log p(d)`` of given texts, as MILAN ranks its candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from milan_plugin.errors import InvalidInputError


class WPMIScorer:
    """Teacher-forced captioner log-prob minus ``lm_weight`` times the LM log-prob of each text.

    ``describer`` is a :class:`~milan_plugin.describe.describer.MilanDescriber` or a name for
    :func:`milan_plugin.load_describer` (loaded on first use, so registering the scorer is free).
    Words outside the describer's vocabulary score as ``<unk>``.
    """

    name = "wpmi"

    def __init__(self, describer: Any = "milan:demo", lm_weight: float | None = None) -> None:
        self._describer = describer
        self.lm_weight = lm_weight

    @property
    def describer(self) -> Any:
        if isinstance(self._describer, str):
            from milan_plugin.describe.loading import load_describer

            self._describer = load_describer(self._describer, progress=False)
        return self._describer

    def __repr__(self) -> str:
        return f"WPMIScorer(describer={getattr(self._describer, 'name', self._describer)!r})"

    @torch.no_grad()
    def score(self, texts: Sequence[str], images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Scores (len(texts),) for uint8 images (k, 3, H, W) and bool masks (k, H, W)."""
        if len(images) != len(masks):
            raise InvalidInputError(f"{len(images)} images but {len(masks)} masks; give one mask per image")
        return self.score_features(texts, self.describer.encoder.encode(images, masks))

    @torch.no_grad()
    def score_features(self, texts: Sequence[str], features: torch.Tensor) -> torch.Tensor:
        """Scores for already encoded exemplars ``features`` (k, feature_size)."""
        from milan_plugin.describe.decoding import lm_log_probs

        describer = self.describer
        vocab = describer.vocabulary
        lm_weight = describer.lm_weight if self.lm_weight is None else self.lm_weight
        features = features.to(describer.device).unsqueeze(0)
        sequences = [tuple(vocab.encode(text)) for text in texts]
        width = max((len(sequence) for sequence in sequences), default=1)
        targets = torch.full(
            (len(sequences), width), vocab.pad_index, dtype=torch.long, device=describer.device
        )
        for row, sequence in enumerate(sequences):
            targets[row, : len(sequence)] = torch.tensor(sequence)
        was_training = describer.training
        describer.eval()
        try:
            captioner = describer.captioner.sequence_log_prob(
                features.expand(len(sequences), -1, -1), targets, vocab.pad_index, vocab.start_index
            )
            lm = lm_log_probs(
                describer.lm, sequences, start_index=vocab.start_index, pad_index=vocab.pad_index
            )
        finally:
            describer.train(was_training)
        return (captioner - lm_weight * lm).cpu()
