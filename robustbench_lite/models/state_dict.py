"""Find the state_dict inside a checkpoint and load it into an architecture, explaining
every mismatch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robustbench_lite.errors import ModelLoadError
from robustbench_lite.models.adapter import LoadedModule, LoadRequest
from robustbench_lite.models.robust_model import LoadInfo

#: Keys under which training scripts commonly nest the weights, tried in this order.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
#: Prefixes added by wrappers: DataParallel/DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Buffers that old checkpoints may lack without any effect on inference.
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
_LISTED = 6


def _is_tensor_mapping(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items())


def extract_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The tensors of a state_dict or of a checkpoint that nests one; wrapper prefixes removed."""
    found: object = obj
    for _ in range(3):
        if _is_tensor_mapping(found) or not isinstance(found, Mapping):
            break
        nested = next((found[key] for key in CHECKPOINT_KEYS
                       if key in found and isinstance(found[key], Mapping)), None)
        if nested is None:
            break
        found = nested
    if not _is_tensor_mapping(found):
        keys = list(obj)[:_LISTED] if isinstance(obj, Mapping) else []
        raise ModelLoadError(f"{source} holds no state_dict (a mapping of names to tensors); top-"
                             f"level keys: {keys}; expected one of {list(CHECKPOINT_KEYS)}")
    assert isinstance(found, Mapping)
    return {_strip_prefixes(key): value for key, value in found.items()}


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else "")


def load_state_dict_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor],
                         architecture: str) -> None:
    """Load strictly; on any mismatch raise one line naming missing, unexpected and
    wrongly-shaped keys."""
    expected: dict[str, Any] = module.state_dict()
    missing = [key for key in expected if key not in state_dict
               and not key.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [f"{key} (file {list(state_dict[key].shape)}, `arch` {list(value.shape)})"
                for key, value in expected.items()
                if key in state_dict and state_dict[key].shape != value.shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if reshaped:
        problems.append(f"shape mismatch: {_listing(reshaped)}")
    if problems:
        raise ModelLoadError(f"the weights do not match `arch` {architecture}: "
                             + "; ".join(problems)
                             + "; check `arch` and `arch_kwargs` (e.g. num_classes)")
    module.load_state_dict(state_dict, strict=False)


def build_from_state_dict(request: LoadRequest, state: object, fmt: str,
                          trusted: bool = False) -> LoadedModule:
    """Fill the ``--arch`` module with a state_dict found in ``state``."""
    if request.build_architecture is None or request.architecture is None:
        raise ModelLoadError(f"{request.path} holds weights only; name the architecture with "
                             "`arch` (a built-in name, or package.module:ClassName)")
    weights = extract_state_dict(state, str(request.path))
    module = request.build_architecture().eval()
    load_state_dict_into(module, weights, request.architecture)
    return LoadedModule(module, LoadInfo(fmt, trusted=trusted, path=str(request.path),
                                         architecture=request.architecture))
