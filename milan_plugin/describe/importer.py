"""Import the original MILAN checkpoints (``milan-base.pth`` and friends) without trusting them.

The released files are ``torch.save``d nested dicts (``{"properties", "children",
"state_dict"}`` per serialisable object) whose indexer holds a pickled spaCy pipeline
``(config, bytes)``. Loading them the original way means arbitrary unpickling. Here a restricted
unpickler resolves only an explicit allow-list (tensor rebuild functions, ``OrderedDict``, plain
builtins); spaCy/thinc/confection classes become inert data holders that are never called
into; any other global, such as ``os.system`` in a crafted ``__reduce__``, stops the load with
:class:`~milan_plugin.errors.UntrustedCheckpointError` before it can run.

Layout read (names as in the reference ``Decoder``): ``properties.indexer.properties.vocab.
properties.tokens`` (the words), ``properties.encoder.properties.config`` (the backbone),
``properties.lm.properties`` (language-model sizes), the decoder sizes and decoding settings in
``properties``, and ``state_dict`` with the captioner's parameters plus ``lm.*`` (and
``encoder.*``) entries.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import os
import pickle
import types
from collections.abc import Mapping
from typing import Any

import torch

from milan_plugin.describe.captioner import NORMALISATION_BUFFERS, CaptionerConfig
from milan_plugin.describe.describer import MilanDescriber
from milan_plugin.describe.encoder import BACKBONE_STAGES, EncoderConfig
from milan_plugin.describe.language_model import LanguageModelConfig
from milan_plugin.describe.vocabulary import Vocabulary
from milan_plugin.errors import InvalidInputError, UntrustedCheckpointError

#: Packages whose pickled objects are kept as inert data (the indexer's spaCy pipeline).
INERT_PACKAGES = ("spacy", "thinc", "confection", "srsly")


class InertDict(dict):
    """Stands in for a pickled dict subclass (spaCy's ``Config``): the items, nothing callable."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["pickled_state"] = state


class InertObject:
    """Stands in for any other spaCy/thinc object: keeps the pickled arguments and state only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pickled_args = args
        self.pickled_kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.pickled_state = state


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; nothing else is allowed."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UntrustedCheckpointError("checkpoint calls _codecs.encode with unexpected arguments; refused")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("_codecs", "encode"): _latin1_encode,
    **{
        ("builtins", name): getattr(builtins, name)
        for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bool")
    },
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; spaCy-family classes become inert holders."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.split(".")[0] in INERT_PACKAGES:
            return InertDict if name == "Config" else InertObject
        raise UntrustedCheckpointError(
            f"checkpoint refers to {module}.{name}, which is not on the allow-list of a MILAN checkpoint "
            "(tensors, OrderedDict, plain builtins, spaCy data); refusing to load it because unpickling "
            "it could run arbitrary code"
        )


def _restricted_pickle_module() -> types.ModuleType:
    module = types.ModuleType("milan_restricted_pickle")
    module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    return module


def read_original_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's nested dict, read with the restricted unpickler (tensors on CPU)."""
    try:
        payload = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module()
        )
    except UntrustedCheckpointError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise InvalidInputError(f"{path} is not a readable torch checkpoint: {error}") from error
    if not isinstance(payload, Mapping) or "properties" not in payload or "state_dict" not in payload:
        raise InvalidInputError(
            f"{path} is not an original MILAN checkpoint (expected a dict with 'properties' and 'state_dict')"
        )
    return dict(payload)


