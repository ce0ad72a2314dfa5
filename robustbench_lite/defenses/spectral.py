"""Spectral normalisation.

Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018. Every linear and convolutional layer's weight ``W`` is replaced by
``W / sigma(W)``, where ``sigma`` is the largest singular value of ``W`` reshaped to a matrix
(``out`` x ``in * kernel``), estimated by power iteration that advances ``n_power_iterations``
steps per training forward pass (``torch.nn.utils.parametrizations.spectral_norm``).

What it constrains: each Linear layer becomes (about) 1-Lipschitz in L2. A convolution is not
its reshaped weight matrix: its operator norm can exceed ``sigma`` by up to a factor of
``sqrt(kernel_height * kernel_width)``, and the estimate lags the weights while they train.
So the normalisation keeps the network's Lipschitz constant small but does not bound it; the
certificate (`robustbench_lite.defenses.certify`) recomputes the true operator norm of every
layer as trained and never relies on the normalisation.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from robustbench_lite.defenses.base import Defense
from robustbench_lite.errors import DefenseError

_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED: tuple[type[nn.Module], ...] = (nn.ConvTranspose1d, nn.ConvTranspose2d,
                                            nn.ConvTranspose3d)


class SpectralNormalization(Defense):
    """Spectral normalisation (Miyato et al., 2018) of every Linear and convolution layer.

    Args:
        n_power_iterations: power-iteration steps per training forward pass that refine the
            estimate of each weight's largest singular value (default 1, as in the paper; an
            integer >= 1).

    The model is changed in place (its Linear and Conv layers become parametrised, so their
    ``state_dict`` keys become ``...parametrizations.weight.original``) and returned. Use
    `robustbench_lite.defenses.certify` to turn the trained network's true Lipschitz bound
    into certified L2 radii.
    """

    name = "spectral-norm"

    def __init__(self, *, n_power_iterations: int = 1) -> None:
        if (isinstance(n_power_iterations, bool) or not isinstance(n_power_iterations, int)
                or n_power_iterations < 1):
            raise DefenseError(f"spectral-norm needs n_power_iterations to be an integer "
                               f">= 1, got {n_power_iterations!r}")
        self.n_power_iterations = n_power_iterations
        self._set_params(n_power_iterations=n_power_iterations)

    def transform_model(self, module: nn.Module) -> nn.Module:
        """``module`` with spectral normalisation on the weight of every Linear, Conv and
        ConvTranspose layer it contains (itself included); `DefenseError` if it has none."""
        layers = [m for m in module.modules() if isinstance(m, _LAYERS + _TRANSPOSED)]
        if not layers:
            raise DefenseError(f"spectral-norm found no Linear or Conv layer in "
                               f"{type(module).__name__}; nothing to normalise")
        for layer in layers:
            # Transposed convolutions keep their output channels in dimension 1.
            dim = 1 if isinstance(layer, _TRANSPOSED) else None
            spectral_norm(layer, n_power_iterations=self.n_power_iterations, dim=dim)
        return module
