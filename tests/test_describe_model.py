"""Vocabulary, encoder pooling, beam search and wPMI reranking of the MILAN describer."""

from __future__ import annotations

import itertools

import pytest
import torch

from milan_plugin.describe.captioner import Captioner, CaptionerConfig
from milan_plugin.describe.decoding import beam_search, greedy, lm_log_probs, rerank
from milan_plugin.describe.describer import MilanDescriber
from milan_plugin.describe.encoder import EncoderConfig, ExemplarEncoder
from milan_plugin.describe.language_model import LanguageModel, LanguageModelConfig
from milan_plugin.describe.vocabulary import Vocabulary, detokenize, tokenize
from milan_plugin.errors import InvalidInputError


def test_tokenize_keeps_stop_words_and_punctuation_lowercased():
    assert tokenize("The Black-and-white stripes, of a dog's fur.") == [
        "the",
        "black",
        "-",
        "and",
        "-",
        "white",
        "stripes",
        ",",
        "of",
        "a",
        "dog",
        "'s",
        "fur",
        ".",
    ]
    assert detokenize(["red", "-", "and", "-", "blue", "stripes", ",", "dots", ".", "more"]) == (
        "Red-and-blue stripes, dots. More"
    )


def test_vocabulary_frequency_order_specials_and_json(tmp_path):
    vocab = Vocabulary.build(["red dots", "blue dots", "dots and red stripes"])
    assert vocab.words[:2] == ["dots", "red"]
    words = len(vocab.words)
    assert (vocab.start_index, vocab.stop_index, vocab.pad_index, vocab.unk_index) == tuple(
        range(words, words + 4)
    )
    assert vocab.encode("red zebra", start=True) == [
        vocab.start_index,
        vocab.ids["red"],
        vocab.unk_index,
        vocab.stop_index,
    ]
    assert (
        vocab.decode([vocab.ids["red"], vocab.ids["dots"], vocab.stop_index, vocab.ids["blue"]]) == "Red dots"
    )
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(InvalidInputError, match="specials"):
        Vocabulary(["red", "<stop>"])


def _tiny_models(seed: int = 0, words: int = 2, feature_size: int = 6):
    torch.manual_seed(seed)
    vocab = Vocabulary([f"w{i}" for i in range(words)])
    captioner = Captioner(CaptionerConfig(feature_size, len(vocab), 4, 8, dropout=0.0)).eval()
    lm = LanguageModel(LanguageModelConfig(len(vocab), vocab.pad_index, 4, 8, dropout=0.0)).eval()
    return vocab, captioner, lm


def _teacher_forced(captioner, features, sequence, vocab):
    """Summed log-probs of every token of ``sequence`` (pads included: beams may emit them)."""
    targets = torch.tensor([sequence])
    with torch.no_grad():
        log_probs, _ = captioner(features, targets, vocab.start_index)
    return float(log_probs[0].gather(1, targets[0, :, None]).sum())


def test_beam_search_with_a_wide_beam_finds_every_sequence_with_its_exact_score():
    vocab, captioner, _ = _tiny_models()
    features = torch.randn(2, 3, 6)
    length, size = 3, len(vocab)
    expected = []
    for unit in range(2):
        scores = {}
        for n in range(1, length + 1):
            for words in itertools.product([t for t in range(size) if t != vocab.stop_index], repeat=n - 1):
                sequence = (*words, vocab.stop_index)
                scores[sequence] = _teacher_forced(
                    captioner, features[unit : unit + 1], list(sequence), vocab
                )
        for words in itertools.product([t for t in range(size) if t != vocab.stop_index], repeat=length):
            scores[words] = _teacher_forced(captioner, features[unit : unit + 1], list(words), vocab)
        expected.append(scores)
    beams = beam_search(
        captioner,
        features,
        start_index=vocab.start_index,
        stop_index=vocab.stop_index,
        beam_size=400,
        max_length=length,
    )
    for unit, beam in enumerate(beams):
        found = {hypothesis.tokens: hypothesis.captioner_log_prob for hypothesis in beam}
        assert found.keys() == expected[unit].keys()
        for sequence, score in found.items():
            assert score == pytest.approx(expected[unit][sequence], abs=1e-4)
        assert [h.score for h in beam] == sorted((h.score for h in beam), reverse=True)


