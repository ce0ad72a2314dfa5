"""The plugin host: a pluggy manager with the built-ins and the installed plugins.

Built-ins are registered exactly like third-party plugins; only discovery differs (entry
points in the group ``robustbench_lite``). Set ``ROBUSTBENCH_LITE_LOAD_PLUGINS`` to a
comma-separated list of entry-point names to load only those (an empty value loads none).
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from types import ModuleType

import pluggy

from robustbench_lite import hookspecs
from robustbench_lite.errors import PluginError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
LOAD_PLUGINS_ENV = "ROBUSTBENCH_LITE_LOAD_PLUGINS"

DEFAULT_PLUGINS = (
    "robustbench_lite.builtin.architectures",
    "robustbench_lite.builtin.adapters",
    "robustbench_lite.builtin.datasets",
    "robustbench_lite.builtin.attacks",
    "robustbench_lite.builtin.matrices",
    "robustbench_lite.builtin.checks",
    "robustbench_lite.builtin.defenses",
    "robustbench_lite.builtin.generators",
    "robustbench_lite.builtin.tasks",
)


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: its name, where it came from and its version."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, PluginInfo] = {}

    def register_plugin(self, plugin: object, name: str, info: PluginInfo) -> None:
        try:
            self.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} implements a hook wrongly: {exc}") from exc
        self.origins[name] = info

    def plugin_infos(self) -> list[PluginInfo]:
        return [self.origins[name] for name, _ in self.list_name_plugin()
                if name in self.origins]


def _allowed_entry_points() -> set[str] | None:
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _load_entry_points(manager: PluginManager) -> None:
    allowed = _allowed_entry_points()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if manager.has_plugin(entry_point.name):
            continue
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else None
        try:
            plugin = entry_point.load()
        except Exception as exc:
            where = f" (from {dist_name})" if dist_name else ""
            raise PluginError(f"plugin {entry_point.name!r}{where} failed to import: "
                              f"{type(exc).__name__}: {exc}; fix or uninstall it, or set "
                              f"{LOAD_PLUGINS_ENV} to the plugins you want") from exc
        info = PluginInfo(entry_point.name, dist_name, dist.version if dist else None, False)
        manager.register_plugin(plugin, entry_point.name, info)
        logger.debug("loaded plugin %s from %s", entry_point.name, dist_name)


def get_plugin_manager(*, load_entrypoints: bool = True,
                       extra_plugins: tuple[ModuleType | object, ...] = ()) -> PluginManager:
    """A new manager with the built-ins, installed plugins and ``extra_plugins``."""
    from robustbench_lite import __version__

    manager = PluginManager()
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        manager.register_plugin(module, module_name,
                                PluginInfo(module_name, "robustbench-lite", __version__, True))
    if load_entrypoints:
        _load_entry_points(manager)
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        manager.register_plugin(plugin, name, PluginInfo(name, None, None, False))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {manager.get_name(exc.plugin)!r} implements an unknown "
                          f"hook: {exc}; see robustbench_lite.hookspecs for the hook "
                          "names") from exc
    return manager


@lru_cache(maxsize=1)
def default_plugin_manager() -> PluginManager:
    """The process-wide manager, created on first use."""
    return get_plugin_manager()
