"""Plumbing shared by the backends: the host's model as an ``nn.Module``, seeding, the
library import and the threat-model parameters a user may not override."""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn
from robustbench_lite.threat import Norm, ThreatModel


class LogitsModule(nn.Module):
    """The host's model function as the ``nn.Module`` a library insists on.

    Every call goes through the function the host passed to ``Attack.run`` (the host's
    ``QueryCounter``), so the library's queries are counted like a native attack's. The
    function is deliberately not registered as a submodule: the library cannot move it to
    another device, switch it to training mode or see its parameters. Inputs are moved to
    ``device`` and cast to ``dtype`` (the batch's) before the call.
    """

    model_fn: ModelFn

    def __init__(self, model: ModelFn, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        object.__setattr__(self, "model_fn", model)  # bypass nn.Module registration
        self.target_device = device
        self.target_dtype = dtype
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model_fn(x.to(device=self.target_device, dtype=self.target_dtype))


def num_classes_of(model: ModelFn, x: torch.Tensor) -> int:
    """The class count: from the `RobustModel` behind the host's counter when there is one,
    else from one forward pass."""
    for candidate in (model, getattr(model, "model", None)):
        count = getattr(candidate, "num_classes", None)
        if isinstance(count, int) and count > 0:
            return count
    with torch.no_grad():
        return int(model(x[:1]).shape[1])


def device_context(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Make ``device`` the current CUDA device (libraries put tensors on the *current* one)."""
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


@contextlib.contextmanager
def seeded(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global generators from ``generator`` for the duration.

    The libraries draw their random starts from the global generators, not from ours; one
    seed drawn from ``generator`` makes the batch reproducible. The previous global states
    are restored on exit, so the seeding does not leak into the caller.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                             device=generator.device).item())
    cuda_devices: list[int] = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None
                        else torch.cuda.current_device()]
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=cuda_devices):
        torch.default_generator.manual_seed(seed)
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def import_library(module: str, backend: str, requirement: str) -> ModuleType:
    """Import ``module`` lazily (the libraries are slow to import); a clear error if absent."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AttackError(f"the {backend} backend needs {requirement} ({exc}); install it with "
                          f"pip install '{requirement}'") from exc


def compact_names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


_NORM_VALUES = {"inf": Norm.LINF, "linf": Norm.LINF, "np.inf": Norm.LINF,
                "2": Norm.L2, "2.0": Norm.L2, "l2": Norm.L2,
                "1": Norm.L1, "1.0": Norm.L1, "l1": Norm.L1}


def norm_of_value(value: Any) -> Norm | None:
    """Read a library's norm argument (``np.inf``, ``"inf"``, ``2``, ``1``...)."""
    return _NORM_VALUES.get(str(value).strip().lower())


def check_threat_params(params: Mapping[str, Any], threat: ThreatModel, who: str,
                        targeted: bool | None = None) -> None:
    """Reject user parameters ``eps``, ``norm`` and ``targeted`` that contradict ``threat``
    (``targeted``: whether the objective has targets, by default ``threat.targeted``): the
    threat model and its objective set them, not the attack's parameters."""
    if targeted is None:
        targeted = threat.targeted
    contradictions = []
    if "eps" in params:
        try:
            same = math.isclose(float(params["eps"]), threat.eps, rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            same = False
        if not same:
            contradictions.append(f"eps={params['eps']!r}")
    if "norm" in params and norm_of_value(params["norm"]) is not threat.norm:
        contradictions.append(f"norm={params['norm']!r}")
    if "targeted" in params and bool(params["targeted"]) != targeted:
        contradictions.append(f"targeted={params['targeted']!r}")
    if contradictions:
        raise AttackError(f"{who}: {', '.join(contradictions)} contradicts the threat model "
                          f"({threat.label}); the threat model sets eps/norm: drop the "
                          "parameter and use --threat")
