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

* ``Linear``: the largest singular value of its weight (exact);
* ``Conv2d`` (zero padding): the operator norm of the convolution on its actual input shape,
  exact (eigenvalues of ``A^T A`` built on the basis) when the input has at most
  `EXACT_LIMIT` values, else the circulant (FFT) bound on the padded grid, which is never
  smaller;
* ``AvgPool2d``, ``AdaptiveAvgPool2d``: exact on one channel up to `EXACT_LIMIT` pixels, else
  the Schur bound ``sqrt(max row sum * max column sum)``;
* ``MaxPool2d``: ``sqrt`` of the most windows any pixel lies in (1 when non-overlapping);
* ``BatchNorm1d``/``BatchNorm2d`` with running statistics: ``max |gamma / sqrt(var + eps)|``;
* activations with their Lipschitz constant (ReLU, ReLU6, LeakyReLU, ELU, Tanh, Hardtanh,
  Softplus: 1 or the largest slope; Sigmoid: 1/4), and ``Flatten``, ``Unflatten``,
  ``Identity``, dropout layers (identity in evaluation mode): 1;
* `Normalized`: ``1 / min(std)``;

weights as they are used, through any parametrisation (spectral normalisation included). Any
other module type raises `DefenseError`: the certificate is then unavailable, never wrong.
Numerically computed norms are taken in float64 and raised by `ROUNDING_SLACK`; the bound is
for the network in exact arithmetic (its float32 evaluation differs by rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from torch.nn.utils import parametrize

from robustbench_lite.errors import DefenseError
from robustbench_lite.models.normalize import Normalized

#: Layers with at most this many input values get an exact operator norm.
EXACT_LIMIT = 4096
#: Relative margin added to numerically computed norms (float64 rounding is far smaller).
ROUNDING_SLACK = 1e-6

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerBound:
    """One step of the chain: its module name (``""`` for the network itself), type, input
    shape (without the batch), its Lipschitz bound and how that was obtained."""

    name: str
    kind: str
    input_shape: Shape
    factor: float
    method: str


# ---------------------------------------------------------------- per-layer bounds


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _spectral_norm(matrix: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(matrix.double(), ord=2)) * (1 + ROUNDING_SLACK)


def _gram_norm(linear_map: Callable[[torch.Tensor], torch.Tensor], shape: Shape) -> float:
    """Operator norm of a linear map on inputs of ``shape``: ``sqrt(lambda_max(A^T A))``,
    ``A^T A`` built column by column with autograd on the standard basis, in float64."""
    size = math.prod(shape)
    basis = torch.eye(size, dtype=torch.float64).view(size, *shape).requires_grad_(True)
    with torch.enable_grad():
        image = linear_map(basis)
        (gram,) = torch.autograd.grad(image, basis, grad_outputs=image.detach())
    gram = gram.reshape(size, size)
    top = float(torch.linalg.eigvalsh((gram + gram.T) / 2)[-1].clamp_min(0))
    return math.sqrt(top) * (1 + ROUNDING_SLACK)


def _linear(module: nn.Module, shape: Shape) -> tuple[float, str]:
    assert isinstance(module, nn.Linear)
    return _spectral_norm(module.weight.detach()), "largest singular value"


def _conv2d(module: nn.Module, shape: Shape) -> tuple[float, str]:
    assert isinstance(module, nn.Conv2d)
    if module.padding_mode != "zeros":
        raise DefenseError(f"the certificate supports Conv2d with zero padding only, not "
                           f"padding_mode={module.padding_mode!r}; certificate unavailable")
    if len(shape) != 3:
        raise DefenseError(f"Conv2d input of shape {shape} is not (channels, height, width)")
    weight = module.weight.detach().double()
    if math.prod(shape) <= EXACT_LIMIT:
        return _gram_norm(lambda x: functional.conv2d(
            x, weight, None, module.stride, module.padding, module.dilation, module.groups),
            shape), "exact operator norm"
    return _conv_fft_bound(module, weight, shape), "circulant bound"


def _conv_fft_bound(module: nn.Conv2d, weight: torch.Tensor, shape: Shape) -> float:
    """A stride-s convolution subsamples the stride-1 one, which (zero padding) is the
    restriction of a circular convolution on a grid holding the padded input; the latter's
    norm is the largest singular value of the kernel's 2-D DFT over all frequencies."""
    out_channels, in_per_group, kh, kw = weight.shape
    dh, dw = _pair(module.dilation)
    if isinstance(module.padding, str):
        pads = (0, 0) if module.padding == "valid" else (dh * (kh - 1), dw * (kw - 1))
    else:
        pads = (2 * module.padding[0], 2 * module.padding[1])
    grid = (max(shape[1] + pads[0], dh * (kh - 1) + 1), max(shape[2] + pads[1], dw * (kw - 1) + 1))
    kernel = weight.new_zeros(out_channels, in_per_group, *grid)
    kernel[:, :, :dh * (kh - 1) + 1:dh, :dw * (kw - 1) + 1:dw] = weight
    spectrum = torch.fft.fft2(kernel).permute(2, 3, 0, 1)
    per_group = out_channels // module.groups
    norms = [torch.linalg.matrix_norm(spectrum[..., g * per_group:(g + 1) * per_group, :],
                                      ord=2).max() for g in range(module.groups)]
    return float(torch.stack(norms).max()) * (1 + ROUNDING_SLACK)


def _average_pool(module: nn.Module, shape: Shape) -> tuple[float, str]:
    """The same linear map on every channel: its norm on one channel."""
    plane = (1, *shape[1:])
    if math.prod(plane) <= EXACT_LIMIT:
        return _gram_norm(module, plane), "exact operator norm"
    ones = torch.ones(1, *plane, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        rows = module(ones)
        (columns,) = torch.autograd.grad(rows.sum(), ones)
    bound = math.sqrt(float(rows.max()) * float(columns.max()))
    return bound * (1 + ROUNDING_SLACK), "Schur bound"


def _max_pool(module: nn.Module, shape: Shape) -> tuple[float, str]:
    """Each output moves at most as much as the L2 norm of its window's change, so the norm
    is at most ``sqrt`` of the most windows a pixel lies in."""
    assert isinstance(module, nn.MaxPool2d)
    kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    windows = [min(k, -(-((k - 1) * d + 1) // s))
               for k, d, s in zip(kernel, dilation, stride, strict=True)]
    return math.sqrt(windows[0] * windows[1]), "overlap count"


def _batch_norm(module: nn.Module, shape: Shape) -> tuple[float, str]:
    assert isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
    if module.running_var is None:
        raise DefenseError(f"{type(module).__name__} without running statistics normalises by "
                           "batch statistics; certificate unavailable")
    scale = (module.running_var.double() + module.eps).rsqrt()
    if module.weight is not None:
        scale = scale * module.weight.detach().double().abs()
    return float(scale.max()) * (1 + ROUNDING_SLACK), "largest scale"


def _normalized(module: nn.Module, shape: Shape) -> tuple[float, str]:
    assert isinstance(module, Normalized)
    return 1 / float(module.std.double().abs().min()), "1 / min(std)"


def _constant(value: float, method: str = "Lipschitz constant") -> Callable[
        [nn.Module, Shape], tuple[float, str]]:
    return lambda module, shape: (value, method)


def _leaky_relu(module: nn.Module, shape: Shape) -> tuple[float, str]:
    assert isinstance(module, nn.LeakyReLU)
    return max(1.0, abs(module.negative_slope)), "largest slope"


def _elu(module: nn.Module, shape: Shape) -> tuple[float, str]:
    assert isinstance(module, nn.ELU)
    return max(1.0, abs(module.alpha)), "largest slope"


_BOUNDS: dict[type[nn.Module], Callable[[nn.Module, Shape], tuple[float, str]]] = {
    nn.Linear: _linear, nn.Conv2d: _conv2d,
    nn.AvgPool2d: _average_pool, nn.AdaptiveAvgPool2d: _average_pool, nn.MaxPool2d: _max_pool,
    nn.BatchNorm1d: _batch_norm, nn.BatchNorm2d: _batch_norm, Normalized: _normalized,
    nn.LeakyReLU: _leaky_relu, nn.ELU: _elu, nn.Sigmoid: _constant(0.25),
    **{kind: _constant(1.0) for kind in (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Hardtanh, nn.Softplus)},
    **{kind: _constant(1.0, "reshape or identity") for kind in (
        nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
        nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)},
}


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
        if _kind(unit) not in _BOUNDS:
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
            factor, method = _BOUNDS[_kind(unit)](unit, unit_shape)
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