def _properties(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise InvalidInputError(f"original checkpoint lacks {'.'.join(path)}")
        node = node[key]
    return node


def import_original_checkpoint(
    path: str | os.PathLike[str], *, encoder_weights: str | None = "IMAGENET1K_V1", **options: Any
) -> MilanDescriber:
    """A :class:`MilanDescriber` with the captioner and LM weights of an original checkpoint.

    The encoder is rebuilt from torchvision (``encoder_weights``); the checkpoint's own copy of
    the backbone weights is loaded into it when its parameter names match torchvision's.
    """
    payload = read_original_checkpoint(path)
    properties = payload["properties"]
    words = list(_properties(properties, "indexer", "properties", "vocab", "properties", "tokens"))
    vocabulary = Vocabulary(words)
    backbone = str(_properties(properties, "encoder", "properties", "config"))
    if backbone not in BACKBONE_STAGES:
        raise InvalidInputError(
            f"checkpoint encoder {backbone!r} is not supported; supported: {sorted(BACKBONE_STAGES)}"
        )
    lm_properties = _properties(properties, "lm", "properties")
    state = {name: tensor.float() for name, tensor in payload["state_dict"].items()}
    captioner_state = {k: v for k, v in state.items() if not k.startswith(("lm.", "encoder."))}
    lm_state = {k.removeprefix("lm."): v for k, v in state.items() if k.startswith("lm.")}
    if not lm_state and isinstance(properties["lm"].get("state_dict"), Mapping):
        lm_state = {k: v.float() for k, v in properties["lm"]["state_dict"].items()}
    feature_size = int(captioner_state["init_h.0.weight"].shape[1])
    captioner_config = CaptionerConfig(
        feature_size=feature_size,
        vocab_size=len(vocabulary),
        embedding_size=int(properties.get("embedding_size", 128)),
        hidden_size=int(properties.get("hidden_size", 512)),
        attention_hidden_size=properties.get("attention_hidden_size"),
        dropout=float(properties.get("dropout", 0.5)),
        length=int(properties.get("length", 15)),
    )
    lm_config = LanguageModelConfig(
        vocab_size=len(vocabulary),
        pad_index=vocabulary.pad_index,
        embedding_size=int(lm_properties.get("embedding_size", 128)),
        hidden_size=int(lm_properties.get("hidden_size", 512)),
        layers=int(lm_properties.get("layers", 2)),
        dropout=float(lm_properties.get("dropout", 0.5)),
    )
    settings = {
        "strategy": "rerank",
        "beam_size": int(properties.get("beam_size", 50)),
        "lm_weight": float(properties.get("temperature", 0.2)),
        "max_length": int(properties.get("length", 15)),
        "name": f"milan:{os.path.basename(os.fspath(path))}",
    }
    settings.update(options)
    describer = MilanDescriber(
        vocabulary,
        EncoderConfig(backbone=backbone, weights=encoder_weights),
        captioner_config,
        lm_config,
        **settings,
    )
    # The original standardised nothing: identity normalisation buffers.
    defaults = describer.captioner.state_dict()
    normalisation = {name: defaults[name] for name in NORMALISATION_BUFFERS}
    describer.captioner.load_state_dict(normalisation | captioner_state)
    describer.lm.load_state_dict(lm_state)
    encoder_state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    if encoder_state:
        _load_backbone_weights(describer, encoder_state)
    return describer


def _load_backbone_weights(describer: MilanDescriber, encoder_state: Mapping[str, torch.Tensor]) -> None:
    """Load the checkpoint's backbone copy: torchvision's names under one common prefix.

    The prefix is found from the first parameter name, then every name must exist exactly
    under it with the right shape (suffix matching alone would confuse ``conv1.weight`` with
    ``layer1.0.conv1.weight``). Without such a copy the encoder keeps its torchvision weights,
    and a warning says so.
    """
    import warnings

    backbone = describer.encoder.backbone
    expected = backbone.state_dict()
    first = next(iter(expected))
    prefixes = [key[: -len(first)] for key in encoder_state if key == first or key.endswith("." + first)]
    for prefix in sorted(prefixes, key=len):
        matched = {name: encoder_state.get(prefix + name) for name in expected}
        if all(value is not None and value.shape == expected[name].shape for name, value in matched.items()):
            backbone.load_state_dict(matched)
            return
    warnings.warn(
        "the checkpoint's encoder weights do not match the torchvision backbone "
        f"{describer.encoder.config.backbone!r}; keeping the backbone's own weights",
        stacklevel=3,
    )
