"""The Lipschitz certificate of an audited model: an upper bound L on its L2 Lipschitz
constant and, per L2 eps, the share of samples certified robust (margin / (sqrt(2) L) > eps;
`robustbench_lite.defenses.certify`). Networks the bound does not understand get the reason
instead of a number."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.certify import certified_accuracy, certified_radii, lipschitz_bound
from robustbench_lite.errors import DefenseError
from robustbench_lite.matrix.presets import standard_eps
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.threat import Norm

logger = logging.getLogger(__name__)

#: Fractions of the family's standard L2 eps the certificate is always stated at.
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)


def certificate(model: RobustModel, data: EvalData, l2_eps: Sequence[float]) -> dict[str, Any]:
    """``{"available": True, "lipschitz", "certified": [{"eps", "accuracy"}], ...}`` at the
    audit's L2 eps and `FRACTIONS` of the standard one, or ``{"available": False,
    "reason"}``."""
    if isinstance(model.module, torch.jit.ScriptModule):
        return {"available": False, "reason": "the model is TorchScript: the bound needs its "
                "layers as Python modules (load a state_dict or safetensors with --arch)"}
    try:
        bound = lipschitz_bound(model.module, model.input_shape)
    except DefenseError as exc:
        logger.info("no Lipschitz certificate: %s", exc)
        return {"available": False, "reason": str(exc)}
    except Exception as exc:  # a certificate never fails the audit
        logger.warning("no Lipschitz certificate: %s: %s", type(exc).__name__, exc)
        return {"available": False, "reason": f"the bound failed: {type(exc).__name__}: {exc}"}
    standard = standard_eps(data.family)[Norm.L2]
    eps_values = sorted({*l2_eps, *(round(standard * f, 10) for f in FRACTIONS)})
    radii = certified_radii(model.module, data.x.to(model.device), data.y.to(model.device),
                            bound)
    shares = certified_accuracy(radii.cpu(), eps_values)
    return {"available": True, "lipschitz": bound,
            "median_radius": float(torch.median(radii.cpu())),
            "certified": [{"eps": eps, "accuracy": shares[eps]} for eps in eps_values]}
