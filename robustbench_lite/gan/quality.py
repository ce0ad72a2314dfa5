"""How good is a GAN's generator, and how well does its discriminator separate?

- Fréchet distance (Heusel et al. 2017) and kernel distance (KID, Bińkowski et al. 2018)
  between features of real and generated images. The features are the penultimate layer of
  a classifier trained on the data: for 8x8 digits the bundled ``digits-cnn`` (128-d). The
  numbers are in that network's feature space, so they compare generators on the same
  data, never with published FID/KID (which use Inception features of large images).
- The discriminator's accuracy on real and generated images, deciding "real" iff its logit
  is positive.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import linalg
from torch import Tensor, nn

from robustbench_lite.errors import GanError
from robustbench_lite.gan.adversary import evaluating
from robustbench_lite.gan.networks import IMAGE_SHAPE
from robustbench_lite.gan.pair import GanPair

Array = NDArray[np.float64]

DIGITS_FEATURES = "digits-cnn penultimate layer (128-d)"


class FeatureExtractor:
    """A frozen classifier whose last `nn.Linear`'s input is the feature vector."""

    def __init__(self, module: nn.Module, name: str, batch_size: int = 512) -> None:
        linears = [sub for sub in module.modules() if isinstance(sub, nn.Linear)]
        if not linears:
            raise GanError(f"feature extractor {name!r} has no nn.Linear layer to take "
                           "features from; pass a classifier ending in one")
        self.module = module.eval().requires_grad_(False)
        self.name = name
        self.batch_size = batch_size
        self._last = linears[-1]

    @torch.no_grad()
    def features(self, x: Tensor) -> Array:
        """``(N, d)`` float64: the input of the last linear layer for each image."""
        captured: list[Tensor] = []

        def hook(_: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            captured.append(inputs[0].detach().flatten(1).cpu())

        device = next(self.module.parameters()).device
        handle = self._last.register_forward_pre_hook(hook)
        try:
            for start in range(0, len(x), self.batch_size):
                self.module(x[start:start + self.batch_size].to(device))
        finally:
            handle.remove()
        if not captured:
            return np.zeros((0, self._last.in_features))
        return torch.cat(captured).double().numpy()


def digits_features() -> FeatureExtractor:
    """The bundled ``digits-cnn``'s penultimate layer (for ``(1, 8, 8)`` images)."""
    from robustbench_lite.semantic.measure import load_shape_classifier

    return FeatureExtractor(load_shape_classifier(), DIGITS_FEATURES)


def default_features(image_shape: tuple[int, ...]) -> FeatureExtractor | None:
    """The feature extractor for images of ``image_shape``: digits-cnn for ``(1, 8, 8)``;
    None (no FD/KID) for other shapes."""
    return digits_features() if tuple(image_shape) == IMAGE_SHAPE else None


def _statistics(features: Array) -> tuple[Array, Array]:
    if features.ndim != 2 or len(features) < 2:
        raise GanError(f"Fréchet distance needs at least 2 feature vectors (N, d), got shape "
                       f"{features.shape}; generate or pass more images")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(a: Array, b: Array) -> float:
    """``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of two feature sets
    ``(N, d)`` (the real part of the matrix square root)."""
    mean_a, cov_a = _statistics(np.asarray(a, dtype=np.float64))
    mean_b, cov_b = _statistics(np.asarray(b, dtype=np.float64))
    with warnings.catch_warnings():  # dead ReLU features make covariances singular
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    trace = np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(root))
    return float(np.square(mean_a - mean_b).sum() + trace)


def _kernel(a: Array, b: Array) -> Array:
    """The polynomial kernel ``(x.y / d + 1)^3`` between the rows of ``a`` and ``b``."""
    kernel: Array = (a @ b.T / a.shape[1] + 1.0) ** 3
    return kernel


def _mmd2(k_aa: Array, k_bb: Array, k_ab: Array) -> float:
    """Unbiased MMD^2 from the kernel matrices within and between two samples."""
    m, n = len(k_aa), len(k_bb)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


def kernel_distance(a: Array, b: Array, *, subsets: int = 50, subset_size: int | None = None,
                    seed: int = 0) -> tuple[float, float]:
    """KID: the mean and standard deviation over ``subsets`` random subsets (without
    replacement, ``subset_size`` from each set; default half the smaller set, at most 1000,
    so that the subsets differ and their spread means something) of the unbiased MMD^2 with
    kernel ``(x.y / d + 1)^3`` between the feature sets."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    size = min(1000, min(len(a), len(b)) // 2) if subset_size is None else subset_size
    if size < 2 or size > min(len(a), len(b)) or subsets < 1:
        raise GanError(f"kernel distance needs 2 <= subset_size <= {min(len(a), len(b))} "
                       f"(the smaller set) and subsets >= 1, got {size} and {subsets}")
    rng = np.random.default_rng(seed)
    k_aa, k_bb, k_ab = _kernel(a, a), _kernel(b, b), _kernel(a, b)
    values = []
    for _ in range(subsets):
        i = rng.choice(len(a), size, replace=False)
        j = rng.choice(len(b), size, replace=False)
        values.append(_mmd2(k_aa[np.ix_(i, i)], k_bb[np.ix_(j, j)], k_ab[np.ix_(i, j)]))
    return float(np.mean(values)), float(np.std(values))


@torch.no_grad()
def discriminator_accuracy(pair: GanPair, real: Tensor, fake: Tensor,
                           batch_size: int = 512) -> tuple[float, float, float]:
    """(overall, on real, on fake) accuracy of D, deciding "real" iff its logit > 0."""
    def logits(images: Tensor) -> Tensor:
        return torch.cat([pair.realness(images[i:i + batch_size].to(pair.device)).cpu()
                          for i in range(0, len(images), batch_size)] or [torch.zeros(0)])

    on_real = int((logits(real) > 0).sum())
    on_fake = int((logits(fake) <= 0).sum())
    return ((on_real + on_fake) / max(len(real) + len(fake), 1), on_real / max(len(real), 1),
            on_fake / max(len(fake), 1))


@dataclass(frozen=True)
class GanQuality:
    """What `measure_quality` found: FD and KID (mean, std) between the feature sets of
    ``real_samples`` real and ``generated_samples`` generated images, and D's accuracy."""

    fd: float
    kid: float
    kid_std: float
    d_accuracy: float
    d_real_accuracy: float
    d_fake_accuracy: float
    feature_extractor: str
    real_samples: int
    generated_samples: int

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def measure_quality(pair: GanPair, real: Tensor, *, generated: int, seed: int,
                    features: FeatureExtractor) -> GanQuality:
    """FD, KID and D's accuracy of ``pair`` against the images ``real``, with ``generated``
    samples drawn by ``pair.sample(generated, seed)``."""
    with evaluating(pair.generator, pair.discriminator):
        _, fake = pair.sample(generated, seed)
        real_features, fake_features = features.features(real), features.features(fake)
        kid, kid_std = kernel_distance(real_features, fake_features, seed=seed)
        overall, on_real, on_fake = discriminator_accuracy(pair, real, fake)
    return GanQuality(frechet_distance(real_features, fake_features), kid, kid_std, overall,
                      on_real, on_fake, features.name, len(real), len(fake))
