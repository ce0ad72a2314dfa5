"""Built-in threat-matrix presets (``quick``, ``standard``, ``autoattack``), registered
through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.matrix.presets import BUILTIN_PRESETS


@hookimpl
def register_threat_matrices(register: Callable[[Any], None]) -> None:
    for preset in BUILTIN_PRESETS:
        register(preset)
