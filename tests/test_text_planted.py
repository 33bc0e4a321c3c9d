"""Language-model neurons: the text source, and the text describer on planted trigger neurons."""

from __future__ import annotations

import pytest
import torch
from milan_plugin.adapters.text_describer import describe_ngram
from milan_plugin.adapters.text_planted import plant_triggers, planted_text_model

import milan_plugin
from milan_plugin.errors import InvalidInputError
from milan_plugin.plugins import open_source


@pytest.fixture(scope="module")
def corpus():
    return open_source("text:synthetic:0")


def test_text_describer_names_the_trigger_of_planted_neurons_through_the_neuron_api(corpus, tmp_path):
    triggers = plant_triggers(corpus, words=5, phrases=5)
    assert len(triggers) == 10 and sum(len(trigger) == 2 for trigger in triggers) == 5
    network = planted_text_model(corpus, triggers).eval()
    model = milan_plugin.wrap(
        network, source=corpus, describer="text:wpmi", cache_dir=tmp_path, progress=False
    )
    neurons = model.act.neurons
    assert len(neurons) == 10
    named = [
        neuron.describe().text == describe_ngram(trigger)
        for neuron, trigger in zip(neurons, triggers, strict=True)
    ]
    assert sum(named) >= 8, [neuron.describe().text for neuron in neurons]

    phrase_unit = next(unit for unit, trigger in enumerate(triggers) if len(trigger) == 2)
    exemplars = neurons[phrase_unit].exemplars()
    assert exemplars.images is None and exemplars.masks.shape == (15, corpus.window)
    for words, mask in zip(exemplars.tokens, exemplars.masks.tolist(), strict=True):
        fired = [position for position, fires in enumerate(mask) if fires]
        assert fired and all(words[p - 1 : p + 1] == list(triggers[phrase_unit]) for p in fired)
    assert "<b>" in exemplars._repr_html_()


def test_planted_phrase_units_stay_silent_on_either_word_alone(corpus):
    network = planted_text_model(corpus, [("ice", "cream"), ("river",)])
    index = {word: position for position, word in enumerate(corpus.vocabulary)}
    tokens = torch.tensor([[index["ice"], index["river"], index["cream"], index["ice"], index["cream"]]])
    with torch.no_grad():
        hidden = network.act(
            network.units(
                torch.nn.functional.pad(
                    torch.nn.functional.one_hot(tokens, len(corpus.vocabulary)).float().transpose(1, 2),
                    (1, 0),
                )
            )
        )
    assert hidden[0, 0].tolist() == [0, 0, 0, 0, 1]
    assert hidden[0, 1].tolist() == [0, 1, 0, 0, 0]


def test_text_source_windows_keys_and_reopening(corpus, tmp_path):
    assert len(corpus) == 32768 // 16
    batch = corpus.load([0, 3])
    assert batch.inputs.shape == (2, 16) and batch.inputs.dtype == torch.long
    assert corpus.key(3) == "tokens[48:64]"
    assert corpus.images([0]) is None
    small = open_source("text:synthetic:1", window=8, tokens=2048)
    assert small.spec == "text:synthetic:1?window=8&tokens=2048"
    assert open_source(small.spec).fingerprint() == small.fingerprint() != corpus.fingerprint()
    text = tmp_path / "corpus.txt"
    text.write_text("The cat sat. The cat ran! " * 20, encoding="utf-8")
    from_file = open_source(f"text:{text}", window=4)
    assert from_file.vocabulary[:2] == ["cat", "the"] and from_file.window_words([0]) == [
        ["the", "cat", "sat", "."]
    ]


def test_text_errors_are_clear(corpus, tmp_path):
    with pytest.raises(InvalidInputError, match="no text file"):
        open_source(f"text:{tmp_path / 'missing.txt'}")
    with pytest.raises(InvalidInputError, match="window=W"):
        open_source("text:synthetic?size=3")
    with pytest.raises(InvalidInputError, match="windows"):
        corpus.load([len(corpus)])
    with pytest.raises(InvalidInputError, match="vocabulary"):
        planted_text_model(corpus, [("zebra",)])
    from milan_plugin.exemplars.engine import compute_exemplars
    from milan_plugin.plugins import get_describer

    images = open_source("text:synthetic:0", tokens=512)
    network = planted_text_model(images, [("the",)])
    exemplars = compute_exemplars(network, ["units"], images, progress=False)["units"]
    exemplars.settings["source_spec"] = "folder:/somewhere"
    with pytest.raises(InvalidInputError, match="text: source"):
        get_describer("text:wpmi").describe(exemplars)
