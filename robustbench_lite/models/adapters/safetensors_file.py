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


#: Longest ``arch_kwargs`` metadata read: keyword arguments are a few short values.
MAX_ARCH_KWARGS_CHARS = 10_000


def recorded_architecture(path: Path) -> tuple[str, dict[str, Any]] | None:
    """The ``architecture`` a safetensors file's metadata names and its ``arch_kwargs``
    (a JSON object; empty when absent), or None (no such metadata, or not a readable
    safetensors file). `ModelLoadError`, naming the file and the key, when the metadata
    names an architecture but its ``arch_kwargs`` is not a small JSON object of plain
    values (the values themselves are checked when the architecture is built)."""
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    name = metadata.get("architecture")
    if not isinstance(name, str) or not name:
        return None
    text = metadata.get("arch_kwargs") or "{}"
    fix = "re-save the file, or give `arch` and `arch_kwargs` to override its metadata"
    if len(text) > MAX_ARCH_KWARGS_CHARS:
        raise ModelLoadError(f"{path}: metadata arch_kwargs is {len(text):,} characters long, "
                             f"not a few keyword arguments; {fix}")
    try:
        kwargs = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path}: metadata arch_kwargs is not valid JSON "
                             f"({type(exc).__name__}: {str(exc)[:80]}); {fix}") from exc
    if not isinstance(kwargs, dict) or not all(
            isinstance(value, (str, int, float, bool, type(None))) for value in kwargs.values()):
        raise ModelLoadError(f"{path}: metadata arch_kwargs must be a JSON object of plain "
                             f"values such as {{\"num_classes\": 10}}, got {text[:60]!r}; {fix}")
    return name, kwargs


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
