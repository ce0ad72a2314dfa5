"""Load a model file into a `RobustModel`: pick an adapter by content, build ``--arch`` (or
the architecture a safetensors file names in its metadata), fold normalisation in, and check
the result against the data it will be evaluated on."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import (
    ModelDataMismatchError,
    ModelLoadError,
    NonFiniteOutputError,
    UnknownArchitectureError,
)
from robustbench_lite.models.adapter import HEADER_BYTES, LoadRequest, ModelAdapter
from robustbench_lite.models.adapters.safetensors_file import recorded_architecture
from robustbench_lite.models.adapters.sniff import is_safetensors, is_zip, zip_names
from robustbench_lite.models.architecture import (
    check_size_arguments,
    checked_build,
    import_architecture,
)
from robustbench_lite.models.normalize import Normalized
from robustbench_lite.models.robust_model import RobustModel, file_sha256
from robustbench_lite.tasks.base import Task
from robustbench_lite.tasks.classification.task import ClassificationTask

logger = logging.getLogger(__name__)

PROBE_SAMPLES = 8


def architecture_builder(spec: str, kwargs: Mapping[str, Any], catalogue: Catalogue,
                         num_classes: int | None,
                         where: str = "`arch_kwargs`",
                         fix: str = "correct it") -> Callable[[], nn.Module]:
    """A zero-argument builder for ``--arch`` (registered name or ``module:Class``).

    Registered architectures get ``num_classes`` from the dataset unless ``kwargs`` sets it.
    ``kwargs`` are checked at once (`check_size_arguments`, errors naming ``where`` and
    ``fix``); the builder refuses a module too large for this machine before allocating it
    (`checked_build`).
    """
    check_size_arguments(kwargs, where, fix)
    if spec in catalogue.architectures.names():
        arch = catalogue.architectures.get(spec)
        extra = dict(kwargs)
        if num_classes is not None:
            extra.setdefault("num_classes", num_classes)
        return lambda: arch.create(**extra)
    if ":" not in spec:
        raise UnknownArchitectureError(
            spec, [*catalogue.architectures.names(), "package.module:ClassName"])
    factory = import_architecture(spec)

    def build() -> nn.Module:
        module = checked_build(factory, kwargs, f"`arch` {spec}")
        if not isinstance(module, nn.Module):
            raise ModelLoadError(f"`arch` {spec} returned {type(module).__name__}, "
                                 "not a torch.nn.Module")
        return module

    return build


def _choose_adapter(path: Path, header: bytes, catalogue: Catalogue,
                    format_name: str | None) -> ModelAdapter:
    if format_name is not None:
        return catalogue.adapters.get(format_name)()
    for adapter_class in catalogue.adapters_in_detection_order():
        adapter = adapter_class()
        if adapter.detect(path, header):
            return adapter
    if is_zip(header) and zip_names(path) is None:
        raise ModelLoadError(f"{path} is a corrupt or truncated zip archive; save or copy the "
                             "model file again")
    formats = ", ".join(cls.name for cls in catalogue.adapters_in_detection_order())
    raise ModelLoadError(f"{path} is not a model file this tool can read (known formats: "
                         f"{formats})")


def load_model(path: Path, *, catalogue: Catalogue, input_shape: tuple[int, ...],
               arch: str | None = None, arch_kwargs: Mapping[str, Any] | None = None,
               trust_model: bool = False, mean: Sequence[float] | None = None,
               std: Sequence[float] | None = None, name: str | None = None,
               num_classes: int | None = None, format_name: str | None = None) -> RobustModel:
    """Load ``path`` as a `RobustModel` whose input is in [0, 1].

    ``format_name`` forces an adapter instead of detecting one by content. A model found in
    training mode is switched to evaluation mode with a warning.
    """
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a file; pass the model file itself")
    with path.open("rb") as handle:
        header = handle.read(HEADER_BYTES)
    if not header:
        raise ModelLoadError(f"{path} is empty")
    where, fix = "`arch_kwargs`", "correct it"
    if arch is None and is_safetensors(path, header):
        recorded = recorded_architecture(path)
        if recorded is not None and recorded[0] in catalogue.architectures.names():
            logger.info("%s names its architecture %r; using it", path.name, recorded[0])
            if not arch_kwargs:
                where = f"{path}: metadata arch_kwargs"
                fix = "re-save the file, or give `arch_kwargs` to override its metadata"
            arch, arch_kwargs = recorded[0], arch_kwargs or recorded[1]
    builder = architecture_builder(arch, arch_kwargs or {}, catalogue, num_classes, where,
                                   fix) if arch else None
    adapter = _choose_adapter(path, header, catalogue, format_name)
    logger.debug("loading %s as %s", path, adapter.name)
    loaded = adapter.load(LoadRequest(path, header, trust_model, arch, builder))
    module, info = loaded.module, loaded.info
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"adapter {adapter.name!r} returned {type(module).__name__}, "
                             "not a torch.nn.Module")
    if module.training:
        warnings.warn(f"{path.name} was saved in training mode (dropout/batch-norm "
                      "statistics would change predictions); switched it to evaluation mode",
                      stacklevel=2)
        info = replace(info, notes=(*info.notes, "switched from training to evaluation mode"))
    if (mean is None) != (std is None):
        raise ModelLoadError("give both `mean` and `std`, or neither")
    if mean is not None and std is not None:
        channels = input_shape[0] if input_shape else 0
        if len(mean) not in (1, channels):
            raise ModelLoadError(f"`mean` has {len(mean)} values but the data has {channels} "
                                 "channels; give one value, or one per channel")
        module = Normalized(module, mean, std)
    info = replace(info, computation=(
        ("adapter", adapter.name), ("arch", arch or ""),
        ("arch_kwargs", json.dumps(dict(arch_kwargs or {}), sort_keys=True, default=repr)),
        ("mean", repr([float(v) for v in mean]) if mean is not None else ""),
        ("std", repr([float(v) for v in std]) if std is not None else "")))
    return RobustModel(module=module, input_shape=input_shape,
                       num_classes=num_classes or 0, name=name or path.name,
                       sha256=file_sha256(path), load_info=info)


def check_model_on_data(model: RobustModel, data: EvalData, task: Task | None = None) -> None:
    """Forward a few samples and fail clearly on a shape or NaN problem, or on outputs that
    do not fit ``task`` (default: classification, whose class count must match the data's).

    Sets ``model.num_classes`` to the model's output width.
    """
    probe = data.x[:PROBE_SAMPLES].to(model.device)
    try:
        with torch.no_grad():
            outputs = model(probe)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelDataMismatchError(
            f"the model cannot take input of shape {tuple(data.input_shape)} from dataset "
            f"{data.name!r} ({first}); use data of the model's input shape") from exc
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2 \
            or len(outputs) != len(probe):
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs)
        raise ModelDataMismatchError(f"the model returned {shape} for a batch of {len(probe)}; "
                                     "expected outputs of shape (batch, features)")
    (task or ClassificationTask()).check(outputs.cpu(), data)
    if not torch.isfinite(outputs).all():
        raise NonFiniteOutputError(f"the model returned NaN or infinite outputs on clean "
                                   f"samples of {data.name!r}; its weights may be corrupt")
    model.num_classes = int(outputs.shape[1])
