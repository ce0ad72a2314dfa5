"""Threat models: which perturbations an adversary may apply.

An Lp threat model is a norm ball of radius ``eps`` around the clean image, intersected with
the pixel box ``[lower, upper]`` (``[0, 1]`` by default: attacks work in pixel space).

The ``semantic`` threat model has no ball in pixel space: the adversary re-synthesises the
image with a style generator, keeping its label-relevant (coarse) styles and choosing the
label-irrelevant (fine) ones; ``eps`` bounds the generator's latent z of the fine styles to
the box ``[-eps, eps]`` (in units of the latent prior's standard deviation). The host can
only check that such an example is finite and inside the pixel box; the bound on z is the
attack's contract (`robustbench_lite.semantic.attack`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import torch

from robustbench_lite.errors import ThreatModelError

#: Absolute float tolerance when checking that an adversarial example is inside the ball.
#: Projections in float32 can overshoot the radius by a few ulps; 1e-5 is far below any
#: perturbation that could change a prediction and far above float32 rounding at eps <= 10.
CONTAINS_TOLERANCE = 1e-5


class Norm(str, Enum):
    """Perturbation norms."""

    LINF = "linf"
    L2 = "l2"
    L1 = "l1"
    SEMANTIC = "semantic"

    @property
    def is_lp(self) -> bool:
        """Whether this is a pixel-space norm ball (not the semantic threat model)."""
        return self is not Norm.SEMANTIC

    @classmethod
    def parse(cls, text: str) -> Norm:
        key = text.strip().lower().replace("_", "").replace("-", "")
        aliases = {"linf": cls.LINF, "inf": cls.LINF, "l2": cls.L2, "2": cls.L2, "l1": cls.L1,
                   "semantic": cls.SEMANTIC}
        if key not in aliases:
            valid = ", ".join(n.value for n in cls)
            raise ThreatModelError(f"unknown norm {text!r}; choose one of: {valid}")
        return aliases[key]


_NORM_LABELS = {"linf": "Linf", "l2": "L2", "l1": "L1", "semantic": "semantic"}


def norm_label(norm: str) -> str:
    """How a norm is written for people: ``linf`` → ``Linf``; unknown names unchanged."""
    return _NORM_LABELS.get(norm, norm)


#: Target modes of a targeted threat model: a uniformly drawn wrong class (the default), the
#: most likely wrong class on the clean input, the least likely class, or a fixed class
#: (its index, as text: ``"3"``).
RANDOM_TARGETS = "random"
TARGET_MODES = (RANDOM_TARGETS, "next-likely", "least-likely")


def parse_target_mode(value: object) -> str:
    """``random``, ``next-likely``, ``least-likely`` or a class index (int or digits) as
    text; ThreatModelError for anything else."""
    if isinstance(value, bool):
        raise ThreatModelError(f"target mode {value!r} is not valid; choose one of: "
                               f"{', '.join(TARGET_MODES)}, or a class index")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace("_", "-")
    else:
        raise ThreatModelError(f"target mode must be text or a class index, got "
                               f"{type(value).__name__}")
    if text in TARGET_MODES:
        return text
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return str(int(text))
    raise ThreatModelError(f"unknown target mode {value!r}; choose one of: "
                           f"{', '.join(TARGET_MODES)}, or a class index such as 3")


def fixed_target(mode: str) -> int | None:
    """The class of a fixed-class target mode, else None."""
    return int(mode) if mode.isdigit() else None


def targeted_prefix(target_mode: str | None) -> str:
    """``""`` (untargeted), ``"targeted "`` (random targets) or ``"targeted(MODE) "``."""
    if target_mode is None:
        return ""
    if target_mode == RANDOM_TARGETS:
        return "targeted "
    shown = f"class {target_mode}" if fixed_target(target_mode) is not None else target_mode
    return f"targeted({shown}) "


@dataclass(frozen=True, repr=False)
class ThreatModel:
    """A norm ball of radius ``eps`` inside the pixel box ``[lower, upper]``.

    ``eps`` may be 0 (the clean point only); it may not be negative or non-finite.
    """

    norm: Norm
    eps: float
    targeted: bool = False
    lower: float = 0.0
    upper: float = 1.0
    #: How the host chooses each sample's target when ``targeted`` (see `TARGET_MODES`).
    targets: str = RANDOM_TARGETS

    def __post_init__(self) -> None:
        if not isinstance(self.norm, Norm):
            object.__setattr__(self, "norm", Norm.parse(str(self.norm)))
        object.__setattr__(self, "targets", parse_target_mode(self.targets)
                           if self.targeted else RANDOM_TARGETS)
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ThreatModelError(f"eps must be a finite number >= 0, got {self.eps}")
        if not self.lower < self.upper:
            raise ThreatModelError(f"pixel bounds must satisfy lower < upper, got "
                                   f"[{self.lower}, {self.upper}]")

    def __repr__(self) -> str:
        # Seeds derive from this text (`batch_seed`): it names ``targets`` only when targeted,
        # so untargeted threat models keep the seeds (and numbers) they had before targets.
        targets = f", targets={self.targets!r}" if self.targeted else ""
        return (f"ThreatModel(norm={self.norm!r}, eps={self.eps!r}, targeted={self.targeted!r}, "
                f"lower={self.lower!r}, upper={self.upper!r}{targets})")

    @property
    def target_mode(self) -> str | None:
        """The target mode of a targeted threat model; None when untargeted."""
        return self.targets if self.targeted else None

    @property
    def label(self) -> str:
        """Short readable form, e.g. ``linf eps=0.1``, ``targeted(least-likely) linf eps=0.1``."""
        return f"{targeted_prefix(self.target_mode)}{self.norm.value} eps={self.eps:g}"

    def distances(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample perturbation size in this threat model's norm (zeros for the semantic
        threat model, whose bound lives in the generator's latent space)."""
        delta = (x_adv - x).flatten(1).to(torch.float64)
        if self.norm is Norm.SEMANTIC:
            return delta.new_zeros(len(delta))
        if self.norm is Norm.LINF:
            return delta.abs().amax(dim=1) if delta.shape[1] else delta.new_zeros(len(delta))
        order = 2 if self.norm is Norm.L2 else 1
        sizes: torch.Tensor = torch.linalg.vector_norm(delta, ord=order, dim=1)
        return sizes

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Project ``x_adv`` onto the ball, then clip to the pixel box. The result is always
        inside both (clipping toward ``x`` in [lower, upper] never grows a perturbation).
        Semantic: the pixel box only."""
        delta = x_adv - x
        if self.norm is Norm.SEMANTIC:
            return x_adv.clamp(self.lower, self.upper)
        if self.norm is Norm.LINF:
            delta = delta.clamp(-self.eps, self.eps)
        elif self.norm is Norm.L2:
            size = self.distances(x_adv, x).to(delta.dtype).clamp_min(1e-12)
            factor = (self.eps / size).clamp(max=1.0).view(-1, *([1] * (delta.dim() - 1)))
            delta = delta * factor
        else:
            delta = project_l1_ball(delta, self.eps)
        return (x + delta).clamp(self.lower, self.upper)

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor,
                 tolerance: float = CONTAINS_TOLERANCE) -> torch.Tensor:
        """Per-sample boolean: inside the eps-ball and the pixel box, up to ``tolerance``
        (semantic: the pixel box)."""
        in_ball = self.distances(x_adv, x) <= self.eps + tolerance
        flat = x_adv.flatten(1)
        in_box = (flat >= self.lower - tolerance).all(dim=1) & (
            flat <= self.upper + tolerance).all(dim=1)
        return in_ball & in_box


def project_l1_ball(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of each sample of ``delta`` onto the L1 ball of ``radius``
    (Duchi, Shalev-Shwartz, Singer & Chandra, ICML 2008: sort, find the threshold, shrink)."""
    flat = delta.flatten(1)
    magnitude = flat.abs()
    outside = magnitude.sum(dim=1) > radius
    if not bool(outside.any()):
        return delta
    sorted_desc, _ = magnitude.sort(dim=1, descending=True)
    cumulative = sorted_desc.cumsum(dim=1) - radius
    ranks = torch.arange(1, flat.shape[1] + 1, device=delta.device, dtype=delta.dtype)
    count = (sorted_desc * ranks > cumulative).sum(dim=1, keepdim=True).clamp_min(1)
    threshold = (cumulative.gather(1, count - 1) / count.to(delta.dtype)).clamp_min(0)
    shrunk = flat.sign() * (magnitude - threshold).clamp_min(0)
    return torch.where(outside.unsqueeze(1), shrunk, flat).view_as(delta)


