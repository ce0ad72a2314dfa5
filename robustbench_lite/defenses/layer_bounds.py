"""L2 operator-norm bounds of single layers, for `robustbench_lite.defenses.certify`.

Each entry of `LAYER_BOUNDS` maps a layer type to an upper bound on its L2 Lipschitz constant
on a given input shape:

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
* `Normalized`: ``1 / min(std)``.

Weights are taken as they are used, through any parametrisation (spectral normalisation
included). Numerically computed norms are taken in float64 and raised by `ROUNDING_SLACK`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from robustbench_lite.errors import DefenseError
from robustbench_lite.models.normalize import Normalized

#: Layers with at most this many input values get an exact operator norm.
EXACT_LIMIT = 4096
#: Relative margin added to numerically computed norms (float64 rounding is far smaller).
ROUNDING_SLACK = 1e-6

Shape = tuple[int, ...]


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


#: The bound of each understood layer type: ``(factor, method)`` for a module and its input
#: shape (without the batch dimension).
LAYER_BOUNDS: dict[type[nn.Module], Callable[[nn.Module, Shape], tuple[float, str]]] = {
    nn.Linear: _linear, nn.Conv2d: _conv2d,
    nn.AvgPool2d: _average_pool, nn.AdaptiveAvgPool2d: _average_pool, nn.MaxPool2d: _max_pool,
    nn.BatchNorm1d: _batch_norm, nn.BatchNorm2d: _batch_norm, Normalized: _normalized,
    nn.LeakyReLU: _leaky_relu, nn.ELU: _elu, nn.Sigmoid: _constant(0.25),
    **{kind: _constant(1.0) for kind in (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Hardtanh, nn.Softplus)},
    **{kind: _constant(1.0, "reshape or identity") for kind in (
        nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
        nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)},
}
