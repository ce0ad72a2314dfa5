"""TorchScript archives (``torch.jit.save``): compiled code, no Python pickles executed."""

from __future__ import annotations

from pathlib import Path

import torch

from robustbench_lite.errors import ModelLoadError
from robustbench_lite.models.adapter import LoadedModule, LoadRequest, ModelAdapter
from robustbench_lite.models.adapters.sniff import is_torchscript_zip, is_zip, zip_names
from robustbench_lite.models.robust_model import LoadInfo


class TorchScriptAdapter(ModelAdapter):
    name = "torchscript"
    description = "TorchScript archive saved with torch.jit.save (no --arch needed)"

    def detect(self, path: Path, header: bytes) -> bool:
        names = zip_names(path) if is_zip(header) else None
        return names is not None and is_torchscript_zip(names)

    def load(self, request: LoadRequest) -> LoadedModule:
        try:
            module = torch.jit.load(str(request.path), map_location="cpu")  # type: ignore[no-untyped-call]
        except (RuntimeError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelLoadError(f"cannot load TorchScript archive {request.path}: "
                                 f"{first_line}") from exc
        notes = ("--arch ignored: a TorchScript archive carries its own architecture",) \
            if request.architecture else ()
        return LoadedModule(module, LoadInfo(self.name, trusted=False, path=str(request.path),
                                             notes=notes))
