"""The settings of a GAN training run: `GanTrainingConfig` (the plain training) and
`AdversarialConfig` (discriminator adversarial training, D-AT); how they are used:
`robustbench_lite.gan.training`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from robustbench_lite.errors import GanError, ThreatModelError
from robustbench_lite.threat import Norm

#: Where D-AT's adversarial examples come from.
SPACES = ("latent-z", "latent-w", "pixel")


@dataclass(frozen=True)
class GanTrainingConfig:
    """Hyperparameters of a GAN training run (the defaults made the bundled digits GAN).
    ``quality_samples`` generated images are compared with the test images after each
    epoch (FD, KID)."""

    epochs: int = 120
    batch_size: int = 64
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.5
    d_steps: int = 1
    label_smoothing: float = 0.0
    ema_decay: float = 0.99
    seed: int = 0
    quality_samples: int = 1000

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "d_steps", "quality_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanError(f"`{name}` must be a whole number >= 1, got {value!r}")
        for name in ("lr_g", "lr_d"):
            if not 0 < getattr(self, name) < math.inf:
                raise GanError(f"`{name}` must be a positive number, got {getattr(self, name)}")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise GanError(f"`betas` must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.r1_gamma < math.inf:
            raise GanError(f"`r1_gamma` must be a number >= 0, got {self.r1_gamma}")
        if not 0 <= self.label_smoothing < 1:
            raise GanError(f"`label_smoothing` must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.ema_decay < 1:
            raise GanError(f"`ema_decay` must be in [0, 1), got {self.ema_decay}")

    def as_metadata(self) -> dict[str, str]:
        return {f"train_{key}": str(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class AdversarialConfig:
    """Discriminator adversarial training (see `robustbench_lite.gan.training`). ``z_eps`` and
    ``w_eps`` are in prior standard deviations, ``pixel_eps`` in [0, 1] units; PGD takes
    ``steps`` steps of ``2.5 * eps / steps`` in ``norm``."""

    spaces: tuple[str, ...] = ("latent-z", "latent-w")
    mix: float = 1.0
    z_eps: float = 0.75
    w_eps: float = 0.5
    pixel_eps: float = 0.05
    norm: str = "linf"
    steps: int = 5
    curriculum_epochs: int = 2
    train_generator: bool = False

    def __post_init__(self) -> None:
        unknown = [space for space in self.spaces if space not in SPACES]
        if unknown or not self.spaces or len(set(self.spaces)) != len(self.spaces):
            raise GanError(f"`spaces` must be distinct names from {', '.join(SPACES)}, got "
                           f"{list(self.spaces)}")
        if not 0 < self.mix <= 1:
            raise GanError(f"`mix` must be in (0, 1], got {self.mix}")
        for name in ("z_eps", "w_eps", "pixel_eps"):
            if not 0 <= getattr(self, name) < math.inf:
                raise GanError(f"`{name}` must be a number >= 0, got {getattr(self, name)}")
        if self.steps < 1 or self.curriculum_epochs < 0:
            raise GanError(f"`steps` must be >= 1 and `curriculum_epochs` >= 0, got "
                           f"{self.steps} and {self.curriculum_epochs}")
        try:
            lp = Norm.parse(self.norm).is_lp
        except ThreatModelError:
            lp = False
        if not lp:
            raise GanError(f"`norm` must be linf, l2 or l1, got {self.norm!r}")

    def ramp(self, epoch: int) -> float:
        """The fraction of the final eps used in ``epoch`` (0-based)."""
        if self.curriculum_epochs == 0:
            return 1.0
        return min(1.0, (epoch + 1) / self.curriculum_epochs)