_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]{1,4})?"
_EPS_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$")

#: Longest digit string read exactly: longer text (a pasted megabyte of digits) is refused
#: rather than turned into a huge `Fraction`.
_MAX_EPS_CHARS = 100


def parse_eps(text: str) -> float:
    """Parse ``0.1``, ``1e-2`` or a fraction like ``8/255``; reject anything else, and any
    value that is not a finite float (``1e5000``, ``1e5000/1``) with a `ThreatModelError`."""
    hint = "write a decimal (0.03) or a fraction (8/255)"
    match = _EPS_RE.match(text) if len(text) <= _MAX_EPS_CHARS else None
    if not match:
        raise ThreatModelError(f"cannot read eps {text[:40]!r}: {hint}")
    numerator, denominator = match.groups()
    try:
        if denominator is None:
            value = float(numerator)
        elif float(denominator) == 0:
            raise ThreatModelError(f"eps {text!r} divides by zero; {hint}")
        else:
            value = float(Fraction(numerator) / Fraction(denominator))
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ThreatModelError(f"eps {text.strip()!r} is too large to be a number (not finite); "
                               f"{hint}")
    return value


def parse_threat_spec(spec: str, *, allow_zero: bool = False) -> list[ThreatModel]:
    """Parse ``NORM:EPS[,EPS...][:targeted[=MODE]]`` (e.g. ``linf:0.1,8/255``,
    ``linf:0.2:targeted=least-likely``) into threat models.

    User-facing: eps must be strictly positive unless ``allow_zero``.
    """
    norm_text, sep, rest = spec.partition(":")
    eps_text, _, goal = rest.partition(":")
    if not sep or not eps_text.strip():
        raise ThreatModelError(f"threat {spec!r} must look like NORM:EPS[,EPS...][:targeted"
                               "[=MODE]], e.g. linf:0.1,8/255 or l2:1.0:targeted")
    targeted, mode = False, RANDOM_TARGETS
    if goal.strip():
        word, has_mode, mode_text = goal.partition("=")
        if word.strip().lower() != "targeted" or (has_mode and not mode_text.strip()):
            raise ThreatModelError(f"threat {spec!r}: after the eps write 'targeted' or "
                                   f"'targeted=MODE' (MODE one of {', '.join(TARGET_MODES)}, "
                                   "or a class index)")
        targeted, mode = True, mode_text if has_mode else RANDOM_TARGETS
    norm = Norm.parse(norm_text)
    threats = []
    for part in eps_text.split(","):
        eps = parse_eps(part)
        if eps < 0 or (eps == 0 and not allow_zero):
            raise ThreatModelError(f"eps must be greater than 0, got {part.strip()} in {spec!r}")
        threats.append(ThreatModel(norm, eps, targeted=targeted, targets=mode))
    return threats
