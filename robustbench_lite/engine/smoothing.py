"""The randomized-smoothing certificate of an audited model (Cohen et al. 2019;
`robustbench_lite.defenses.randomized_smoothing`): the share of samples the smoothed
classifier g classifies correctly with a certified L2 radius of at least r, at fixed radii
and the audit's L2 eps. Computed when `AuditSettings.smoothing_sigma` is set."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.randomized_smoothing import certify
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.errors import DefenseError
from robustbench_lite.models.robust_model import RobustModel

logger = logging.getLogger(__name__)

#: L2 radii the smoothing certificate is always stated at (the paper's noise levels).
RADII = (0.25, 0.5, 1.0)

#: Noisy inputs per forward pass, as a multiple of the audit's batch size: they carry no
#: gradients, and small batches starve a CPU (on the digits CNN 4096 inputs a pass run about
#: 1.7x faster than 1024, and 1024 about 4x faster than 128). Lower ``--batch-size`` for a
#: large network.
SMOOTHING_BATCH_FACTOR = 32


def smoothing_certificate(model: RobustModel, data: EvalData, l2_eps: Sequence[float],
                          sigma: float, settings: AuditSettings) -> dict[str, Any]:
    """``{"available": True, "sigma", "n0", "n", "alpha", "abstained", "accuracy",
    "certified": [{"radius", "accuracy"}]}`` at `RADII` and the audit's L2 eps, or
    ``{"available": False, "reason"}``. The noise comes from a generator on the model's
    device seeded with the audit's seed; forward passes take `SMOOTHING_BATCH_FACTOR` times
    the audit's batch size of noisy inputs."""
    radii = sorted({*RADII, *(float(eps) for eps in l2_eps)})
    generator = torch.Generator(device=model.device).manual_seed(settings.seed)
    try:
        result = certify(model, data.x, data.y, sigma=sigma, n0=settings.smoothing_n0,
                         n=settings.smoothing_n, alpha=settings.smoothing_alpha,
                         batch_size=SMOOTHING_BATCH_FACTOR * settings.batch_size,
                         generator=generator,
                         device=model.device)
    except DefenseError as exc:
        return {"available": False, "reason": str(exc)}
    except Exception as exc:  # a certificate never fails the audit
        logger.warning("no smoothing certificate: %s: %s", type(exc).__name__, exc)
        return {"available": False,
                "reason": f"smoothing failed: {type(exc).__name__}: {exc}"}
    shares = result.curve(radii)
    logger.info("smoothing certificate at sigma %g: %.1f%% abstained", sigma,
                100 * result.abstained)
    return {"available": True, "sigma": sigma, "n0": settings.smoothing_n0,
            "n": settings.smoothing_n, "alpha": settings.smoothing_alpha,
            "abstained": result.abstained, "accuracy": result.accuracy,
            "certified": [{"radius": radius, "accuracy": shares[radius]} for radius in radii]}
