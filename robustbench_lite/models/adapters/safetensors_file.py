"""safetensors files: tensors only, no code; the architecture comes from ``--arch``, or from
the file's ``architecture`` metadata (written by ``robust train`` and ``robust harden``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from robustbench_lite.errors import ModelLoadError
from robustbench_lite.models.adapter import LoadedModule, LoadRequest, ModelAdapter
from robustbench_lite.models.adapters.sniff import is_safetensors
from robustbench_lite.models.state_dict import build_from_state_dict


class SafetensorsAdapter(ModelAdapter):
    name = "safetensors"
    description = "safetensors weights file, with --arch"

    def detect(self, path: Path, header: bytes) -> bool:
        return is_safetensors(path, header)

    def load(self, request: LoadRequest) -> LoadedModule:
        try:
            tensors = load_file(str(request.path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read safetensors file {request.path}: {exc}") from exc
        return build_from_state_dict(request, tensors, self.name)


def recorded_architecture(path: Path) -> tuple[str, dict[str, Any]] | None:
    """The ``architecture`` a safetensors file's metadata names and its ``arch_kwargs``
    (a JSON object; empty when absent), or None (no such metadata, or not a readable
    safetensors file)."""
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    name = metadata.get("architecture")
    if not isinstance(name, str) or not name:
        return None
    try:
        kwargs = json.loads(metadata.get("arch_kwargs") or "{}")
    except json.JSONDecodeError:
        return None
    return (name, kwargs) if isinstance(kwargs, dict) else None
