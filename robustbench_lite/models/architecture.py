"""Architectures: named factories that build an `nn.Module` for a state_dict to fill."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from robustbench_lite.errors import ModelLoadError


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    ``build(**kwargs)`` returns a fresh module taking normalised input of ``input_shape``.
    ``defaults`` are keyword arguments used unless the caller overrides them.
    ``weights`` optionally points at a bundled safetensors file of trained weights for
    ``dataset``: then the name alone is a runnable model (``robust audit NAME``).
    """

    name: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    dataset: str | None = None

    def create(self, **overrides: Any) -> nn.Module:
        kwargs = {**self.defaults, **overrides}
        try:
            return self.build(**kwargs)
        except TypeError as exc:
            raise ModelLoadError(f"cannot build architecture {self.name!r} with arguments "
                                 f"{kwargs}: {exc}") from exc


def import_architecture(spec: str) -> Callable[..., nn.Module]:
    """Resolve ``package.module:ClassName`` to a callable that builds a module."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ModelLoadError(f"`arch` {spec!r} is neither a registered name nor of the form "
                             "package.module:ClassName")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"`arch` {spec!r}: cannot import module {module_name!r} ({exc}); "
                             "check the name and that it is installed or on PYTHONPATH") from exc
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise ModelLoadError(f"`arch` {spec!r}: module {module_name!r} has no attribute "
                                 f"{attr_path!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ModelLoadError(f"`arch` {spec!r} is not a class or function")
    builder: Callable[..., nn.Module] = target
    return builder
