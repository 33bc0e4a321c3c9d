"""Built-in hooks of the synthetic world: the scenes source, planted and trained models, baselines.

Specs: ``synth:scenes?...`` (source), ``synth:planted?seed=0&size=small`` and
``synth:world-cnn?seed=0`` (models), ``baseline:*`` (describers).

Registered like any third-party plugin and marked ``trylast``; nothing heavy is imported until a
hook sees a spec or name of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from milan_plugin.hookspecs import hookimpl

PLANTED_SCHEME = "synth:planted"
#: The trained world CNN (:mod:`milan_plugin.synth.trained`), trained and cached on first load.
CNN_SCHEME = "synth:world-cnn"
BASELINES = ("baseline:random", "baseline:most-frequent", "baseline:netdissect")


@hookimpl(trylast=True)
def milan_exemplar_source(spec: str, options: Mapping[str, Any]) -> Any:
    if not spec.startswith("synth:"):
        return None
    from milan_plugin.synth.source import SCHEME, SynthSource

    if spec.partition("?")[0] != SCHEME:
        return None
    return SynthSource.from_spec(spec)


@hookimpl(trylast=True)
def milan_load_model(spec: str, options: Mapping[str, Any]) -> Any:
    scheme = spec.partition("?")[0]
    if scheme not in (PLANTED_SCHEME, CNN_SCHEME):
        return None
    from urllib.parse import parse_qsl

    from milan_plugin.errors import InvalidInputError
    from milan_plugin.synth.dataset import planted_model
    from milan_plugin.synth.trained import world_cnn

    settings = {"seed": "0", "size": "small"} if scheme == PLANTED_SCHEME else {"seed": "0"}
    for key, value in parse_qsl(spec.partition("?")[2]):
        if key not in settings:
            raise InvalidInputError(f"unknown option {key!r} in {spec!r}; known: {', '.join(settings)}")
        settings[key] = value
    if not settings["seed"].isdigit():
        raise InvalidInputError(f"seed must be a non-negative integer in {spec!r}")
    if scheme == CNN_SCHEME:
        model = world_cnn(int(settings["seed"]), progress=options.get("progress", True))
    else:
        model = planted_model(int(settings["seed"]), settings["size"])
    device = options.get("device")
    return model.to(device) if device else model


@hookimpl(trylast=True)
def milan_describer(name: str, options: Mapping[str, Any]) -> Any:
    if name not in BASELINES:
        return None
    from milan_plugin.synth.baselines import baseline_describer

    return baseline_describer(name, **dict(options))
