"""Standard eps budgets by data family, and the built-in threat-matrix presets.

Standard budgets (`STANDARD_EPS`), pixels in [0, 1]:

- ``cifar10``, ``cifar100``: Linf 8/255 and L2 0.5, the budgets of RobustBench's CIFAR-10
  and CIFAR-100 leaderboards (Croce et al., NeurIPS 2021 Datasets and Benchmarks).
- ``imagenet``: Linf 4/255, RobustBench's ImageNet leaderboard. RobustBench has no ImageNet
  L2 track; L2 3.0 is the largest budget of the widely used L2-robust ImageNet models
  (Engstrom et al.'s ``robustness`` library; Salman et al., NeurIPS 2020), so a model trained
  at the usual L2 budgets is audited up to what it was trained for and, with the 2x grid
  point, beyond it.
- ``mnist``: Linf 0.3, the budget of Madry et al. (ICLR 2018) and their MNIST challenge; L2
  2.0, a usual MNIST L2 budget in the literature (e.g. Croce & Hein's MNIST L2
  evaluations). RobustBench has no MNIST track.
- ``digits`` (scikit-learn's 8x8 digits, 16 grey levels scaled to [0, 1]): this project's
  choice. Linf 0.1 is 1.6 grey levels of 16: visible, never enough to redraw a digit. L2 1.0
  is the L2 size of a Linf 0.125 change spread over all 64 pixels (1/sqrt(64)), the same
  order as the Linf budget.
- ``colour-digits`` (the digits coloured, `robustbench_lite.data.colour_digits`): digits's Lp
  budgets, plus the ``semantic`` threat model at radius 2: the fine styles' latent z within
  two prior standard deviations per coordinate (about 95% of the prior's mass in each).
- ``generic`` (natural images of unknown origin): cifar10's. `standard_eps` falls back to it
  for any family not listed.

Presets (`MatrixPreset`; ``build(family)`` scales every eps by the family's standard):

- ``quick``: ``fgsm`` and ``pgd`` at Linf standard/2 and standard: a first look, well under
  a minute on a CPU (1.3 s for the default model on the 450 digits, measured as below).
- ``standard`` (the audit default): Linf and L2 at standard/2, standard and 2x standard;
  attacks ``fgsm`` (Linf only: the engine skips it at L2), ``fgm`` (L2 only),
  ``pgd:steps=50,restarts=2``, ``apgd-ce``, ``apgd-t:n_target_classes=3``,
  ``square:n_queries=1000``, ``deepfool`` (minimum norm) and ``noise`` (a baseline).
  Measured on the default model (``digits-cnn``, the 450 digits test images, batch size
  128, seed 0, torch with one thread on a 2-core CPU shared with other work), through
  ``engine.audit.run_audit``: with every attack at its defaults it took 616 s, of which
  Square (5000 queries) 438 s and APGD-T (9 target classes) 134 s, on the samples a weak
  budget leaves robust. Two cuts bring it to 170 s (2 min 50 s):

  - ``apgd-t:n_target_classes=3``: the three most likely wrong classes. Croce & Hein's
    AutoAttack uses 9 on CIFAR-10; on the default model the top 3 hold nearly every
    success (worst case at Linf 0.1: 59.11% instead of 58.89%, one sample of 450).
  - ``square:n_queries=1000``: Square is here as the black-box check against gradient
    masking, which shows as Square beating the gradient attacks by a wide margin. Its own
    accuracy with 1000 queries is within 3 points of 5000 on the default model (Linf 0.1:
    60.00% vs 60.89%; L2 0.5: 70.00% vs 67.11%), far below such a margin.

  Worst cases with both cuts versus every attack at its defaults: Linf 0.05 / 0.1 / 0.2:
  91.33 / 59.11 / 0.67% vs 91.33 / 58.89 / 0.44%; L2 0.5 / 1.0 / 2.0: 57.33 / 0.67 / 0%
  vs 57.33 / 0.44 / 0% (clean 98.22%). For full strength, write the matrix out
  (``robust matrix show standard --toml``), drop the two parameters and pass the file.
- ``autoattack``: ``autoattack`` at the standard Linf and L2 eps.

A family with a standard ``semantic`` radius (``colour-digits``) also gets the ``advmix``
attack at that radius in ``quick`` and ``standard``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from robustbench_lite.matrix.core import MatrixPreset, ThreatMatrix
from robustbench_lite.threat import Norm, ThreatModel

GENERIC_FAMILY = "generic"
#: The family of a GAN's latent inputs (z, or standardised w).
LATENT_FAMILY = "gan-latent"

_CIFAR = {Norm.LINF: 8 / 255, Norm.L2: 0.5}

#: Standard eps per data family and norm; see the module docstring for their sources.
STANDARD_EPS: dict[str, dict[Norm, float]] = {
    "cifar10": dict(_CIFAR),
    "cifar100": dict(_CIFAR),
    "imagenet": {Norm.LINF: 4 / 255, Norm.L2: 3.0},
    "mnist": {Norm.LINF: 0.3, Norm.L2: 2.0},
    "digits": {Norm.LINF: 0.1, Norm.L2: 1.0},
    "colour-digits": {Norm.LINF: 0.1, Norm.L2: 1.0, Norm.SEMANTIC: 2.0},
    GENERIC_FAMILY: dict(_CIFAR),
    # A GAN's latent space, in prior standard deviations per coordinate (docs/gan.md).
    LATENT_FAMILY: {Norm.LINF: 0.25, Norm.L2: 1.0},
}

#: Multipliers of the standard eps in the ``standard`` preset's grids.
STANDARD_GRID = (0.5, 1.0, 2.0)
QUICK_GRID = (0.5, 1.0)

QUICK_ATTACKS = ("fgsm", "pgd")
STANDARD_ATTACKS = (
    "fgsm",
    "fgm",
    "pgd:steps=50,restarts=2",
    "apgd-ce",
    "apgd-t:n_target_classes=3",
    "square:n_queries=1000",
    "deepfool",
    "noise",
)
AUTOATTACK_ATTACKS = ("autoattack",)
SEMANTIC_ATTACKS = ("advmix",)


def standard_eps(family: str) -> dict[Norm, float]:
    """The standard eps per norm of ``family`` (a copy); ``generic``'s for unknown families."""
    return dict(STANDARD_EPS.get(family, STANDARD_EPS[GENERIC_FAMILY]))


