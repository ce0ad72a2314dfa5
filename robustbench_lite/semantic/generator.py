"""The `StyleGenerator` interface: a style-based generator as the semantic attack and the
RandMix/AdvMix defenses use it (Gowal et al., CVPR 2020).

Vocabulary, after StyleGAN: the mapping network turns a latent ``z`` (``(N, z_dim)``) into a
style ``w`` (``(N, style_dim)``); the synthesis network takes one style per layer
(``(N, num_layers, style_dim)``, "styles") and returns images in [0, 1]. The layers split into
``coarse_layers`` (label-relevant, the paper's z-parallel) and ``fine_layers``
(label-irrelevant, z-perpendicular); together they partition ``range(num_layers)``.
``encode`` inverts synthesis: images to styles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from robustbench_lite.errors import GeneratorError


class StyleGenerator(ABC):
    """A style-based generator as the semantic attack and RandMix/AdvMix use it.

    Contract of every method: tensors may live on any device the generator was moved to
    with `to`; outputs are on that device. `map`, `synthesise` and the helpers are
    differentiable with respect to their tensor inputs while the generator's own parameters
    stay frozen (callers differentiate with respect to ``z`` or styles only). A subclass
    registered through ``register_generators`` sets ``name`` and implements `load`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    z_dim: int
    style_dim: int
    num_layers: int
    coarse_layers: tuple[int, ...]
    fine_layers: tuple[int, ...]
    image_shape: tuple[int, int, int]

    @classmethod
    def load(cls, path: Path | None) -> StyleGenerator:
        """Open a saved generator of this kind; ``None`` opens its bundled default.

        Raises `GeneratorError` naming the problem and the fix. The base class has no file
        format: such generators are constructed in Python.
        """
        raise GeneratorError(f"generator {getattr(cls, 'name', cls.__name__)!r} cannot be "
                             "opened from a file; construct it in Python")

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the generator's parameters live; `sample_styles` draws ``z`` for here."""

    @abstractmethod
    def map(self, z: Tensor) -> Tensor:
        """The mapping network: ``(N, z_dim)`` to ``(N, style_dim)``; differentiable in z."""

    @abstractmethod
    def synthesise(self, styles: Tensor) -> Tensor:
        """``(N, num_layers, style_dim)`` styles to images ``(N, *image_shape)`` in [0, 1];
        differentiable in ``styles``."""

    @abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """Images ``(N, *image_shape)`` in [0, 1] to styles ``(N, num_layers, style_dim)``
        whose synthesis reconstructs them."""

    @abstractmethod
    def to(self, device: torch.device | str) -> StyleGenerator:
        """Move the parameters to ``device``; returns ``self``."""

    def broadcast(self, w: Tensor) -> Tensor:
        """``(N, style_dim)`` to ``(N, num_layers, style_dim)``: the same style at every
        layer."""
        if w.dim() != 2 or w.shape[1] != self.style_dim:
            raise GeneratorError(f"a style batch must be (N, {self.style_dim}), got "
                                 f"{tuple(w.shape)}")
        return w[:, None, :].expand(-1, self.num_layers, -1)

    def mix(self, coarse_from: Tensor, fine_from: Tensor) -> Tensor:
        """Styles taking the coarse layers from ``coarse_from`` and the fine layers from
        ``fine_from`` (both ``(N, num_layers, style_dim)``, or broadcastable in N)."""
        expected = (self.num_layers, self.style_dim)
        for what, styles in (("coarse_from", coarse_from), ("fine_from", fine_from)):
            if styles.dim() != 3 or tuple(styles.shape[1:]) != expected:
                raise GeneratorError(f"{what} must be (N, {expected[0]}, {expected[1]}) "
                                     f"styles, got {tuple(styles.shape)}")
        mask = torch.zeros(self.num_layers, 1, dtype=torch.bool, device=coarse_from.device)
        mask[list(self.fine_layers)] = True
        return torch.where(mask, fine_from, coarse_from)

    def sample_styles(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` random styles ``broadcast(map(z))``, ``z ~ N(0, I)`` drawn with
        ``generator`` (on its device, then moved to the generator's)."""
        z = torch.randn((n, self.z_dim), generator=generator, device=generator.device)
        return self.broadcast(self.map(z.to(self.device)))

    def check_layers(self) -> None:
        """Raise `GeneratorError` unless the layer split partitions ``range(num_layers)``."""
        layers = sorted((*self.coarse_layers, *self.fine_layers))
        if layers != list(range(self.num_layers)):
            raise GeneratorError(f"generator {getattr(self, 'name', type(self).__name__)!r}: "
                                 f"coarse layers {self.coarse_layers} and fine layers "
                                 f"{self.fine_layers} must partition 0..{self.num_layers - 1}")
