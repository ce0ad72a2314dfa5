"""The keys of the free-form rows of `robustbench_lite.results.AuditResult` that the report
reads (transfer rows, gates, the certificate, plugin entries), for the schema check
(`robustbench_lite.results_schema.Keys`): fields without a default must be present, the
others are checked when present; other keys are kept as they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from robustbench_lite.results_schema import Count, Fraction, Keys, NonNegative


@dataclass
class PluginKeys:
    """A ``run.plugins`` entry."""

    name: str
    version: str | None


@dataclass
class TransferKeys:
    """A ``transfer`` row (`robustbench_lite.engine.transfer.TransferRow`)."""

    source: str
    target: str
    norm: str
    eps: NonNegative
    accuracy: Fraction
    source_success: Fraction | None = None


@dataclass
class GateKeys:
    """A ``gates`` entry (`robustbench_lite.gates.evaluate_gates`)."""

    passed: bool
    message: str
    threshold: Fraction | None = None
    norm: str | None = None
    eps: NonNegative | None = None
    accuracy: Fraction | None = None


@dataclass
class CertifiedKeys:
    """One eps of ``certificate.certified``."""

    eps: NonNegative
    accuracy: Fraction


@dataclass
class SmoothedRadiusKeys:
    """One radius of ``certificate.smoothing.certified``."""

    radius: NonNegative
    accuracy: Fraction


@dataclass
class SmoothingKeys:
    """``certificate.smoothing`` (`robustbench_lite.engine.smoothing`): ``available`` and,
    when true, the noise level and Monte Carlo budget, the shares of samples the smoothed
    classifier abstained on and classifies correctly, and ``certified``; when false the
    ``reason``."""

    available: bool
    reason: str | None = None
    sigma: NonNegative | None = None
    n0: Count | None = None
    n: Count | None = None
    alpha: Fraction | None = None
    abstained: Fraction | None = None
    accuracy: Fraction | None = None
    certified: list[Annotated[dict[str, Any], Keys(SmoothedRadiusKeys)]] = field(
        default_factory=list)

    @classmethod
    def required_keys(cls, row: dict[str, Any]) -> tuple[str, ...]:
        if row.get("available") is True:
            return ("sigma", "n0", "n", "alpha", "abstained", "certified")
        return ("reason",)


@dataclass
class CertificateKeys:
    """The ``certificate`` (`robustbench_lite.engine.certificate.certificate`): empty when
    none was computed; else ``available`` and, when true, ``lipschitz``, ``median_radius``
    and ``certified``, when false the ``reason``; ``smoothing`` (optional) holds the
    randomized-smoothing certificate."""

    available: bool = False
    reason: str | None = None
    lipschitz: NonNegative | None = None
    median_radius: NonNegative | None = None
    certified: list[Annotated[dict[str, Any], Keys(CertifiedKeys)]] = field(
        default_factory=list)
    smoothing: Annotated[dict[str, Any], Keys(SmoothingKeys)] | None = None

    @classmethod
    def required_keys(cls, row: dict[str, Any]) -> tuple[str, ...]:
        if not row:
            return ()
        if row.get("available") is True:
            return ("available", "lipschitz", "median_radius", "certified")
        return ("available", "reason")


@dataclass
class GanViewKeys:
    """One view of a GAN audit (`robustbench_lite.gan.views`): its objective, the space the
    attacks move (``z``, ``w`` or ``pixel``), its samples and the share on which D's clean
    decision is the one it should keep."""

    objective: str
    space: str
    n_samples: Count
    clean_accuracy: Fraction
    data: str


@dataclass
class GanMovementKeys:
    """How far the images moved under a latent attack at one threat model: mean pixel L2
    and Linf distance and mean feature distance between G(latent) and G(adversarial
    latent), over all samples and over those the attack succeeded on; and the attack's
    success rate with D's threshold moved to the median logit of the view's samples
    (``median_threshold``), which a stricter or laxer D cannot change."""

    objective: str
    norm: str
    eps: NonNegative
    attack: str
    n_samples: Count
    success_rate: Fraction | None
    pixel_l2: NonNegative
    pixel_linf: NonNegative
    feature_distance: NonNegative | None = None
    pixel_l2_successful: NonNegative | None = None
    feature_distance_successful: NonNegative | None = None
    median_threshold: float | None = None
    median_threshold_success_rate: Fraction | None = None


@dataclass
class GanGridKeys:
    """An example grid: rows of images (data URIs) with a caption per row."""

    objective: str
    norm: str
    eps: NonNegative
    attack: str
    image: str
    caption: str


@dataclass
class GanEpochKeys:
    """One epoch of GAN training (``robust harden --task gan``)."""

    epoch: Count
    d_loss: float
    seconds: NonNegative
    g_loss: float | None = None
    d_accuracy: Fraction | None = None
    r1: float | None = None
    fd: NonNegative | None = None
    kid: float | None = None
    eps: NonNegative | None = None


@dataclass
class GanKeys:
    """``gan`` of a GAN audit: image quality (Fréchet distance ``fd`` and kernel distance
    ``kid`` in the feature space named by ``feature_extractor``; None without one), D's
    accuracy on held-out real against generated images, the views, image movement under
    latent attacks, example grids, and training epochs when the GAN was trained. Empty
    outside GAN audits."""

    d_accuracy: Fraction | None = None
    feature_extractor: str | None = None
    fd: NonNegative | None = None
    kid: float | None = None
    views: list[Annotated[dict[str, Any], Keys(GanViewKeys)]] = field(default_factory=list)
    kid_std: NonNegative | None = None
    d_real_accuracy: Fraction | None = None
    d_fake_accuracy: Fraction | None = None
    real_samples: Count | None = None
    generated_samples: Count | None = None
    z_dim: Count | None = None
    w_dim: Count | None = None
    movement: list[Annotated[dict[str, Any], Keys(GanMovementKeys)]] = field(
        default_factory=list)
    grids: list[Annotated[dict[str, Any], Keys(GanGridKeys)]] = field(default_factory=list)
    training: list[Annotated[dict[str, Any], Keys(GanEpochKeys)]] = field(
        default_factory=list)

    @classmethod
    def required_keys(cls, row: dict[str, Any]) -> tuple[str, ...]:
        if not row:
            return ()
        return ("d_accuracy", "feature_extractor", "fd", "kid", "views")
