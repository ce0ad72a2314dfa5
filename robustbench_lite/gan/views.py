"""The views of a GAN audit: for each objective, what the engine attacks and on which data.

A view is a `RobustModel` from the attacked input to D's realness logit ``(N, 1)`` with the
data it is evaluated on (labels: the decision D must keep) and its threat models:

- latent views (``latent-z-*``, ``latent-w-*``): the input is a latent ``u`` shaped
  ``(N, d, 1, 1)`` in *prior standard deviations*: z itself (z ~ N(0, I)), or
  ``(w - mean_w) / std_w`` per coordinate, with w's mean and spread measured on the mapping
  network's outputs (`GanPair.latent_spread`). The model computes D(G(z)) or
  D(synthesis(w)); eps bounds the change of ``u``; there is no box, latents are unbounded.
- pixel views (``pixel-*``): the input is an image in [0, 1]; the model is D itself.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import DatasetError
from robustbench_lite.gan.pair import GanPair, mapping_of, synthesis_of
from robustbench_lite.gan.task import (
    DECISIONS,
    KEEP_FAKE,
    KEEP_REAL,
    LatentWFoolD,
    LatentWRejected,
    LatentZFoolD,
    LatentZRejected,
    PixelFakeAccepted,
    PixelRealRejected,
)
from robustbench_lite.models.robust_model import LoadInfo, RobustModel
from robustbench_lite.threat import Norm, ThreatModel

#: The data family of every view (no classification eps defaults apply).
FAMILY = "gan"


@dataclass(frozen=True)
class LatentData(EvalData):
    """`EvalData` whose "images" are latents ``(N, d, 1, 1)`` in prior standard deviations:
    finite, unbounded."""

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or len(self.x) != len(self.y) or len(self.x) == 0:
            raise DatasetError(f"{self.name!r}: latents must be a non-empty (N, d, 1, 1) "
                               "batch with one label each")
        if not torch.isfinite(self.x).all():
            raise DatasetError(f"{self.name!r}: latents must be finite")

    def take(self, indices: Tensor, name: str) -> EvalData:
        return LatentData(self.x[indices], self.y[indices], self.class_names, name,
                          self.family, self.source)

    def subset(self, limit: int | None) -> EvalData:
        if limit is None or limit >= len(self.x):
            return self
        return LatentData(self.x[:limit], self.y[:limit], self.class_names, self.name,
                          self.family, self.source)


class LatentToRealness(nn.Module):
    """``u (N, d, 1, 1)`` in prior std units to D(G(.)) ``(N, 1)``: ``space`` ``z`` feeds
    ``u`` to G; ``w`` feeds ``mean + std * u`` to G's synthesis network."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, space: str,
                 mean: Tensor | None = None, std: Tensor | None = None) -> None:
        super().__init__()
        self.generator, self.discriminator, self.space = generator, discriminator, space
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", mean if mean is not None else torch.zeros(0))
        self.register_buffer("std", std if std is not None else torch.zeros(0))

    def images(self, u: Tensor) -> Tensor:
        latent = u.flatten(1)
        if self.space == "z":
            out: Tensor = self.generator(latent)
            return out
        w = self.mean + self.std * latent
        return synthesis_of(self.generator)(w)

    def forward(self, u: Tensor) -> Tensor:
        logits: Tensor = self.discriminator(self.images(u))
        return logits.reshape(len(u), 1)


