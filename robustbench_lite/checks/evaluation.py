"""Checks that attack the probe batch once more after the audit, from the evaluation
checklist of Carlini et al., "On Evaluating Adversarial Robustness" (arXiv:1902.06705, 2019):
eps = 0 changes nothing, an eps spanning the whole pixel box brings accuracy to chance, and
twice the steps and restarts change little. `EVALUATION_CHECKS` also holds the checks that
only compare cells (`robustbench_lite.checks.consistency`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.checks.adapt import AdaptedAttack, adapted
from robustbench_lite.checks.base import Check, CheckContext, CheckStage, broken, strongest
from robustbench_lite.checks.consistency import (
    FLOAT_TOLERANCE,
    STANDARD_ERRORS,
    IterativeCheck,
    MonotoneCheck,
    WhiteBoxCheck,
    is_iterative,
    threat_name,
)
from robustbench_lite.host.expectation import score_over_draws, standard_error
from robustbench_lite.matrix.presets import headline_indices
from robustbench_lite.results import SanityCheck
from robustbench_lite.threat import Norm, ThreatModel, norm_label

#: Accuracy a doubled attack may lose on the probe batch before the original counts as not
#: converged (3 of 64 probe samples). On the default model at Linf 0.1, PGD with 10, 50 x 2
#: and 100 x 4 steps x restarts and APGD-T with 100 and 200 x 2 all leave 62.5-65.6%.
CONVERGENCE_MARGIN = 0.05
#: Accuracy above chance (1 / classes) tolerated at the box diameter (the default model
#: ends at 0%; a zero-gradient model stays at its clean accuracy).
CHANCE_MARGIN = 0.05
#: Gradient steps of the PGD run at the box diameter.
LARGE_EPS_STEPS = 20


def _norms(context: CheckContext) -> list[Norm]:
    return list(dict.fromkeys(threat.norm for threat in context.threats))


class EpsZeroCheck(Check):
    """At eps = 0 an attack can only return the clean images: any changed prediction means
    the model is not deterministic or the attack leaves its threat model. A randomised
    model is judged in expectation: the expected accuracy at eps = 0 may differ from the
    clean one only within three standard errors (from the draws) and one sample."""

    name = "eps = 0"
    stage = CheckStage.AFTER
    description = "An attack at eps = 0 reproduces the clean predictions."

    def run(self, context: CheckContext) -> SanityCheck | None:
        if context.draws > 1:
            return self._in_expectation(context)
        findings: list[tuple[Attack, Norm, int]] = []
        for norm in _norms(context):
            attack = self._strongest_gradient(context, norm)
            if attack is not None:
                robust = context.robust_on_probe(attack, ThreatModel(norm, 0.0))
                findings.append((attack, norm, int((~robust).sum())))
        if not findings:
            return None
        n = len(context.probe_y)
        details: dict[str, Any] = {"samples": n}
        details.update({f"changed_{norm.value}": changed for _, norm, changed in findings})
        attack, norm, changed = max(findings, key=lambda finding: finding[2])
        if changed:
            return SanityCheck(self.name, "fail", f"{attack.name} at {norm_label(norm.value)} "
                               f"eps=0 changed {changed} of {n} correctly classified "
                               "predictions: the evaluation is not deterministic or the attack "
                               "leaves the threat model", details)
        ran = ", ".join(f"{attack.name} at {norm_label(norm.value)}"
                        for attack, norm, _ in findings)
        return SanityCheck(self.name, "pass", f"at eps=0 all {n} correctly classified "
                           f"predictions stayed correct ({ran})", details)

    def _in_expectation(self, context: CheckContext) -> SanityCheck | None:
        n = len(context.probe_y)
        clean = context.probe_clean_scores
        if clean is None:
            clean = score_over_draws(context.model, context.probe_x,
                                     partial(context.task.correct, labels=context.probe_y),
                                     None, context.draws).fresh.cpu().numpy()
        findings: list[tuple[float, float, Attack, Norm]] = []
        for norm in _norms(context):
            attack = self._strongest_gradient(context, norm)
            if attack is None:
                continue
            outcome = context.attack_probe(attack, ThreatModel(norm, 0.0))
            if outcome.expectation is None:
                continue
            attacked = outcome.expectation[1].cpu().numpy()
            error = math.hypot(standard_error(clean, context.draws),
                               standard_error(attacked, context.draws))
            findings.append((float(clean.mean() - attacked.mean()), error, attack, norm))
        if not findings:
            return None
        drop, error, attack, norm = max(findings, key=lambda f: f[0] - STANDARD_ERRORS * f[1])
        details: dict[str, Any] = {"samples": n, "draws": context.draws,
                                   "expected_drop": drop, "standard_error": error}
        where = f"{attack.name} at {norm_label(norm.value)} eps=0"
        if drop > STANDARD_ERRORS * error + 1 / n + FLOAT_TOLERANCE:
            return SanityCheck(self.name, "fail", f"{where} lowers the expected accuracy of "
                               f"{n} samples by {drop:.1%} (± {error:.1%}, {context.draws} "
                               "draws): the attack leaves the threat model", details)
        return SanityCheck(self.name, "pass", f"{where} keeps the expected accuracy of {n} "
                           f"samples within noise ({drop:+.1%} ± {error:.1%} over "
                           f"{context.draws} draws; the model is randomised)", details)

    @staticmethod
    def _strongest_gradient(context: CheckContext, norm: Norm) -> Attack | None:
        """The gradient attack that broke the most samples over the finished cells of
        ``norm``; else the first gradient attack of the audit that supports ``norm``."""
        clean = ThreatModel(norm, 0.0)
        counts: dict[tuple[str, str], int] = {}
        attacks: dict[tuple[str, str], Attack] = {}
        for outcome in context.outcomes:
            attack = outcome.attack
            if attack.kind is AttackKind.GRADIENT and outcome.threat.norm is norm \
                    and outcome.attacked.any() and attack.supports(clean):
                key = (attack.name, repr(attack))
                counts[key] = counts.get(key, 0) + broken(outcome)
                attacks.setdefault(key, attack)
        if counts:
            return attacks[max(counts, key=lambda key: counts[key])]
        return next((a for a in context.gradient_attacks() if a.supports(clean)), None)


def _box_diameter(norm: Norm, size: int) -> tuple[float, str]:
    """The eps at which the ball covers the whole pixel box [0, 1]^size, and its name."""
    if norm is Norm.LINF:
        return 1.0, "the whole pixel range"
    if norm is Norm.L2:
        return math.sqrt(size), "the diagonal of the pixel box"
    return float(size), "every pixel across its whole range"


class LargeEpsCheck(Check):
    """At eps = the diameter of the pixel box every image is reachable, so PGD (from the
    clean image, through any adaptation of the audit) must bring accuracy down to chance. No
    random start: at this eps it is a random image and would hide a useless gradient."""

    name = "large eps"
    stage = CheckStage.AFTER
    description = "At an eps spanning the whole pixel box, accuracy falls to chance."

    def run(self, context: CheckContext) -> SanityCheck | None:
        n = len(context.probe_y)
        if not n or not context.threats:
            return None
        size = int(context.probe_x[0].numel())
        attack: Attack = PGD(steps=LARGE_EPS_STEPS, random_start=False)
        if context.adaptations:
            attack = adapted(attack, context.adaptations)
        chance = 1 / context.model.num_classes
        details: dict[str, Any] = {"samples": n, "chance": chance}
        found: list[tuple[float, Norm, float, str]] = []
        for norm in _norms(context):
            eps, meaning = _box_diameter(norm, size)
            accuracy = float(context.robust_on_probe(attack, ThreatModel(norm, eps)).float()
                             .mean())
            found.append((accuracy, norm, eps, meaning))
            details[f"accuracy_{norm.value}"] = accuracy
            details[f"eps_{norm.value}"] = eps
        accuracy, norm, eps, meaning = max(found, key=lambda item: item[0])
        if accuracy > chance + CHANCE_MARGIN:
            return SanityCheck(self.name, "fail", f"with {norm_label(norm.value)} eps = "
                               f"{eps:g} ({meaning}) {accuracy:.0%} of {n} samples stay correct "
                               f"under {attack.name}: gradients are masked or the attack is "
                               "broken", details)
        at = ", ".join(f"{norm_label(norm.value)} {eps:g}" for _, norm, eps, _ in found)
        return SanityCheck(self.name, "pass", f"{attack.name} at the box diameter ({at}) leaves "
                           f"at most {accuracy:.0%} of {n} samples correct (chance "
                           f"{chance:.0%})", details)


def doubled(attack: Attack) -> Attack | None:
    """``attack`` with twice its integer ``steps`` and ``restarts`` (through any adaptation);
    None when it has neither."""
    if isinstance(attack, AdaptedAttack):
        inner = doubled(attack.inner)
        return None if inner is None else adapted(inner, attack.adaptations)
    params = attack.params
    changes = {key: 2 * value for key in ("steps", "restarts")
               if isinstance(value := params.get(key), int) and not isinstance(value, bool)}
    if not changes:
        return None
    build: Callable[..., Attack] = type(attack)
    return build(**{**params, **changes})


class ConvergenceCheck(Check):
    """The strongest iterative attack at the headline threat model, rerun on the probe batch
    with twice its steps and restarts: a clear drop in accuracy means it had not converged."""

    name = "converged"
    stage = CheckStage.AFTER
    description = ("Doubling steps and restarts of the strongest attack does not lower "
                   "accuracy by more than a margin.")

    def run(self, context: CheckContext) -> SanityCheck | None:
        if not context.threats or not len(context.probe_y):
            return None
        index = headline_indices(context.data.family, [
            (t.norm.value, t.eps, t.targeted) for t in context.threats])[0]
        threat = context.threats[index]
        if threat.targeted:  # the probe batch holds true labels, not targets
            return None
        best = strongest(o for o in context.outcomes
                         if o.threat == threat and is_iterative(o.attack))
        more = None if best is None else doubled(best.attack)
        if best is None or more is None:
            return None
        n, name = len(context.probe_y), best.attack.name
        before = float(context.robust_on_probe(best.attack, threat).float().mean())
        after = float(context.robust_on_probe(more, threat).float().mean())
        details: dict[str, Any] = {"attack": name, "threat": threat_name(threat), "samples": n,
                                   "accuracy": before, "accuracy_doubled": after,
                                   "doubled": repr(more)}
        change = f"from {before:.0%} to {after:.0%} on {n} samples at {threat_name(threat)}"
        if before - after > CONVERGENCE_MARGIN + FLOAT_TOLERANCE:
            return SanityCheck(self.name, "warn", f"{name} had not converged: doubling steps "
                               f"and restarts lowers accuracy {change}; raise steps", details)
        return SanityCheck(self.name, "pass", f"doubling steps and restarts of {name} changes "
                           f"accuracy {change}", details)


#: The ``after`` checks of the evaluation checklist (this module's and
#: `robustbench_lite.checks.consistency`'s), in the order they run.
EVALUATION_CHECKS: tuple[type[Check], ...] = (
    EpsZeroCheck, MonotoneCheck, LargeEpsCheck, IterativeCheck, ConvergenceCheck,
    WhiteBoxCheck)
