"""Describer training on a GPU (run where CUDA exists: ``pytest -m gpu``)."""

from __future__ import annotations

import pytest
import torch
from test_describe_training import exact_accuracy, small_config, toy_data

from milan_plugin.describe.training import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_training_on_cuda_learns_and_returns_a_cpu_describer(tmp_path):
    features, texts = toy_data(48, seed=2)
    config = small_config(max_epochs=25, lm_max_epochs=5, patience=25, dropout=0.0, hidden_size=32)
    describer = Trainer(config, tmp_path, progress=False, bleu=exact_accuracy, device="cuda").fit(
        features[:36], texts[:36], features[36:], texts[36:]
    )
    assert {parameter.device.type for parameter in describer.parameters()} == {"cpu"}
    describer.beam_size = 10
    assert exact_accuracy(describer.describe_features(features[36:]), texts[36:]) >= 0.75
