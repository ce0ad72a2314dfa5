"""`WrappedStyleGenerator`: any style-based generator given as callables, e.g. a real
StyleGAN2 checkpoint loaded by the user's own code (nothing is downloaded here).

Example, with NVIDIA's ``stylegan2-ada-pytorch`` networks (``G.mapping``, ``G.synthesis``)::

    G = load_my_stylegan2(...)          # your code, your weights
    generator = WrappedStyleGenerator(
        mapping=lambda z: G.mapping(z, None)[:, 0],       # (N, z_dim) -> (N, w_dim)
        synthesis=lambda ws: (G.synthesis(ws) + 1) / 2,  # [-1, 1] -> [0, 1]
        encoder=my_encoder,              # images -> (N, G.num_ws, w_dim), e.g. an e4e model;
                                         # or None: latent optimisation (semantic.inversion)
        features=my_small_classifier,    # for the inversion's feature and mixing terms
        z_dim=G.z_dim, style_dim=G.w_dim, num_layers=G.num_ws,
        coarse_layers=tuple(range(8)), fine_layers=tuple(range(8, G.num_ws)),
        image_shape=(3, G.img_resolution, G.img_resolution),
        modules=[G, my_encoder],         # moved by .to() and frozen
    )
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from robustbench_lite.errors import GeneratorError
from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.semantic.inversion import Features, InversionSettings, invert


class WrappedStyleGenerator(StyleGenerator):
    """A `StyleGenerator` from user-supplied callables.

    ``mapping``: ``(N, z_dim) -> (N, style_dim)``; ``synthesis``:
    ``(N, num_layers, style_dim) -> (N, *image_shape)`` in [0, 1] (rescale a [-1, 1] output
    yourself); ``encoder``: images to ``(N, num_layers, style_dim)``, or None to encode by
    latent optimisation (`robustbench_lite.semantic.inversion.invert` with ``features`` and
    ``inversion``, default `InversionSettings()`). All must be differentiable in their
    inputs. ``modules`` (the networks behind the callables) are frozen
    (``requires_grad_(False)``, ``eval()``) and moved by `to`. Outputs are checked for shape.
    """

    name = "wrapped"
    description = "user-supplied mapping, synthesis and encoder callables"

    def __init__(self, *, mapping: Callable[[Tensor], Tensor],
                 synthesis: Callable[[Tensor], Tensor],
                 encoder: Callable[[Tensor], Tensor] | None, z_dim: int, style_dim: int,
                 num_layers: int, coarse_layers: Iterable[int],
                 fine_layers: Iterable[int], image_shape: tuple[int, int, int],
                 modules: Iterable[nn.Module] = (),
                 device: torch.device | str = "cpu", features: Features | None = None,
                 inversion: InversionSettings | None = None) -> None:
        self._mapping = mapping
        self._synthesis = synthesis
        self._encoder = encoder
        self._features = features
        self._inversion = inversion or InversionSettings()
        self.z_dim = z_dim
        self.style_dim = style_dim
        self.num_layers = num_layers
        self.coarse_layers = tuple(coarse_layers)
        self.fine_layers = tuple(fine_layers)
        self.image_shape = image_shape
        self.modules = [module.eval().requires_grad_(False) for module in modules]
        self._device = torch.device(device)
        self.check_layers()

    @property
    def device(self) -> torch.device:
        return self._device

    def _checked(self, what: str, out: Tensor, shape: tuple[int, ...]) -> Tensor:
        if not isinstance(out, Tensor) or tuple(out.shape[1:]) != shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise GeneratorError(f"the wrapped {what} returned {got}, expected (N, "
                                 f"{', '.join(map(str, shape))}); fix the callable")
        return out

    def map(self, z: Tensor) -> Tensor:
        return self._checked("mapping", self._mapping(z), (self.style_dim,))

    def synthesise(self, styles: Tensor) -> Tensor:
        return self._checked("synthesis", self._synthesis(styles), self.image_shape)

    def encode(self, x: Tensor) -> Tensor:
        if self._encoder is None:
            return invert(self, x, self._features, self._inversion)
        return self._checked("encoder", self._encoder(x), (self.num_layers, self.style_dim))

    def to(self, device: torch.device | str) -> WrappedStyleGenerator:
        for module in self.modules:
            module.to(device)
        self._device = torch.device(device)
        return self
