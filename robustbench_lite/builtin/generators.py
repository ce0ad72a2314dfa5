"""Built-in style generators, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.semantic.stylegan import ColourDigitsGenerator


@hookimpl
def register_generators(register: Callable[[Any], None]) -> None:
    register(ColourDigitsGenerator)
