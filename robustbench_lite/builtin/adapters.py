"""Built-in model-file adapters, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.models.adapters.safetensors_file import SafetensorsAdapter
from robustbench_lite.models.adapters.torch_checkpoint import TorchCheckpointAdapter
from robustbench_lite.models.adapters.torchscript import TorchScriptAdapter


@hookimpl
def register_model_adapters(register: Callable[[Any], None]) -> None:
    register(TorchScriptAdapter)
    register(TorchCheckpointAdapter)
    register(SafetensorsAdapter)
