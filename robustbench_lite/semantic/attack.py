"""The semantic attack (``advmix``): the worst-case style mix of each image."""

from __future__ import annotations

import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.errors import AttackError
from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.semantic.loading import DEFAULT_GENERATOR
from robustbench_lite.semantic.mixing import worst_mix
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel


def open_generator(spec: str) -> StyleGenerator:
    """The generator ``spec`` names (`load_generator`), through the default plugins."""
    # imported here: the plugin host imports the built-in attacks, which import this module
    from robustbench_lite.catalogue import catalogue_for
    from robustbench_lite.plugin_host import default_plugin_manager
    from robustbench_lite.semantic.loading import load_generator

    return load_generator(spec, catalogue_for(default_plugin_manager()))


class AdvMixAttack(Attack):
    """Semantic attack by adversarial style mixing (``advmix``), semantic threat model only.

    Gowal et al., "Achieving Robustness in the Wild via Adversarial Mixing with Disentangled
    Representations", CVPR 2020, Algorithm 2. Each image is encoded into styles; its coarse,
    label-relevant styles are kept and its fine, label-irrelevant ones (colour, lighting)
    are replaced by ``map(z)``, with ``z`` searched in the box ``[-eps, eps]^z_dim`` (eps of
    the ``semantic`` threat model, in prior standard deviations) by signed gradient ascent
    on the objective's loss (for classification: the cross-entropy of the true class), from
    ``restarts`` random draws. It returns the first mix that reaches the objective, else
    the highest-loss one. The example is a new image, not ``x`` plus a small
    perturbation: the threat model is "the same digit in another style", as far as the
    generator's split into coarse and fine styles holds (docs/semantic.md measures it).

    Args:
        generator: the style generator (`load_generator` spec): a registered name (default
            ``colour-digits``, the bundled one), ``NAME:PATH`` or a file written by
            ``robust train-generator``. It must produce images of the audited data's shape.
        steps: ascent steps per restart, an integer >= 0 (default 20).
        restarts: random restarts, an integer >= 1 (default 3); samples whose objective is
            reached already are kept.
        step_ratio: each step moves z by ``step_ratio * eps / steps`` per coordinate, > 0
            (default 2.5).

    Cost: ``restarts * (steps + 1)`` forward and ``restarts * steps`` backward passes of the
    model per sample, plus the generator's.
    """

    name = "advmix"
    norms = frozenset({Norm.SEMANTIC})
    kind = AttackKind.GRADIENT

    def __init__(self, *, generator: str = DEFAULT_GENERATOR, steps: int = 20,
                 restarts: int = 3, step_ratio: float = 2.5) -> None:
        for label, value, least in (("steps", steps, 0), ("restarts", restarts, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise AttackError(f"advmix: {label} must be an integer >= {least}, "
                                  f"got {value!r}")
        if not isinstance(step_ratio, int | float) or not step_ratio > 0:
            raise AttackError(f"advmix: step_ratio must be a number > 0, got {step_ratio!r}")
        if not isinstance(generator, str) or not generator:
            raise AttackError(f"advmix: generator must be a generator name or file, got "
                              f"{generator!r}")
        self.generator_spec, self.steps, self.restarts = generator, steps, restarts
        self.step_ratio = float(step_ratio)
        self._set_params(generator=generator, steps=steps, restarts=restarts,
                         step_ratio=self.step_ratio)
        self._generator: StyleGenerator | None = None

    def use_generator(self, styles: StyleGenerator) -> AdvMixAttack:
        """Attack with ``styles`` (a generator built in Python) instead of opening the
        ``generator`` spec; returns ``self``."""
        self._generator = styles
        return self

    def style_generator(self, device: torch.device) -> StyleGenerator:
        """The generator, opened on first use and moved to ``device``."""
        if self._generator is None:
            self._generator = open_generator(self.generator_spec)
        if self._generator.device != device:
            self._generator.to(device)
        return self._generator

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        if threat.norm is not Norm.SEMANTIC:
            raise AttackError(f"advmix attacks the semantic threat model, not "
                              f"{threat.norm.value}")
        styles = self.style_generator(x.device)
        if tuple(x.shape[1:]) != tuple(styles.image_shape):
            raise AttackError(f"advmix: the generator makes {styles.image_shape} images but "
                              f"the data is {tuple(x.shape[1:])}; give a generator trained "
                              "on this data (advmix:generator=FILE)")
        step_size = self.step_ratio * threat.eps / max(self.steps, 1)
        return worst_mix(styles, model, x, objective, threat.eps, self.steps, self.restarts,
                         step_size, generator)
