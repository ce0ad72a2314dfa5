"""The catalogue: every architecture, adapter, dataset, attack, threat matrix, check,
defense, style generator, task and report section the plugins registered.

Built by calling each catalogue hook implementation with a ``register`` callback that checks
the type and the uniqueness of names, and names the offending plugin in its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from robustbench_lite.attacks.base import Attack
from robustbench_lite.checks.base import Check
from robustbench_lite.data.source import DatasetSource
from robustbench_lite.defenses.base import Defense
from robustbench_lite.errors import (
    PluginError,
    UnknownAdapterError,
    UnknownArchitectureError,
    UnknownAttackError,
    UnknownCheckError,
    UnknownDatasetError,
    UnknownDefenseError,
    UnknownGeneratorError,
    UnknownMatrixError,
    UnknownNameError,
    UnknownReportSectionError,
    UnknownTaskError,
)
from robustbench_lite.matrix.core import MatrixPreset
from robustbench_lite.models.adapter import ModelAdapter
from robustbench_lite.models.architecture import Architecture
from robustbench_lite.plugin_host import PluginManager
from robustbench_lite.reports.sections import ReportSection
from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.tasks.base import Task

T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    """Named objects of one kind, each remembering the plugin that registered it."""

    kind: str
    hook: str
    missing_error: type[UnknownNameError]
    check: Callable[[Any], bool]
    expected: str
    plural: str = ""
    entries: dict[str, tuple[T, str]] = field(default_factory=dict)

    @property
    def kinds(self) -> str:
        """The kind in the plural, for listings."""
        return self.plural or f"{self.kind}s"

    def add(self, obj: Any, plugin: str) -> None:
        if not self.check(obj):
            raise PluginError(f"plugin {plugin!r} registered {obj!r} through {self.hook}, but "
                              f"it is not {self.expected}")
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered {self.kind} {obj!r} without a "
                              "non-empty string `name`")
        if name in self.entries:
            other = self.entries[name][1]
            raise PluginError(f"{self.kind} name {name!r} is registered twice: by plugin "
                              f"{other!r} and by plugin {plugin!r}; rename one of them")
        self.entries[name] = (obj, plugin)

    def get(self, name: str) -> T:
        if name not in self.entries:
            raise self.missing_error(name, self.entries)
        return self.entries[name][0]

    def names(self) -> list[str]:
        return sorted(self.entries)

    def plugin_of(self, name: str) -> str:
        return self.entries[name][1]

    def values(self) -> list[T]:
        return [obj for obj, _ in self.entries.values()]


def _subclass_of(base: type) -> Callable[[Any], bool]:
    return lambda obj: isinstance(obj, type) and issubclass(obj, base)


@dataclass
class Catalogue:
    architectures: Registry[Architecture]
    adapters: Registry[type[ModelAdapter]]
    datasets: Registry[type[DatasetSource]]
    attacks: Registry[type[Attack]]
    matrices: Registry[MatrixPreset]
    report_sections: Registry[ReportSection]
    checks: Registry[type[Check]]
    defenses: Registry[type[Defense]]
    generators: Registry[type[StyleGenerator]]
    tasks: Registry[type[Task]]
    builtin_plugins: frozenset[str] = frozenset()

    def registries(self) -> list[Registry[Any]]:
        return [self.architectures, self.adapters, self.datasets, self.attacks, self.matrices,
                self.checks, self.defenses, self.generators, self.tasks,
                self.report_sections]

    def report_sections_for(self, task: str) -> list[ReportSection]:
        """Every registered report section, then those of ``task`` (when registered)."""
        extra = self.tasks.get(task).report_sections if task in self.tasks.names() else ()
        return [*self.report_sections.values(), *extra]

    def adapters_in_detection_order(self) -> list[type[ModelAdapter]]:
        """Third-party adapters first (so a plugin can take over a format), built-ins last."""
        entries = self.adapters.entries.values()
        third_party = [cls for cls, plugin in entries if plugin not in self.builtin_plugins]
        builtin = [cls for cls, plugin in entries if plugin in self.builtin_plugins]
        return third_party + builtin


def build_catalogue(manager: PluginManager) -> Catalogue:
    """Call every catalogue hook of every plugin and collect what they register."""
    catalogue = Catalogue(
        architectures=Registry("architecture", "register_architectures",
                               UnknownArchitectureError,
                               lambda obj: isinstance(obj, Architecture), "an Architecture"),
        adapters=Registry("model adapter", "register_model_adapters", UnknownAdapterError,
                          _subclass_of(ModelAdapter), "a ModelAdapter subclass"),
        datasets=Registry("dataset", "register_datasets", UnknownDatasetError,
                          _subclass_of(DatasetSource), "a DatasetSource subclass"),
        attacks=Registry("attack", "register_attacks", UnknownAttackError,
                         _subclass_of(Attack), "an Attack subclass"),
        matrices=Registry("threat matrix", "register_threat_matrices", UnknownMatrixError,
                          lambda obj: isinstance(obj, MatrixPreset), "a MatrixPreset",
                          plural="threat matrices"),
        checks=Registry("check", "register_checks", UnknownCheckError, _subclass_of(Check),
                        "a Check subclass"),
        defenses=Registry("defense", "register_defenses", UnknownDefenseError,
                          _subclass_of(Defense), "a Defense subclass"),
        generators=Registry("generator", "register_generators", UnknownGeneratorError,
                            _subclass_of(StyleGenerator), "a StyleGenerator subclass"),
        tasks=Registry("task", "register_tasks", UnknownTaskError, _subclass_of(Task),
                       "a Task subclass"),
        report_sections=Registry("report section", "register_report_sections",
                                 UnknownReportSectionError,
                                 lambda obj: isinstance(obj, ReportSection), "a ReportSection"),
        builtin_plugins=frozenset(info.name for info in manager.plugin_infos() if info.builtin),
    )
    for registry in catalogue.registries():
        hook = getattr(manager.hook, registry.hook)
        for impl in reversed(hook.get_hookimpls()):  # last registered (third-party) first

            def register(obj: Any, _registry: Registry[Any] = registry,
                         _plugin: str = impl.plugin_name) -> None:
                _registry.add(obj, _plugin)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {registry.hook}: "
                                  f"{type(exc).__name__}: {exc}") from exc
    return catalogue


def catalogue_for(manager: PluginManager) -> Catalogue:
    """The catalogue of ``manager``, built once per manager and kept on it."""
    cached = getattr(manager, "_robustbench_catalogue", None)
    if not isinstance(cached, Catalogue):
        cached = build_catalogue(manager)
        setattr(manager, "_robustbench_catalogue", cached)  # noqa: B010
    return cached
