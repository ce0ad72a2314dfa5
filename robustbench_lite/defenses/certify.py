"""Certified L2 robustness from a global Lipschitz bound.

Tsuzuku, Sato & Sugiyama, "Lipschitz-Margin Training: Scalable Certification of Perturbation
Invariance for Deep Neural Networks", NeurIPS 2018. If the logits ``f`` are ``L``-Lipschitz in
L2, a perturbation ``delta`` moves the difference of two logits by at most
``sqrt(2) * L * ||delta||_2`` (the functional ``e_y - e_j`` has norm ``sqrt(2)``). So a sample
whose true logit leads every other one by the margin ``m > 0`` keeps its prediction for every
``||delta||_2 < m / (sqrt(2) * L)``: its certified radius.

The contract of `lipschitz_bound`: ``L`` is the product of upper bounds on the L2 Lipschitz
constant of every step of the network in evaluation mode, which is sound only for a network
that is a plain chain of steps. A dummy forward pass with hooks records the steps in execution
order and checks the chain: each layer's input must be the previous layer's output tensor
(or a reshaped view of it), unmodified, and the network returns the last layer's output, so a
residual connection, a branch, a concatenation or any arithmetic in a ``forward`` method is
refused. The pass runs on two different inputs and must take the same path. Steps understood:

* the layers of `robustbench_lite.defenses.layer_bounds` (linear, convolution with zero
  padding, average and max pooling, batch norm in evaluation mode, 1-Lipschitz or bounded
  activations, reshapes, dropout, `Normalized`), each bounded on its actual input shape;

Any other module type raises `DefenseError`: the certificate is then unavailable, never
wrong. The bound is for the network in exact arithmetic (its float32 evaluation differs by
rounding).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from robustbench_lite.defenses.layer_bounds import LAYER_BOUNDS, Shape
from robustbench_lite.errors import DefenseError
from robustbench_lite.models.normalize import Normalized


@dataclass(frozen=True)
class LayerBound:
    """One step of the chain: its module name (``""`` for the network itself), type, input
    shape (without the batch), its Lipschitz bound and how that was obtained."""

    name: str
    kind: str
    input_shape: Shape
    factor: float
    method: str


# ---------------------------------------------------------------- tracing the chain


def _kind(module: nn.Module) -> type[nn.Module]:
    """The module's class, or the class it had before a parametrisation was added (a
    parametrised `Normalized` stays unknown: its inner model would go unseen)."""
    if parametrize.is_parametrized(module) and type(module).__bases__[0] is not Normalized:
        base: type[nn.Module] = type(module).__bases__[0]
        return base
    return type(module)


def _steps_of(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Every module that is one step of the chain, with its qualified name: leaves,
    parametrised layers (not entered) and `Normalized` wrappers; other containers are walked."""
    if parametrize.is_parametrized(module) or not any(True for _ in module.children()):
        yield prefix, module
        return
    if type(module) is Normalized:
        yield prefix, module
    for name, child in module.named_children():
        yield from _steps_of(child, f"{prefix}.{name}" if prefix else name)


@dataclass
class _Chain:
    """The tensor the chain has reached and the steps that led to it."""

    current: torch.Tensor
    steps: list[tuple[str, nn.Module, Shape]]
    pending_inner: nn.Module | None = None

    def __post_init__(self) -> None:
        self.version = self.current._version

    def follows(self, tensor: Any) -> bool:
        """Whether ``tensor`` holds the chain's current values unchanged: the tensor itself
        or a contiguous reshape of the same memory, not modified in place since."""
        if not isinstance(tensor, torch.Tensor) or tensor._version != self.version:
            return False
        if tensor is self.current:
            return True
        return (tensor.data_ptr() == self.current.data_ptr()
                and tensor.numel() == self.current.numel()
                and tensor.is_contiguous() and self.current.is_contiguous())

    def advance(self, tensor: torch.Tensor) -> None:
        self.current, self.version = tensor, tensor._version


def _not_a_chain(name: str, unit: nn.Module) -> DefenseError:
    return DefenseError(
        f"the certificate needs the network to be a plain chain of layers, but the input of "
        f"{name or 'the network'} ({type(unit).__name__}) is not the unchanged output of the "
        "layer before it (a residual connection, a branch or arithmetic inside a forward "
        "method); certificate unavailable")


