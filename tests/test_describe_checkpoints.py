"""save_pretrained/from_pretrained round trips, and the safe importer for original MILAN checkpoints."""

from __future__ import annotations

import collections
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from milan_plugin.describe.captioner import NORMALISATION_BUFFERS, CaptionerConfig
from milan_plugin.describe.describer import MilanDescriber
from milan_plugin.describe.encoder import EncoderConfig
from milan_plugin.describe.importer import InertDict, import_original_checkpoint, read_original_checkpoint
from milan_plugin.describe.language_model import LanguageModelConfig
from milan_plugin.describe.vocabulary import Vocabulary
from milan_plugin.errors import InvalidInputError, UntrustedCheckpointError

WORDS = ["red", "dots", "blue", "stripes", "and", "on", "the", "left", "of", "circles"]


def random_describer(
    backbone: str = "mobilenet_v2", feature_size: int = 488, seed: int = 0
) -> MilanDescriber:
    torch.manual_seed(seed)
    vocab = Vocabulary(WORDS)
    return MilanDescriber(
        vocab,
        EncoderConfig(backbone, weights="IMAGENET1K_V1"),
        CaptionerConfig(feature_size, len(vocab), 16, 32),
        LanguageModelConfig(len(vocab), vocab.pad_index, 16, 32),
        beam_size=6,
        progress=False,
    )


def test_round_trip_decodes_identically(tmp_path):
    describer = random_describer()
    features = torch.randn(5, 15, 488)
    folder = describer.save_pretrained(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "vocab.json",
        "README.md",
    }
    loaded = MilanDescriber.from_pretrained(folder)
    assert loaded.version == describer.version
    for strategy in ("rerank", "beam", "greedy"):
        assert loaded.describe_features(features, strategy) == describer.describe_features(features, strategy)
    ranked = loaded.decode(features)[0]
    assert [h.score for h in ranked] == [h.score for h in describer.decode(features)[0]]
    overridden = MilanDescriber.from_pretrained(folder, beam_size=2, lm_weight=0.5)
    assert (overridden.beam_size, overridden.lm_weight) == (2, 0.5)


def test_round_trip_describes_an_exemplar_set_identically(tmp_path, copy_photos, mobilenet_v2):
    from milan_plugin import compute_exemplars

    images = copy_photos(tmp_path / "photos", 24)
    sets = compute_exemplars(
        mobilenet_v2, ["features.16"], f"folder:{images}", k=5, units=list(range(6)), progress=False
    )
    exemplars = sets["features.16"]
    describer = random_describer()
    loaded = MilanDescriber.from_pretrained(describer.save_pretrained(tmp_path / "model"))
    first = describer.describe(exemplars, progress=False)
    second = loaded.describe(exemplars, [3, 1], progress=False)
    assert [d.unit for d in second] == [3, 1]
    by_unit = {d.unit: d for d in first}
    for description in second:
        assert description.text == by_unit[description.unit].text
        assert description.candidates == by_unit[description.unit].candidates
        assert description.layer == "features.16"
        assert description.exemplar_settings == exemplars.settings


def test_fp16_storage_halves_the_file_and_still_loads(tmp_path):
    describer = random_describer()
    full = describer.save_pretrained(tmp_path / "full")
    half = describer.save_pretrained(tmp_path / "half", dtype=torch.float16)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded = MilanDescriber.from_pretrained(half)
    assert loaded.captioner.init_h[0].weight.dtype == torch.float32


def test_from_pretrained_errors_are_clear(tmp_path):
    with pytest.raises(InvalidInputError, match="not a MILAN describer checkpoint"):
        MilanDescriber.from_pretrained(tmp_path)
    with pytest.raises(InvalidInputError, match="Hugging Face Hub"):
        MilanDescriber.from_pretrained("nobody-here/no-such-describer")


# -- original checkpoints ---------------------------------------------------------------------


def _serialized(properties, children=None, state_dict=None):
    node = {"properties": properties, "children": children or {}}
    if state_dict is not None:
        node["state_dict"] = state_dict
    return node


