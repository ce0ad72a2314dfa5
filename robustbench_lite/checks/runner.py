"""Run the sanity checks of an audit: build what they see, run one stage, and turn the
adaptations the probes asked for into extra attacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.checks.adapt import adapted
from robustbench_lite.checks.base import PROBE_SAMPLES, Check, CheckContext, CheckStage
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import CHECK_STATUSES, SanityCheck
from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)


def probe_context(model: RobustModel, data: EvalData, task: Task, attacks: Sequence[Attack],
                  threats: Sequence[ThreatModel], correct: torch.Tensor,
                  seed: int, draws: int = 1,
                  clean_scores: np.ndarray | None = None) -> CheckContext:
    """The context of a run's checks; its probe batch is the first `PROBE_SAMPLES`
    samples the task judges correct. The checks reason about pixel-space balls, so they see
    the Lp threat models only (semantic cells still count in `every attack ran` and `valid
    adversarial examples`, which read the result). ``clean_scores``: a randomised model's
    ``(2, n)`` clean selection and fresh scores, from the engine's clean pass."""
    chosen = torch.nonzero(correct).flatten()[:PROBE_SAMPLES]
    lp_threats = [threat for threat in threats if threat.norm.is_lp]
    return CheckContext(model=model, data=data, attacks=list(attacks), threats=lp_threats,
                        probe_x=data.x[chosen].to(model.device),
                        probe_y=data.y[chosen].to(model.device), seed=seed, task=task,
                        draws=draws, probe_clean_scores=None if clean_scores is None
                        else clean_scores[1][chosen.numpy()])


def run_checks(checks: Sequence[Check], stage: CheckStage, context: CheckContext,
               on_failure: Callable[[str, str], None]) -> list[SanityCheck]:
    """The findings of the ``stage`` checks in order. A check that raises, or returns
    something else than a `SanityCheck` with a known status, is reported through
    ``on_failure(check name, one-line reason)``; the audit goes on. Nothing runs without
    probe samples (no correct prediction)."""
    findings: list[SanityCheck] = []
    if not len(context.probe_x):
        return findings
    for check in (check for check in checks if check.stage is stage):
        try:
            finding = check.run(context)
        except Exception as exc:
            on_failure(check.name, f"the check itself failed: {type(exc).__name__}: {exc}")
            continue
        if finding is None:
            continue
        if not isinstance(finding, SanityCheck) or finding.status not in CHECK_STATUSES:
            on_failure(check.name, f"the check returned {finding!r}, not a SanityCheck with "
                       "status pass, warn or fail")
            continue
        logger.info("check %-28s %s: %s", finding.name, finding.status, finding.message)
        findings.append(finding)
    return findings


def adaptive_attacks(attacks: Sequence[Attack], context: CheckContext) -> list[Attack]:
    """Every gradient attack once more through all the adaptations the probes asked for."""
    if not context.adaptations:
        return []
    for adaptation in context.adaptations:
        logger.warning("adaptive attacks: %s (+%s)", adaptation.reason, adaptation.tag)
    return [adapted(attack, context.adaptations) for attack in attacks
            if attack.kind is AttackKind.GRADIENT]