def is_standard_eps(family: str, norm: str, eps: float) -> bool:
    """Whether ``eps`` is ``family``'s standard eps for ``norm`` (a norm value, e.g. linf)."""
    standard = {key.value: value for key, value in standard_eps(family).items()}
    return norm in standard and math.isclose(eps, standard[norm], rel_tol=1e-9)


def headline_indices(family: str, evaluated: Sequence[tuple[str, float, bool]]) -> list[int]:
    """Which of the ``evaluated`` (norm, eps, targeted) threat models a verdict should
    headline: the untargeted ones at the family's standard eps, or, when none is, the
    largest untargeted eps of each norm; targeted ones only when nothing is untargeted. In
    order of ``evaluated``; one index per (norm, eps)."""
    untargeted = [index for index, (_, _, targeted) in enumerate(evaluated) if not targeted]
    candidates = untargeted or list(range(len(evaluated)))
    chosen: dict[tuple[str, float], int] = {}
    for index in candidates:
        norm, eps, _ = evaluated[index]
        if is_standard_eps(family, norm, eps):
            chosen.setdefault((norm, eps), index)
    if chosen:
        return list(chosen.values())
    largest: dict[str, int] = {}
    for index in candidates:
        norm, eps, _ = evaluated[index]
        if norm not in largest or eps > evaluated[largest[norm]][1]:
            largest[norm] = index
    return sorted(largest.values())


def grid(family: str, norm: Norm, multipliers: Sequence[float]) -> list[ThreatModel]:
    """Threat models at ``multiplier x`` the family's standard eps, in the given order."""
    standard = standard_eps(family)[norm]
    return [ThreatModel(norm, standard * multiplier) for multiplier in multipliers]


def _with_semantic(family: str, attacks: tuple[str, ...],
                   threats: list[ThreatModel]) -> tuple[tuple[str, ...], tuple[ThreatModel, ...]]:
    """``attacks`` and ``threats`` plus ``advmix`` at the family's standard semantic radius,
    when it has one."""
    if Norm.SEMANTIC not in standard_eps(family):
        return attacks, tuple(threats)
    return attacks + SEMANTIC_ATTACKS, tuple(threats + grid(family, Norm.SEMANTIC, (1.0,)))


def _quick(family: str) -> ThreatMatrix:
    attacks, threats = _with_semantic(family, QUICK_ATTACKS,
                                      grid(family, Norm.LINF, QUICK_GRID))
    return ThreatMatrix(name="quick", version="1", description=QUICK.description,
                        attacks=attacks, threats=threats)


def _standard(family: str) -> ThreatMatrix:
    attacks, threats = _with_semantic(
        family, STANDARD_ATTACKS,
        grid(family, Norm.LINF, STANDARD_GRID) + grid(family, Norm.L2, STANDARD_GRID))
    return ThreatMatrix(name="standard", version="1", description=STANDARD.description,
                        attacks=attacks, threats=threats)


def _autoattack(family: str) -> ThreatMatrix:
    threats = grid(family, Norm.LINF, (1.0,)) + grid(family, Norm.L2, (1.0,))
    return ThreatMatrix(name="autoattack", version="1", description=AUTOATTACK.description,
                        attacks=AUTOATTACK_ATTACKS, threats=tuple(threats))


def _preset(name: str, description: str, build: Callable[[str], ThreatMatrix]) -> MatrixPreset:
    return MatrixPreset(name=name, version="1", description=description, build=build)


QUICK = _preset("quick", "FGSM and PGD at Linf standard/2 and standard eps: a first look, "
                "seconds on a CPU for the default model.", _quick)
STANDARD = _preset("standard", "The audit default: Linf and L2 at standard/2, standard and 2x "
                   "standard eps; FGSM/FGM, PGD, APGD-CE, APGD-T, Square, DeepFool and a noise "
                   "baseline.", _standard)
AUTOATTACK = _preset("autoattack", "AutoAttack (APGD-CE, APGD-T, Square) at the standard Linf "
                     "and L2 eps, for comparison with RobustBench-style numbers.", _autoattack)

#: The built-in presets, in the order `robust matrix list` shows them.
BUILTIN_PRESETS: tuple[MatrixPreset, ...] = (QUICK, STANDARD, AUTOATTACK)
