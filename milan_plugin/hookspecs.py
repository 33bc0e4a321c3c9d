"""The extension contract of milan-plugin.

Every hook is declared here, and its docstring is the reference for plugin authors. A plugin is
any module or object with functions marked ``@hookimpl`` whose names match these specs; it is
loaded from the ``milan_plugin`` entry-point group of an installed distribution, or registered
in-process with :func:`milan_plugin.plugins.register`.

Built-in adapters, sources, scorers and describers are registered through exactly the same
mechanism (see :mod:`milan_plugin.plugins`), marked ``trylast=True`` so that a third-party
implementation of a ``firstresult`` hook always gets the first word.

Hooks are always called with keyword arguments. An implementation may accept a subset of a
spec's arguments; pluggy passes only the ones it names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch

    from milan_plugin.protocols import (
        Describer,
        ExemplarSource,
        ModelAdapter,
        RegistryEntry,
        Scorer,
    )

PROJECT_NAME = "milan_plugin"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def milan_model_adapter(model: Any) -> ModelAdapter | None:
    """Return a :class:`~milan_plugin.protocols.ModelAdapter` for ``model``, or ``None``.

    Called whenever the plugin meets a model it has not wrapped yet (``compute_exemplars``,
    ``milan_plugin.wrap``, the CLI). Return ``None`` quickly for models you do not handle: the
    first non-``None`` answer wins, and the built-in adapters answer last. The generic built-in
    adapter accepts any ``torch.nn.Module`` addressed by dotted module names, so implement this
    hook when your architecture needs something the generic one cannot do: token-to-grid
    reshaping, activations that are not module outputs, a generator whose output image is the
    exemplar, or different default layers.

    Do not import heavy frameworks at module import time; import them inside this function once
    you know the model is yours.
    """


@hookspec(firstresult=True)
def milan_load_model(spec: str, options: Mapping[str, Any]) -> torch.nn.Module | None:
    """Build the model named by a string ``spec``, or return ``None`` if the spec is not yours.

    Used by the command line, where a model is given as text, e.g.
    ``torchvision:resnet18:IMAGENET1K_V1`` or ``synth:planted``. Specs are ``scheme:rest``; check
    the scheme and return ``None`` for any other. ``options`` carries command-line settings such
    as ``device``. Must not download anything unless the user asked for that model by name.
    """


@hookspec(firstresult=True)
def milan_exemplar_source(spec: str, options: Mapping[str, Any]) -> ExemplarSource | None:
    """Open the image (or latent) source named by ``spec``, or return ``None`` if it is not yours.

    Built-in specs: ``folder:PATH`` (an ImageFolder-style tree, ids are sorted relative paths),
    ``hf:NAME_OR_PATH:SPLIT`` (a ``datasets`` dataset with an image column), ``latents:N:DIM:SEED``
    (seeded Gaussian latents for generative models) and ``synth:...`` (the synthetic concept
    world). ``options`` may carry ``image_size``, ``transform``, ``on_error`` and ``image_column``.

    The returned source must give stable ids (the same index always means the same input), since
    exemplar sets store indices and read images back by id instead of keeping them.
    """


@hookspec
def milan_scorers() -> Sequence[Scorer]:
    """Return scorers that rate candidate descriptions against a unit's exemplars.

    All implementations are called and their lists concatenated. Each scorer has a unique
    ``name`` (``wpmi``, ``clip``, ...) by which describers and the CLI pick it.
    """


@hookspec(firstresult=True)
def milan_describer(name: str, options: Mapping[str, Any]) -> Describer | None:
    """Return the describer called ``name``, or ``None`` if the name is not yours.

    ``name`` is what the user typed: a registry key (``milan:base``, ``baseline:netdissect``),
    a Hub repo id or a local checkpoint folder. ``options`` carries settings such as ``device``,
    ``beam_size`` and ``lm_weight``. Describers turn an
    :class:`~milan_plugin.exemplars.ExemplarSet` into one
    :class:`~milan_plugin.descriptions.Description` per unit.
    """


@hookspec
def milan_annotation_sets() -> Sequence[RegistryEntry]:
    """Return registry entries for annotation datasets, annotation sets or describer weights.

    All implementations are called and their lists concatenated, after the entries of the
    packaged registry. An entry names a Hub repo and a pinned revision, and for annotation sets
    the model fingerprint and layers it covers, so that ``neurons[i].describe()`` can use a
    published set instead of computing one.
    """
