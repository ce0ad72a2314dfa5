"""Files written by ``torch.save``: a state_dict, a training checkpoint, or a pickled module.

Always read first with ``torch.load(weights_only=True)``, which cannot run code. A file that
needs more (a whole pickled ``nn.Module``) is loaded only when the user passes
``--trust-model``, because unpickling it can execute arbitrary code.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from robustbench_lite.errors import ModelLoadError, UntrustedModelError
from robustbench_lite.models.adapter import LoadedModule, LoadRequest, ModelAdapter
from robustbench_lite.models.adapters.sniff import is_torch_save_zip, is_zip, zip_names
from robustbench_lite.models.robust_model import LoadInfo
from robustbench_lite.models.state_dict import CHECKPOINT_KEYS, build_from_state_dict

#: The legacy (non-zip) torch.save format starts with a pickled magic number.
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TorchCheckpointAdapter(ModelAdapter):
    name = "torch-checkpoint"
    description = ("torch.save file: state_dict or checkpoint with --arch; a pickled "
                   "nn.Module only with --trust-model")

    def detect(self, path: Path, header: bytes) -> bool:
        if header.startswith(LEGACY_MAGIC):
            return True
        names = zip_names(path) if is_zip(header) else None
        return names is not None and is_torch_save_zip(names)

    def load(self, request: LoadRequest) -> LoadedModule:
        try:
            state = torch.load(request.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            return self._load_pickled(request, exc)
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
            raise ModelLoadError(f"cannot read {request.path}: {_first_line(exc)}; the file "
                                 "may be truncated or corrupt") from exc
        return build_from_state_dict(request, state, self.name)

    def _load_pickled(self, request: LoadRequest, cause: Exception) -> LoadedModule:
        if not request.trust_model:
            raise UntrustedModelError(
                f"{request.path} is a pickled Python object (e.g. a whole nn.Module); loading "
                "it can execute arbitrary code from the file. Pass `trust_model` only if you "
                "trust its source, or re-save it as a state_dict (with `arch`) or TorchScript"
            ) from cause
        try:  # full unpickling, reached only with `trust_model` (checked just above)
            obj = torch.load(request.path, map_location="cpu", weights_only=False)
        except (AttributeError, ModuleNotFoundError) as exc:
            raise ModelLoadError(f"{request.path} needs Python code that is not importable "
                                 f"({_first_line(exc)}); put the module defining the model "
                                 "on PYTHONPATH") from exc
        except Exception as exc:
            raise ModelLoadError(f"cannot unpickle {request.path}: {_first_line(exc)}") from exc
        module = obj if isinstance(obj, nn.Module) else _module_in_checkpoint(obj)
        if module is None:
            return build_from_state_dict(request, obj, "torch-pickle", trusted=True)
        return LoadedModule(module, LoadInfo("torch-pickle", trusted=True, path=str(request.path)))


def _module_in_checkpoint(obj: object) -> nn.Module | None:
    if isinstance(obj, Mapping):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), nn.Module):
                found: nn.Module = obj[key]
                return found
    return None
