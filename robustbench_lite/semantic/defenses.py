"""RandMix and AdvMix: training on style mixes of the training images (Gowal et al., CVPR
2020). Both perturb the batch, so either composes with defenses that transform the model
(``spectral-norm``) or own the loss (``label-smoothing``), but not with another perturbing
defense such as ``pgd-at``."""

from __future__ import annotations

import logging

import torch

from robustbench_lite.defenses.base import Defense, DefenseContext, TrainingStep
from robustbench_lite.defenses.checking import check_number, check_steps
from robustbench_lite.errors import DefenseError, RobustbenchError
from robustbench_lite.models.robust_model import file_sha256
from robustbench_lite.semantic.attack import AdvMixAttack
from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.semantic.loading import DEFAULT_GENERATOR, resolve_generator
from robustbench_lite.semantic.mixing import random_mix
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel

logger = logging.getLogger(__name__)


class _StyleMixing(Defense):
    """What RandMix and AdvMix share: the generator, opened in `prepare`."""

    generator_spec: str
    radius: float

    def _init_mixing(self, generator: str, radius: float, **params: object) -> None:
        if not isinstance(generator, str) or not generator:
            raise DefenseError(f"`defense` {self.name}: generator must be a generator name "
                               f"or file, got {generator!r}")
        self.generator_spec = generator
        self.radius = check_number(self.name, "radius", radius, lambda v: v > 0,
                                   "a number > 0")
        self._set_params(generator=generator, radius=self.radius, **params)
        self.styles: StyleGenerator | None = None
        self.generator_sha256 = ""

    def fingerprint(self) -> str:
        """The parameters and, when ``generator`` names a file, its sha256 (read by
        `prepare`)."""
        return f"{self!r} {self.generator_sha256}"

    def prepare(self, context: DefenseContext) -> None:
        try:
            cls, path = resolve_generator(self.generator_spec, context.catalogue)
            styles = cls.load(path)
        except RobustbenchError as exc:
            raise DefenseError(f"`defense` {self.name}: {exc}") from None
        shape = tuple(context.data.x.shape[1:])
        if tuple(styles.image_shape) != shape:
            raise DefenseError(f"`defense` {self.name}: the generator makes "
                               f"{styles.image_shape} images but the training data is {shape}; "
                               f"give one trained on this data ({self.name}:generator=FILE)")
        self.styles = styles.to(context.device)
        self.generator_sha256 = file_sha256(path) if path is not None else ""
        logger.info("%s with generator %s", self.name, styles.name)

    def _generator(self) -> StyleGenerator:
        if self.styles is None:
            raise DefenseError(f"`defense` {self.name} was not prepared; call "
                               "Recipe.prepare() before training")
        return self.styles


class RandMix(_StyleMixing):
    """RandMix (``randmix``): train on random style mixes.

    Gowal et al., CVPR 2020 (the data-augmentation baseline of AdvMix). Every training image
    is replaced by ``dec(enc(x)_coarse, map(z)_fine)`` with ``z ~ N(0, I)`` clipped to
    ``[-radius, radius]``: the same digit (its coarse styles) in a random style. The loss is
    the cross-entropy of the mixed batch (or another defense's loss on it).

    Args:
        generator: the style generator (default ``colour-digits``, the bundled one), a
            ``NAME:PATH`` spec or a file written by ``robust train-generator``.
        radius: box on the latent z, in prior standard deviations, > 0 (default 2).

    Cost per step: one encoding and one synthesis of the batch, then plain training.
    """

    name = "randmix"

    def __init__(self, *, generator: str = DEFAULT_GENERATOR, radius: float = 2.0) -> None:
        self._init_mixing(generator, radius)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        return random_mix(self._generator(), step.x, step.generator, self.radius)


class AdvMix(_StyleMixing):
    """AdvMix (``advmix``): train on the worst-case style mixes.

    Gowal et al., CVPR 2020, Algorithm 2 inside training: every training image is replaced
    by the mix of its coarse styles with the fine styles ``map(z)`` that the model being
    trained classifies worst, ``z`` searched in ``[-radius, radius]`` by ``steps`` signed
    gradient steps from ``restarts`` random draws (the ``advmix`` attack). The loss is the
    cross-entropy of the mixed batch (or another defense's loss on it).

    Args:
        generator: the style generator (default ``colour-digits``), as for ``randmix``.
        radius: box on the latent z, in prior standard deviations, > 0 (default 2).
        steps: ascent steps, an integer >= 1 (default 5).
        restarts: random draws, an integer >= 1 (default 1).

    Cost per step: ``restarts * steps`` forward and backward passes of the model and the
    generator, then plain training.
    """

    name = "advmix"

    def __init__(self, *, generator: str = DEFAULT_GENERATOR, radius: float = 2.0,
                 steps: int = 5, restarts: int = 1) -> None:
        self.steps = check_steps(self.name, steps)
        self.restarts = check_steps(self.name, restarts, "restarts")
        self._init_mixing(generator, radius, steps=self.steps, restarts=self.restarts)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        attack = AdvMixAttack(steps=self.steps, restarts=self.restarts)
        return attack.use_generator(self._generator()).run(
            step.model, step.x, Misclassification(step.y),
            ThreatModel(Norm.SEMANTIC, self.radius), step.generator)