def write_original_checkpoint(
    path: Path, describer: MilanDescriber, extra: object = None, backbone_state: dict | None = None
) -> Path:
    """A file in the layout of the released ``milan-*.pth``: nested serialised dicts, spaCy config inside.

    spaCy is not installed here, so its ``Config`` class (a dict subclass pickled by module and name
    ``thinc.config.Config``) is stood in for by a module registered only while saving.
    """
    thinc = types.ModuleType("thinc")
    config_module = types.ModuleType("thinc.config")

    class Config(dict):
        pass

    Config.__module__, Config.__qualname__ = "thinc.config", "Config"
    config_module.Config = Config
    spacy_config = Config({"nlp": {"lang": "en", "pipeline": []}, "components": {}})
    words = describer.vocabulary.words
    tokenizer = _serialized(
        {
            "nlp": (spacy_config, b"\x85\xa5vocab\xc4\x00"),
            "lemmatize": False,
            "lowercase": True,
            "ignore_stop": False,
            "ignore_punct": False,
        }
    )
    indexer = _serialized(
        {
            "vocab": _serialized({"tokens": tuple(words)}),
            "tokenize": tokenizer,
            "start": True,
            "stop": True,
            "pad": True,
            "unk": True,
            "length": 15,
        },
        {"vocab": "vocab", "tokenize": "tokenizer"},
    )
    lm_config = describer.lm.config
    lm_state = collections.OrderedDict(describer.lm.state_dict())
    lm = _serialized(
        {
            "indexer": indexer,
            "embedding_size": lm_config.embedding_size,
            "hidden_size": lm_config.hidden_size,
            "layers": lm_config.layers,
            "dropout": 0.5,
        },
        {"indexer": "indexer"},
        lm_state,
    )
    state = collections.OrderedDict(
        (name, tensor)
        for name, tensor in describer.captioner.state_dict().items()
        if name not in NORMALISATION_BUFFERS
    )
    state.update((f"lm.{name}", tensor) for name, tensor in lm_state.items())
    state.update((f"encoder.featurizer.{name}", tensor) for name, tensor in (backbone_state or {}).items())
    config = describer.captioner.config
    properties = {
        "indexer": indexer,
        "encoder": _serialized({"config": describer.encoder_config.backbone, "pretrained": True}),
        "lm": lm,
        "embedding_size": config.embedding_size,
        "hidden_size": config.hidden_size,
        "attention_hidden_size": None,
        "dropout": 0.5,
        "length": 15,
        "strategy": "rerank",
        "temperature": 0.2,
        "beam_size": 50,
    }
    if extra is not None:
        properties["extra"] = extra
    payload = _serialized(properties, {"indexer": "indexer", "encoder": "encoder", "lm": "lm"}, state)
    saved = dict(sys.modules)
    sys.modules.update({"thinc": thinc, "thinc.config": config_module})
    try:
        torch.save(payload, path)
    finally:
        sys.modules.clear()
        sys.modules.update(saved)
    return path


def test_original_checkpoint_imports_and_decodes_like_the_source(tmp_path):
    source = random_describer()
    path = write_original_checkpoint(tmp_path / "milan-demo.pth", source)
    payload = read_original_checkpoint(path)
    spacy_config = payload["properties"]["indexer"]["properties"]["tokenize"]["properties"]["nlp"][0]
    assert type(spacy_config) is InertDict and spacy_config["nlp"]["lang"] == "en"
    imported = import_original_checkpoint(path, beam_size=6, progress=False)
    assert imported.vocabulary == source.vocabulary
    assert (imported.lm_weight, imported.strategy) == (0.2, "rerank")
    features = torch.randn(4, 15, 488)
    assert imported.describe_features(features) == source.describe_features(features)


def test_original_checkpoint_loads_through_load_describer(tmp_path, fresh_plugin_manager):
    import milan_plugin

    path = write_original_checkpoint(tmp_path / "milan-demo.pth", random_describer())
    describer = milan_plugin.load_describer(path, beam_size=4)
    assert describer.beam_size == 4 and describer.name == "milan:milan-demo.pth"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_a_code_payload_is_refused_and_the_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = write_original_checkpoint(tmp_path / "milan-evil.pth", random_describer(), extra=_Payload(marker))
    with pytest.raises(UntrustedCheckpointError, match=r"(posix|os)\.system.*not on the allow-list"):
        import_original_checkpoint(path)
    assert not marker.exists()


def test_non_checkpoint_files_get_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="not a readable torch checkpoint"):
        import_original_checkpoint(junk)
    plain = tmp_path / "plain.pth"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(InvalidInputError, match="not an original MILAN checkpoint"):
        import_original_checkpoint(plain)


def test_load_describer_takes_options_in_the_name_and_ignores_other_plugins_options(
    tmp_path, fresh_plugin_manager
):
    import milan_plugin

    folder = random_describer().save_pretrained(tmp_path / "model")
    describer = milan_plugin.load_describer(
        f"{folder}?strategy=greedy&lm_weight=0.5", size="small", beam_size=3
    )
    assert (describer.strategy, describer.lm_weight, describer.beam_size) == ("greedy", 0.5, 3)
    with pytest.raises(InvalidInputError, match="unknown describer option 'beam'"):
        milan_plugin.load_describer(f"{folder}?beam=3")


def test_original_checkpoint_brings_its_own_backbone_weights(tmp_path):
    source = random_describer()
    backbone = {
        name: tensor + 0.5 if tensor.is_floating_point() else tensor
        for name, tensor in source.encoder.backbone.state_dict().items()
    }
    path = write_original_checkpoint(tmp_path / "milan-demo.pth", source, backbone_state=backbone)
    imported = import_original_checkpoint(path, progress=False)
    loaded = imported.encoder.backbone.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in backbone.items())


def test_original_checkpoint_with_foreign_backbone_weights_warns_and_keeps_its_own(tmp_path):
    source = random_describer()
    path = write_original_checkpoint(
        tmp_path / "milan-demo.pth", source, backbone_state={"conv1.weight": torch.zeros(2, 3, 7, 7)}
    )
    with pytest.warns(UserWarning, match="keeping the backbone's own weights"):
        imported = import_original_checkpoint(path, progress=False)
    expected = source.encoder.backbone.state_dict()
    assert all(
        torch.equal(tensor, expected[name]) for name, tensor in imported.encoder.backbone.state_dict().items()
    )