def _trace(module: nn.Module, dummy: torch.Tensor) -> list[tuple[str, nn.Module, Shape]]:
    """Run ``module`` on ``dummy`` with hooks on every step; the steps in execution order
    with their input shapes, or `DefenseError` where the chain breaks."""
    chain = _Chain(dummy, [])
    units = list(_steps_of(module))
    names = {id(m): name for name, m in units}

    def adopt(inner: nn.Module, args: tuple[Any, ...]) -> None:
        if chain.pending_inner is inner and len(args) == 1 and isinstance(args[0], torch.Tensor):
            chain.pending_inner = None
            chain.advance(args[0])  # Normalized.forward standardised the chain's tensor

    def pre_hook(unit: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        name = names[id(unit)]
        if kwargs or len(args) != 1 or not chain.follows(args[0]):
            raise _not_a_chain(name, unit)
        if _kind(unit) not in LAYER_BOUNDS:
            raise DefenseError(f"the certificate cannot bound layers of type "
                               f"{type(unit).__name__} ({name or 'the network'}); certificate "
                               "unavailable")
        chain.steps.append((name, unit, tuple(args[0].shape[1:])))
        if type(unit) is Normalized:
            chain.pending_inner = unit.model

    def hook(unit: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if type(unit) is Normalized:  # returns its inner model's output: check, keep
            if not chain.follows(output):
                raise DefenseError(f"{names[id(unit)] or 'the network'} (Normalized) returns "
                                   "something else than its model's output")
        elif isinstance(output, torch.Tensor):
            chain.advance(output)
        else:
            raise DefenseError(f"{names[id(unit)] or 'the network'} ({type(unit).__name__}) "
                               "does not return one tensor; certificate unavailable")

    handles = []
    for _, unit in units:
        if type(unit) is Normalized:
            handles.append(unit.model.register_forward_pre_hook(adopt, prepend=True))
        handles.append(unit.register_forward_pre_hook(pre_hook, with_kwargs=True))
        # First among the forward hooks: a hook that changes the output breaks the chain.
        handles.append(unit.register_forward_hook(hook, prepend=True))
    try:
        output = module(dummy)
    except RuntimeError as error:
        raise DefenseError(f"the network fails on an input of shape {tuple(dummy.shape[1:])}: "
                           f"{error}") from error
    finally:
        for handle in handles:
            handle.remove()
    if not chain.follows(output):
        raise DefenseError("the certificate needs the network to return its last layer's "
                           "output unchanged; certificate unavailable")
    return chain.steps


def _placement(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the module's first parameter or buffer (CPU, float32)."""
    reference = next(iter(module.parameters()), next(iter(module.buffers()), None))
    if reference is None:
        return torch.device("cpu"), torch.float32
    dtype = reference.dtype if reference.is_floating_point() else torch.float32
    return reference.device, dtype


class _EvalMode:
    """Evaluation mode inside the block; every submodule's mode is restored afterwards."""

    def __init__(self, module: nn.Module) -> None:
        self.modes = [(m, m.training) for m in module.modules()]
        self.module = module

    def __enter__(self) -> None:
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        for m, training in self.modes:
            m.training = training


def layer_bounds(module: nn.Module, input_shape: Iterable[int]) -> tuple[LayerBound, ...]:
    """The chain of steps of ``module`` (evaluation mode) on inputs of ``input_shape``
    (without the batch dimension), each with its Lipschitz bound; `DefenseError` for a
    network outside the contract of this module's docstring."""
    shape = tuple(int(s) for s in input_shape)
    device, dtype = _placement(module)
    generator = torch.Generator().manual_seed(0)
    dummies = [torch.zeros(1, *shape), torch.rand(1, *shape, generator=generator)]
    with _EvalMode(module), torch.no_grad():
        traces = [_trace(module, d.to(device=device, dtype=dtype)) for d in dummies]
        if [(id(m), s) for _, m, s in traces[0]] != [(id(m), s) for _, m, s in traces[1]]:
            raise DefenseError("the network takes different layers for different inputs; "
                               "certificate unavailable")
        bounds = []
        for name, unit, unit_shape in traces[0]:
            factor, method = LAYER_BOUNDS[_kind(unit)](unit, unit_shape)
            bounds.append(LayerBound(name, _kind(unit).__name__, unit_shape, factor, method))
    return tuple(bounds)


def lipschitz_bound(module: nn.Module, input_shape: Iterable[int]) -> float:
    """An upper bound on the L2 Lipschitz constant of ``module`` (inputs of ``input_shape``
    to logits, evaluation mode): the product of `layer_bounds`. `DefenseError` when the
    network is not a chain of understood layers (see the module docstring)."""
    return math.prod(bound.factor for bound in layer_bounds(module, input_shape))


# ---------------------------------------------------------------- radii and accuracy


def certified_radii(module: nn.Module, x: torch.Tensor, y: torch.Tensor, lipschitz: float,
                    *, batch_size: int = 256) -> torch.Tensor:
    """Per-sample certified L2 radius ``margin / (sqrt(2) * lipschitz)`` of ``module`` (in
    evaluation mode), where ``margin`` is the true logit minus the largest other one; 0 for a
    misclassified sample (or a tie)."""
    if not math.isfinite(lipschitz) or lipschitz < 0:
        raise DefenseError(f"a Lipschitz bound must be finite and >= 0, got {lipschitz}")
    margins = []
    device, dtype = _placement(module)
    with _EvalMode(module), torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = module(x[start:start + batch_size].to(device=device, dtype=dtype)).double()
            labels = y[start:start + batch_size].to(logits.device).view(-1, 1)
            others = logits.scatter(1, labels, float("-inf")).amax(dim=1)
            margins.append((logits.gather(1, labels).squeeze(1) - others).cpu())
    margin = torch.cat(margins) if margins else torch.empty(0, dtype=torch.float64)
    positive = margin.clamp_min(0)
    if lipschitz == 0:
        return torch.where(positive > 0, torch.full_like(positive, math.inf), positive)
    return positive / (math.sqrt(2) * lipschitz)


def certified_accuracy(radii: torch.Tensor, eps_values: Iterable[float]) -> dict[float, float]:
    """For each L2 ``eps``, the share of samples whose certified radius exceeds it strictly."""
    if radii.numel() == 0:
        raise DefenseError("certified accuracy needs at least one sample")
    accuracy = {}
    for eps in eps_values:
        if not math.isfinite(eps) or eps < 0:
            raise DefenseError(f"eps must be a finite number >= 0, got {eps}")
        accuracy[float(eps)] = float((radii > eps).double().mean())
    return accuracy
