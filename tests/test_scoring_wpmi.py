"""The wPMI scorer rates texts the way MILAN's reranking does."""

from __future__ import annotations

import pytest
import torch
from test_describe_checkpoints import random_describer

from milan_plugin.errors import InvalidInputError
from milan_plugin.scoring.wpmi import WPMIScorer


def test_wpmi_scores_of_images_match_the_decoder_ranking():
    describer = random_describer(seed=4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8, generator=generator)
    masks = torch.rand(4, 224, 224, generator=generator) > 0.6
    features = describer.encoder.encode(images, masks)
    beam = describer.decode(features[None])[0][:4]
    texts = [
        describer.vocabulary.decode(h.tokens) for h in beam if describer.vocabulary.stop_index in h.tokens
    ]
    scorer = WPMIScorer(describer)
    scores = scorer.score(texts, images, masks)
    expected = [h.score for h in beam if describer.vocabulary.stop_index in h.tokens]
    assert scores.tolist() == pytest.approx(expected, abs=1e-3)
    stronger = WPMIScorer(describer, lm_weight=1.0).score(texts, images, masks)
    assert not torch.allclose(stronger, scores)
    with pytest.raises(InvalidInputError, match="one mask per image"):
        scorer.score(texts, images, masks[:2])
