"""Training: the best state is really restored, runs resume exactly, the describer learns."""

from __future__ import annotations

import json

import pytest
import torch

from milan_plugin.describe.training import LOG_FILE, EarlyStopping, Trainer, TrainingConfig

COLOURS = ["red", "blue", "green", "yellow"]
SHAPES = ["circles", "squares", "stars"]


def toy_data(units: int, seed: int):
    """Features whose first dimensions encode a colour and a shape; descriptions name them."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(units, 4, 12, generator=generator) * 0.1
    texts = []
    for unit in range(units):
        colour, shape = unit % len(COLOURS), (unit // len(COLOURS)) % len(SHAPES)
        features[unit, :, colour] += 1.0
        features[unit, :, len(COLOURS) + shape] += 1.0
        texts.append([f"{COLOURS[colour]} {SHAPES[shape]}", f"the {COLOURS[colour]} {SHAPES[shape]}"])
    return features, texts


def small_config(**overrides) -> TrainingConfig:
    values = dict(
        encoder="mobilenet_v2",
        encoder_weights=None,
        embedding_size=8,
        hidden_size=16,
        lm_embedding_size=8,
        lm_hidden_size=16,
        batch_size=8,
        lm_batch_size=16,
        max_epochs=6,
        lm_max_epochs=2,
        patience=10,
        lm_patience=1,
        dropout=0.1,
    )
    values.update(overrides)
    return TrainingConfig(**values)


def exact_accuracy(predictions, texts):
    return sum(
        p.lower() in [t.lower() for t in ref] for p, ref in zip(predictions, texts, strict=True)
    ) / len(texts)


def test_early_stopping_keeps_a_deep_copy_of_the_best_state():
    model = torch.nn.Linear(2, 2)
    stopper = EarlyStopping(patience=1, higher_is_better=True)
    stopper.update(1.0, 0, model)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(5.0)  # an optimiser step updates parameters in place
    assert stopper.update(0.5, 1, model) is False
    assert stopper.update(0.4, 2, model) is True  # bad epochs (2) exceed patience (1)
    stopper.restore(model)
    assert torch.equal(model.weight, best)


def test_training_restores_the_best_epoch_not_the_last(tmp_path):
    features, texts = toy_data(24, seed=0)
    scripted = iter([0.1, 0.6, 0.3, 0.2, 0.1, 0.05])
    trainer = Trainer(small_config(patience=2), tmp_path, progress=False, bleu=lambda *_: next(scripted))
    describer = trainer.fit(features, texts, features[:6], texts[:6])
    log = json.loads((tmp_path / LOG_FILE).read_text())
    epochs = log["captioner"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4] and epochs[-1]["stopped"]
    assert epochs[-1]["best_epoch"] == 1
    assert epochs[-1]["restored_digest"] == epochs[1]["state_digest"] != epochs[-1]["state_digest"]
    from milan_plugin.fingerprint import digest_state_dict

    assert digest_state_dict(describer.captioner.state_dict()) == epochs[1]["state_digest"]


def test_interrupted_training_resumes_to_the_same_model(tmp_path):
    features, texts = toy_data(24, seed=1)
    bleu = lambda predictions, references: exact_accuracy(predictions, references)  # noqa: E731
    whole = Trainer(small_config(), tmp_path / "whole", progress=False, bleu=bleu).fit(
        features, texts, features[:8], texts[:8]
    )
    calls = {"n": 0}

    def interrupting(predictions, references):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return bleu(predictions, references)

    with pytest.raises(KeyboardInterrupt):
        Trainer(small_config(), tmp_path / "resumed", progress=False, bleu=interrupting).fit(
            features, texts, features[:8], texts[:8]
        )
    assert (
        len(
            json.loads(
                json.dumps(
                    torch.load(tmp_path / "resumed" / "training-state.pt", weights_only=True)["log"][
                        "captioner"
                    ]
                )
            )
        )
        == 2
    )
    resumed = Trainer(small_config(), tmp_path / "resumed", progress=False, bleu=bleu).fit(
        features, texts, features[:8], texts[:8]
    )
    assert resumed.version == whole.version


def test_a_trained_describer_names_held_out_features_and_wpmi_ranks_like_decoding(tmp_path):
    features, texts = toy_data(48, seed=2)
    config = small_config(
        max_epochs=25, lm_max_epochs=15, lm_patience=4, patience=25, dropout=0.0, hidden_size=32
    )
    describer = Trainer(config, tmp_path, progress=False, bleu=exact_accuracy).fit(
        features[:36], texts[:36], features[36:], texts[36:]
    )
    describer.beam_size = 10
    held_out, held_texts = features[36:], texts[36:]
    assert exact_accuracy(describer.describe_features(held_out), held_texts) >= 0.75
    from milan_plugin.scoring.wpmi import WPMIScorer

    best = describer.decode(held_out[:1])[0][:3]
    texts_of_best = [describer.vocabulary.decode(hypothesis.tokens) for hypothesis in best]
    scores = WPMIScorer(describer).score_features(texts_of_best, held_out[0])
    for hypothesis, score in zip(best, scores.tolist(), strict=True):
        assert score == pytest.approx(hypothesis.score, abs=1e-3)


def test_the_captioner_standardises_features_with_the_training_statistics(tmp_path):
    from milan_plugin.describe.describer import MilanDescriber

    features, texts = toy_data(24, seed=3)
    features = features * 40.0 + 7.0  # far from unit scale, as raw backbone stages are
    trainer = Trainer(small_config(max_epochs=1), tmp_path, progress=False, bleu=lambda *_: 0.0)
    describer = trainer.fit(features, texts, features[:6], texts[:6])
    flat = features.flatten(0, 1)
    torch.testing.assert_close(describer.captioner.feature_shift, flat.mean(dim=0))
    torch.testing.assert_close(describer.captioner.feature_scale, flat.std(dim=0))
    prepared = describer.captioner.prepare(features).flatten(0, 1)
    assert prepared.mean(dim=0).abs().max() < 1e-4 and (prepared.std(dim=0) - 1).abs().max() < 1e-4
    saved = describer.save_pretrained(tmp_path / "saved")
    loaded = MilanDescriber.from_pretrained(saved)
    assert torch.equal(loaded.captioner.feature_scale, describer.captioner.feature_scale)
    assert loaded.describe_features(features[:4]) == describer.describe_features(features[:4])
