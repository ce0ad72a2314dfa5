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
