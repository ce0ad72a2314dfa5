"""Architectures: named factories that build an `nn.Module` for a state_dict to fill."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.errors import ModelLoadError
from robustbench_lite.limits import MAX_CLASSES, gib, memory_bytes
from robustbench_lite.sizes import size_problem


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
        """A fresh module built with `defaults` updated by ``overrides``; `ModelLoadError`
        for arguments out of range (`check_size_arguments`), a module too large for this
        machine's memory (`checked_build`) or arguments the builder rejects."""
        check_size_arguments(overrides, "`arch_kwargs`")
        kwargs = {**self.defaults, **overrides}
        module: nn.Module = checked_build(self.build, kwargs, f"architecture {self.name!r}")
        return module


#: Accepted ranges of the size arguments of the built-in architectures (and of any
#: architecture taking arguments of these names): values outside them are typos or hostile
#: metadata, and some (``depth``) would make building the module itself take hours.
SIZE_ARGUMENTS: dict[str, tuple[int, int]] = {
    "num_classes": (1, MAX_CLASSES - 1),
    "in_channels": (1, 1024),
    "depth": (1, 1000),
    "widen_factor": (1, 1024),
}


def check_size_arguments(kwargs: Mapping[str, Any], where: str,
                         fix: str = "correct it") -> None:
    """`ModelLoadError` naming ``where`` (e.g. ```arch_kwargs```, or a file's metadata),
    the argument and the ``fix`` when one of `SIZE_ARGUMENTS` is not a whole number in its
    range."""
    for name, (low, high) in SIZE_ARGUMENTS.items():
        if name not in kwargs:
            continue
        problem = size_problem(kwargs[name], low, high)
        if problem is not None:
            raise ModelLoadError(f"{where} {name} {problem}; {fix}")


def module_bytes(build: Callable[..., Any], kwargs: Mapping[str, Any]) -> int | None:
    """Bytes of the parameters and buffers ``build(**kwargs)`` would allocate, measured by
    building it on the ``meta`` device (no memory is allocated); None when the builder does
    not run there (it then runs as usual, and fails as usual)."""
    try:
        with torch.device("meta"):
            module = build(**kwargs)
    except Exception:
        return None
    if not isinstance(module, nn.Module):
        return None
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def checked_build(build: Callable[..., Any], kwargs: Mapping[str, Any], label: str) -> Any:
    """``build(**kwargs)``, refused with `ModelLoadError` before any memory is allocated when
    the module would not fit in this machine's memory; any exception of the builder becomes
    a one-line `ModelLoadError` naming ``label`` and the arguments."""
    needed, available = module_bytes(build, kwargs), memory_bytes()
    if needed is not None and needed > available:
        raise ModelLoadError(f"{label} with arguments {_shown(kwargs)} would need "
                             f"{gib(needed)} for its weights, more than this machine's "
                             f"{gib(available)} of memory; check "
                             "`arch_kwargs` (e.g. num_classes)")
    try:
        return build(**kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        first = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"cannot build {label} with arguments {_shown(kwargs)}: "
                             f"{type(exc).__name__}: {first}; check `arch_kwargs`") from exc


def _shown(kwargs: Mapping[str, Any]) -> str:
    text = repr(dict(kwargs))
    return text if len(text) <= 200 else text[:197] + "..."


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
