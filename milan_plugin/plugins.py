"""The plugin manager: built-in plugins and entry-point plugins, registered the same way.

Built-ins are listed in :data:`BUILTIN_PLUGINS` by dotted module name and imported lazily when
the manager is first needed; each marks its implementations ``trylast=True``. Third-party
plugins come from the ``milan_plugin`` entry-point group. ``MILAN_DISABLE_PLUGINS=1`` skips
entry points (built-ins still load) and ``MILAN_LOAD_PLUGINS=a,b`` loads only the named ones.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import pluggy

from milan_plugin import hookspecs
from milan_plugin.errors import PluginLookupError

BUILTIN_PLUGINS: tuple[str, ...] = (
    "milan_plugin.adapters.frameworks_builtin",
    "milan_plugin.adapters.builtin",
    "milan_plugin.sources.builtin",
    "milan_plugin.scoring.builtin",
    "milan_plugin.describe.builtin",
    "milan_plugin.synth.builtin",
    "milan_plugin.hub.builtin",
)

_manager: pluggy.PluginManager | None = None


def create_plugin_manager(load_entry_points: bool | None = None) -> pluggy.PluginManager:
    """Build a fresh manager with the built-ins and, unless disabled, entry-point plugins.

    Tests use this to get a manager with no global state; everything else goes through
    :func:`get_plugin_manager`.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for dotted in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(dotted), name=dotted)
    if load_entry_points is None:
        load_entry_points = os.environ.get("MILAN_DISABLE_PLUGINS", "") not in ("1", "true", "yes")
    if load_entry_points:
        allow = [name for name in os.environ.get("MILAN_LOAD_PLUGINS", "").split(",") if name]
        if allow:
            for name in _all_entry_point_names():
                if name not in allow:
                    manager.set_blocked(name)
        manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    manager.check_pending()
    return manager


def _all_entry_point_names() -> list[str]:
    from importlib.metadata import entry_points

    return [ep.name for ep in entry_points(group=hookspecs.PROJECT_NAME)]


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, created on first use."""
    global _manager
    if _manager is None:
        _manager = create_plugin_manager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager, so the next call rebuilds it (after installing a plugin)."""
    global _manager
    _manager = None


def register(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin (a module or an object with ``@hookimpl`` methods)."""
    manager = get_plugin_manager()
    registered = manager.register(plugin, name=name)
    manager.check_pending()
    return registered


def unregister(name: str) -> None:
    """Remove a plugin registered with :func:`register`."""
    get_plugin_manager().unregister(name=name)


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``milan plugins`` shows it."""

    name: str
    hooks: tuple[str, ...]
    origin: str
    distribution: str | None


def list_plugins(manager: pluggy.PluginManager | None = None) -> list[PluginInfo]:
    """What is loaded, which hooks each plugin implements, and where it came from."""
    manager = manager or get_plugin_manager()
    dists = {
        id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in manager.list_plugin_distinfo()
    }
    infos = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        callers = manager.get_hookcallers(plugin) or []
        origin = getattr(plugin, "__file__", None) or type(plugin).__module__
        infos.append(
            PluginInfo(
                name=name,
                hooks=tuple(sorted(caller.name for caller in callers)),
                origin=str(origin),
                distribution=dists.get(id(plugin)),
            )
        )
    return infos


def _answer(answer: Any, message: str, kind: str, options: list[str]) -> Any:
    """``answer`` from a first-result hook, or the lookup error every helper below raises for ``None``."""
    if answer is None:
        raise PluginLookupError(message, kind=kind, options=options)
    return answer


def load_model(spec: str, **options: Any) -> Any:
    """Build a model from a text spec through the ``milan_load_model`` hook."""
    return _answer(
        get_plugin_manager().hook.milan_load_model(spec=spec, options=options),
        f"no plugin can build the model {spec!r}",
        kind="model spec",
        options=["torchvision:NAME[:WEIGHTS]", "synth:..."],
    )


def open_source(spec: str, **options: Any) -> Any:
    """Open an exemplar source from a text spec through the ``milan_exemplar_source`` hook."""
    return _answer(
        get_plugin_manager().hook.milan_exemplar_source(spec=spec, options=options),
        f"no plugin can open the source {spec!r}",
        kind="source spec",
        options=["folder:PATH", "hf:NAME_OR_PATH:SPLIT", "latents:N:DIM:SEED", "synth:..."],
    )


def get_adapter(model: Any) -> Any:
    """The adapter for ``model`` through the ``milan_model_adapter`` hook (adapters pass through)."""
    from milan_plugin.protocols import ModelAdapter

    if isinstance(model, ModelAdapter):
        return model
    return _answer(
        get_plugin_manager().hook.milan_model_adapter(model=model),
        f"no model adapter handles {type(model).__module__}.{type(model).__qualname__}; "
        "write one with the milan_model_adapter hook (docs/adapters.md)",
        kind="model adapter",
        options=[],
    )


def get_describer(name: str, **options: Any) -> Any:
    """The describer called ``name`` through the ``milan_describer`` hook."""
    return _answer(
        get_plugin_manager().hook.milan_describer(name=name, options=options),
        f"no describer called {name!r}",
        kind="describer",
        options=[],
    )


def get_scorers() -> dict[str, Any]:
    """Every registered scorer by name."""
    scorers: dict[str, Any] = {}
    for batch in get_plugin_manager().hook.milan_scorers():
        for scorer in batch:
            scorers[scorer.name] = scorer
    return scorers


def annotation_registry() -> list[Any]:
    """Registry entries from every plugin (the packaged registry is the hub plugin's answer)."""
    return [entry for batch in get_plugin_manager().hook.milan_annotation_sets() for entry in batch]