class Realness(nn.Module):
    """Images to D's logit ``(N, 1)``."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.discriminator(x)
        return logits.reshape(len(x), 1)


@dataclass
class View:
    """One objective of a GAN audit: the model the engine attacks, its data and threats."""

    objective: str
    space: str  # z, w or pixel
    model: RobustModel
    data: EvalData
    threats: list[ThreatModel]

    @property
    def latent(self) -> bool:
        return self.space != "pixel"


@dataclass(frozen=True)
class ViewPlan:
    """Which views to build and their eps: ``latent`` per norm in prior standard
    deviations, ``pixel`` per norm in [0, 1] pixel units."""

    latent: dict[Norm, tuple[float, ...]]
    pixel: dict[Norm, tuple[float, ...]]
    samples: int
    reverse: bool = True  # also the latent-*-rejected views


def latent_threats(eps: dict[Norm, tuple[float, ...]]) -> list[ThreatModel]:
    """Unboxed threat models in latent space."""
    return [ThreatModel(norm, value, lower=-math.inf, upper=math.inf)
            for norm, values in eps.items() for value in values]


def pixel_threats(eps: dict[Norm, tuple[float, ...]]) -> list[ThreatModel]:
    return [ThreatModel(norm, value) for norm, values in eps.items() for value in values]


def frozen(module: nn.Module) -> nn.Module:
    """A frozen copy in evaluation mode (the audit never changes the user's modules)."""
    if isinstance(module, torch.jit.ScriptModule):  # copied through its own format
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        buffer.seek(0)
        device = next(iter(module.parameters()), torch.zeros(0)).device
        copied: nn.Module = torch.jit.load(buffer, map_location=device)  # type: ignore[no-untyped-call]
    else:
        copied = copy.deepcopy(module)
    for parameter in copied.parameters():  # TorchScript modules lack requires_grad_()
        parameter.requires_grad_(False)
    return copied.eval()


def _model(module: nn.Module, pair: GanPair, objective: str, shape: tuple[int, ...]
           ) -> RobustModel:
    digest = hashlib.sha256(f"{pair.sha256}:{objective}".encode()).hexdigest()
    return RobustModel(module, shape, 1, f"{pair.name} ({objective})", digest,
                       LoadInfo(pair.format, architecture="gan", notes=(objective,),
                                computation=(("gan-view", objective),)),
                       task="gan").to(pair.device)


def build_views(pair: GanPair, real: EvalData, plan: ViewPlan, seed: int) -> list[View]:
    """The views of ``pair``: latent ones on ``plan.samples`` latents drawn with ``seed``,
    pixel ones on ``real`` (the first ``plan.samples`` held-out real images) and on G's
    images of those latents. Labels say which decision D must keep."""
    generator, discriminator = frozen(pair.generator), frozen(pair.discriminator)
    z, fakes = pair.sample(plan.samples, seed)
    keep_fake = torch.full((len(z),), KEEP_FAKE, dtype=torch.int64)
    views: list[View] = []
    latent = latent_threats(plan.latent)
    spaces: list[tuple[str, tuple[Tensor, Tensor] | None]] = [("z", None)]
    if pair.has_mapping:
        spaces.append(("w", pair.latent_spread(seed)))
    for space, spread in spaces:
        module = LatentToRealness(generator, discriminator, space,
                                  *(spread if spread is not None else (None, None)))
        u = z if spread is None else _standardised(pair, z, spread)
        shape = (u.shape[1], 1, 1)
        fool, reject = (LatentZFoolD, LatentZRejected) if space == "z" else (
            LatentWFoolD, LatentWRejected)
        data = LatentData(u[:, :, None, None].contiguous(), keep_fake, DECISIONS,
                          f"{plan.samples} latents ({space}, seed {seed})", FAMILY,
                          f"N(0, I) draws, seed {seed}")
        views.append(View(fool.name, space, _model(module, pair, fool.name, shape), data,
                          latent))
        if plan.reverse:  # G's side: its samples should stay accepted
            keep_real = torch.full_like(keep_fake, KEEP_REAL)
            views.append(View(reject.name, space, _model(module, pair, reject.name, shape),
                              LatentData(data.x, keep_real, DECISIONS, data.name, FAMILY,
                                         data.source), latent))
    pixel = pixel_threats(plan.pixel)
    d_only = Realness(discriminator)
    reals = real.subset(plan.samples)
    real_view = EvalData(reals.x, torch.full((len(reals.x),), KEEP_REAL, dtype=torch.int64),
                         DECISIONS, f"{reals.name} (real, held out)", FAMILY, reals.source)
    fake_view = EvalData(fakes, keep_fake, DECISIONS, f"{plan.samples} generated images "
                         f"(seed {seed})", FAMILY, "G(z)")
    image_shape = tuple(fakes.shape[1:])
    views.append(View(PixelRealRejected.name, "pixel",
                      _model(d_only, pair, PixelRealRejected.name, image_shape), real_view, pixel))
    views.append(View(PixelFakeAccepted.name, "pixel",
                      _model(d_only, pair, PixelFakeAccepted.name, image_shape), fake_view, pixel))
    return views


@torch.no_grad()
def _standardised(pair: GanPair, z: Tensor, spread: tuple[Tensor, Tensor]) -> Tensor:
    mean, std = spread
    mapping = mapping_of(pair.generator)
    w = torch.cat([mapping(z[i:i + 512].to(pair.device)).cpu() for i in range(0, len(z), 512)])
    return (w - mean) / std
