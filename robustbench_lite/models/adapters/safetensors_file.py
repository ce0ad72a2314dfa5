"""safetensors files: tensors only, no code; the architecture comes from ``--arch``, or from
the file's ``architecture`` metadata (written by ``robust train`` and ``robust harden``)."""

from __future__ import annotations

from pathlib import Path

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


def recorded_architecture(path: Path) -> str | None:
    """The ``architecture`` a safetensors file's metadata names, or None (no metadata, or
    not a readable safetensors file)."""
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    name = metadata.get("architecture")
    return name if isinstance(name, str) and name else None