def test_small_beam_keeps_the_best_hypotheses_and_batches_units_independently():
    vocab, captioner, _ = _tiny_models(seed=3, words=5)
    features = torch.randn(3, 4, 6)
    together = beam_search(
        captioner,
        features,
        start_index=vocab.start_index,
        stop_index=vocab.stop_index,
        beam_size=4,
        max_length=5,
    )
    alone = beam_search(
        captioner,
        features[1:2],
        start_index=vocab.start_index,
        stop_index=vocab.stop_index,
        beam_size=4,
        max_length=5,
    )
    assert [h.tokens for h in together[1]] == [h.tokens for h in alone[0]]
    best = together[0][0]
    assert best.captioner_log_prob == pytest.approx(
        _teacher_forced(captioner, features[:1], list(best.tokens), vocab), abs=1e-4
    )
    greedy_best = greedy(
        captioner, features[:1], start_index=vocab.start_index, stop_index=vocab.stop_index, max_length=5
    )[0]
    assert best.captioner_log_prob >= greedy_best.captioner_log_prob - 1e-5


def test_lm_scores_exactly_one_stop_term_and_nothing_after_it():
    vocab, _, lm = _tiny_models(words=3)
    sequence = (0, 2, vocab.stop_index)
    inputs = torch.tensor([[vocab.start_index, 0, 2]])
    with torch.no_grad():
        log_probs = lm(inputs)[0]
    manual = float(log_probs[0, 0] + log_probs[1, 2] + log_probs[2, vocab.stop_index])
    score = lm_log_probs(lm, [sequence], start_index=vocab.start_index, pad_index=vocab.pad_index)
    padded = lm_log_probs(
        lm,
        [sequence, (0, 2, vocab.stop_index, vocab.stop_index, 1)],
        start_index=vocab.start_index,
        pad_index=vocab.pad_index,
    )
    assert float(score[0]) == pytest.approx(manual, abs=1e-5)
    assert float(padded[0]) == pytest.approx(manual, abs=1e-5)  # a longer batch neighbour changes nothing


def test_rerank_uses_weighted_pmi_and_can_change_the_winner():
    vocab, captioner, lm = _tiny_models(seed=1, words=4)
    features = torch.randn(4, 3, 6)
    beams = beam_search(
        captioner,
        features,
        start_index=vocab.start_index,
        stop_index=vocab.stop_index,
        beam_size=8,
        max_length=4,
    )
    reranked = rerank(beams, lm, lm_weight=0.2, start_index=vocab.start_index, pad_index=vocab.pad_index)
    for beam in reranked:
        for h in beam:
            assert h.score == pytest.approx(h.captioner_log_prob - 0.2 * h.lm_log_prob, abs=1e-5)
        assert [h.score for h in beam] == sorted((h.score for h in beam), reverse=True)
    strong = rerank(beams, lm, lm_weight=5.0, start_index=vocab.start_index, pad_index=vocab.pad_index)
    assert any(a[0].tokens != b[0].tokens for a, b in zip(beams, strong, strict=True))


@pytest.fixture(scope="module")
def random_encoder():
    torch.manual_seed(0)
    return ExemplarEncoder(EncoderConfig("mobilenet_v2", weights=None))


def test_encoder_zero_mask_gives_zero_features_and_sharing_images_changes_nothing(random_encoder):
    images = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    masks = torch.rand(5, 224, 224) > 0.7
    masks[2] = False
    image_index = torch.tensor([0, 1, 1, 2, 0])
    shared = random_encoder.encode_shared(images, image_index, masks, batch_size=2)
    per_pair = random_encoder.encode_shared(images, image_index, masks, once_per_image=False)
    assert shared.shape == (5, random_encoder.feature_size) == (5, 16 + 24 + 32 + 96 + 320)
    assert torch.equal(shared[2], torch.zeros_like(shared[2]))
    torch.testing.assert_close(shared, per_pair, rtol=1e-4, atol=1e-5)
    full = torch.ones(1, 224, 224, dtype=torch.bool)
    pooled = random_encoder.encode(images[:1], full)
    means = torch.cat([maps.mean(dim=(2, 3)) for maps in random_encoder.stage_maps(images[:1])], dim=1)
    torch.testing.assert_close(pooled, means, rtol=1e-4, atol=1e-5)


def test_encoder_runs_the_backbone_once_per_unique_image(random_encoder, monkeypatch):
    seen = []
    original = random_encoder.stage_maps
    monkeypatch.setattr(
        random_encoder, "stage_maps", lambda images: seen.append(len(images)) or original(images)
    )
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    masks = torch.rand(30, 224, 224) > 0.5
    random_encoder.encode_shared(images, torch.arange(30) % 2, masks)
    assert sum(seen) == 2


def test_describer_rejects_mismatched_vocabularies():
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(InvalidInputError, match="vocabulary"):
        MilanDescriber(
            vocab,
            EncoderConfig("mobilenet_v2", weights=None),
            CaptionerConfig(8, len(vocab)),
            LanguageModelConfig(len(vocab) + 1, vocab.pad_index),
        )
