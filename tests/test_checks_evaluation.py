"""The ``after`` checks of the evaluation checklist (`robustbench_lite.checks.evaluation` and
`robustbench_lite.checks.consistency`).

Checks that only read cells get hand-made results and outcomes over 100 samples; checks that
attack get the default model (or a broken wrapper of it) and its first 64 correctly
classified digits as the probe batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from robustbench_lite.attacks import FGM, FGSM, PGD, NoiseAttack, SquareAttack, WorstCaseEnsemble
from robustbench_lite.attacks.base import Attack
from robustbench_lite.checks.adapt import adapted, straight_through
from robustbench_lite.checks.base import Adaptation, CellOutcome, CheckContext, CheckStage
from robustbench_lite.checks.consistency import IterativeCheck, MonotoneCheck, WhiteBoxCheck
from robustbench_lite.checks.evaluation import (
    EVALUATION_CHECKS,
    ConvergenceCheck,
    EpsZeroCheck,
    LargeEpsCheck,
    doubled,
)
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.models.robust_model import LoadInfo, RobustModel
from robustbench_lite.results import AuditResult, ThreatSummary
from robustbench_lite.threat import Norm, ThreatModel
from tests.result_factory import make_cell, make_result

LINF = ThreatModel(Norm.LINF, 0.1)
LINF_HALF = ThreatModel(Norm.LINF, 0.05)
L2 = ThreatModel(Norm.L2, 1.0)
N = 100


def outcome(attack: Attack, threat: ThreatModel, robust: Sequence[int] | int,
            attacked: Sequence[int] | int | None = None, n: int = N) -> CellOutcome:
    """An outcome over ``n`` samples: ``attacked`` (default: all) and ``robust`` are index
    lists, or counts of the first indices."""
    def mask(indices: Sequence[int] | int) -> np.ndarray:
        chosen = np.zeros(n, dtype=bool)
        chosen[list(range(indices)) if isinstance(indices, int) else list(indices)] = True
        return chosen
    hit = mask(n if attacked is None else attacked)
    return CellOutcome(attack, threat, mask(robust) & hit, hit)


def result_context(model: RobustModel, data: EvalData, outcomes: Sequence[CellOutcome] = (),
                   result: AuditResult | None = None) -> CheckContext:
    """A context for checks that only read the result (the probe batch is left empty)."""
    threats = list(dict.fromkeys(o.threat for o in outcomes))
    return CheckContext(model=model, data=data, attacks=[o.attack for o in outcomes],
                        threats=threats, probe_x=data.x[:0], probe_y=data.y[:0], seed=0,
                        result=result or make_result(), outcomes=list(outcomes))


def probe_context(model: RobustModel, data: EvalData, attacks: Sequence[Attack],
                  threats: Sequence[ThreatModel],
                  outcomes: Sequence[CellOutcome] = ()) -> CheckContext:
    """A context whose probe batch is the first 64 digits the default model gets right."""
    reference = model.module.inner if isinstance(model.module, _Wrapper) else model.module
    with torch.no_grad():
        correct = reference(data.x).argmax(dim=1) == data.y
    chosen = torch.nonzero(correct).flatten()[:64]
    return CheckContext(model=model, data=data, attacks=list(attacks), threats=list(threats),
                        probe_x=data.x[chosen], probe_y=data.y[chosen], seed=0,
                        outcomes=list(outcomes))


class _Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner


class Quantised(_Wrapper):
    """Rounds pixels to 5 grey levels first: the input gradient is zero everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(torch.round(x * 4) / 4)
        return out


class NoisyLogits(_Wrapper):
    """Adds fresh noise of three times the logits' spread: predictions change every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.inner(x)
        return logits + 3 * logits.std() * torch.randn_like(logits)


def wrapped(model: RobustModel, wrapper: type[_Wrapper]) -> RobustModel:
    return RobustModel(wrapper(model.module), model.input_shape, model.num_classes,
                       f"{model.name}-{wrapper.__name__.lower()}", "0" * 64, LoadInfo("test"))


def test_the_six_checks_are_after_checks_with_unique_names() -> None:
    names = [check.name for check in EVALUATION_CHECKS]
    assert names == ["eps = 0", "monotone in eps", "large eps", "iterative beats single-step",
                     "converged", "white box beats black box"]
    for check in EVALUATION_CHECKS:
        assert check.stage is CheckStage.AFTER
        assert check.description.endswith(".") and check.description.count(". ") == 0
        check()  # constructible without arguments


# --- monotone-in-eps ------------------------------------------------------------------------


def _worst(*points: tuple[float, float], norm: str = "linf") -> list[ThreatSummary]:
    return [ThreatSummary(norm, eps, accuracy, ["pgd"]) for eps, accuracy in points]


def test_monotone_passes_when_accuracy_falls_with_eps(default_model: RobustModel,
                                                      digits_test: EvalData) -> None:
    result = make_result(
        cells=[make_cell("pgd", "linf", 0.05, 0.9), make_cell("pgd", "linf", 0.1, 0.6),
               make_cell("pgd", "linf", 0.2, 0.1), make_cell("fgsm", "linf", 0.05, 0.92),
               make_cell("fgsm", "linf", 0.1, 0.7)],
        robust_accuracy=_worst((0.05, 0.9), (0.1, 0.6), (0.2, 0.1)))
    finding = MonotoneCheck().run(result_context(default_model, digits_test, result=result))
    assert finding is not None and finding.status == "pass", finding
    assert finding.details["series"] == 3


def test_monotone_allows_one_sample_of_noise(default_model: RobustModel,
                                             digits_test: EvalData) -> None:
    result = make_result(cells=[make_cell("noise", "l2", 0.5, 0.95),
                                make_cell("noise", "l2", 1.0, 0.96)])
    finding = MonotoneCheck().run(result_context(default_model, digits_test, result=result))
    assert finding is not None and finding.status == "pass", finding


def test_monotone_fails_naming_the_attack_and_both_eps(default_model: RobustModel,
                                                       digits_test: EvalData) -> None:
    result = make_result(
        cells=[make_cell("pgd", "linf", 0.05, 0.5), make_cell("pgd", "linf", 0.1, 0.6),
               make_cell("pgd", "linf", 0.2, 0.7), make_cell("pgd", "l2", 1.0, 0.2)],
        robust_accuracy=_worst((0.05, 0.5), (0.1, 0.5), (0.2, 0.5)))
    finding = MonotoneCheck().run(result_context(default_model, digits_test, result=result))
    assert finding is not None and finding.status == "fail"
    assert finding.message.startswith("pgd accuracy rises from 50.0% at Linf 0.05 to 70.0% "
                                      "at eps=0.2")
    assert finding.details["eps_small"] == 0.05 and finding.details["eps_large"] == 0.2


def test_monotone_fails_on_the_worst_case(default_model: RobustModel,
                                          digits_test: EvalData) -> None:
    result = make_result(robust_accuracy=_worst((0.5, 0.3), (1.0, 0.35), norm="l2"))
    finding = MonotoneCheck().run(result_context(default_model, digits_test, result=result))
    assert finding is not None and finding.status == "fail"
    assert finding.message.startswith("worst case accuracy rises from 30.0% at L2 0.5")


def test_monotone_in_cascade_mode_reads_only_the_worst_case(default_model: RobustModel,
                                                            digits_test: EvalData) -> None:
    cells = [make_cell("square", "linf", 0.05, 0.4), make_cell("square", "linf", 0.1, 0.6)]
    cascade = make_result(cells=cells, robust_accuracy=_worst((0.05, 0.4), (0.1, 0.3)),
                          mode="fast (cascade)")
    finding = MonotoneCheck().run(result_context(default_model, digits_test, result=cascade))
    assert finding is not None and finding.status == "pass"
    assert "cascade" in finding.message and finding.details["series"] == 1
    cascade.robust_accuracy = _worst((0.05, 0.4), (0.1, 0.6))
    finding = MonotoneCheck().run(result_context(default_model, digits_test, result=cascade))
    assert finding is not None and finding.status == "fail"


def test_monotone_does_not_apply_to_a_single_eps(default_model: RobustModel,
                                                 digits_test: EvalData) -> None:
    result = make_result(cells=[make_cell("pgd", "linf", 0.1, 0.6),
                                make_cell("pgd", "l2", 1.0, 0.5)],
                         robust_accuracy=_worst((0.1, 0.6)))
    assert MonotoneCheck().run(result_context(default_model, digits_test,
                                              result=result)) is None


# --- iterative-beats-single-step -------------------------------------------------------------


def test_iterative_passes_when_pgd_is_stronger(default_model: RobustModel,
                                               digits_test: EvalData) -> None:
    outcomes = [outcome(FGSM(), LINF, 70), outcome(PGD(), LINF, 55),
                outcome(PGD(steps=50), LINF, 50), outcome(FGM(), L2, 80),
                outcome(PGD(), L2, 81)]  # one sample of noise at L2
    finding = IterativeCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "pass", finding
    assert finding.details["threat_models"] == 2
    assert finding.details["threat"] == "L2 1"  # the closest call
    assert finding.details["single_step_wins"] == 1


def test_iterative_fails_when_fgsm_is_stronger(default_model: RobustModel,
                                               digits_test: EvalData) -> None:
    outcomes = [outcome(FGSM(), LINF, 40), outcome(PGD(), LINF, 55),
                outcome(SquareAttack(), LINF, 10)]
    finding = IterativeCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "fail"
    assert finding.message == ("at Linf 0.1 fgsm broke 15 of 100 samples that the strongest "
                               "iterative attack (pgd) left robust, pgd 0 that fgsm left "
                               "robust: gradient masking or a broken iterative attack")


def test_iterative_in_cascade_mode_counts_what_the_later_attack_broke(
        default_model: RobustModel, digits_test: EvalData) -> None:
    # Cascade order pgd, then fgsm on the samples pgd left robust.
    outcomes = [outcome(PGD(), LINF, 50), outcome(FGSM(), LINF, 45, attacked=50)]
    finding = IterativeCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "fail"
    assert finding.details["single_step_wins"] == 5 and finding.details["samples"] == 100
    # Two samples of three leftovers are 2% of the samples attacked, not 67%.
    outcomes = [outcome(PGD(), LINF, 3), outcome(FGSM(), LINF, 1, attacked=3)]
    finding = IterativeCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "pass", finding


@pytest.mark.parametrize("attacks", [[FGSM(), SquareAttack()], [PGD(), NoiseAttack()]],
                         ids=["no iterative", "no single-step"])
def test_iterative_does_not_apply_without_both_kinds(attacks: list[Attack],
                                                     default_model: RobustModel,
                                                     digits_test: EvalData) -> None:
    outcomes = [outcome(attack, LINF, 50) for attack in attacks]
    assert IterativeCheck().run(result_context(default_model, digits_test, outcomes)) is None


# --- white-box-beats-black-box ---------------------------------------------------------------


def test_white_box_passes_when_gradients_break_everything_square_breaks(
        default_model: RobustModel, digits_test: EvalData) -> None:
    outcomes = [outcome(PGD(), LINF, range(50)), outcome(FGSM(), LINF, range(60)),
                outcome(SquareAttack(), LINF, range(1, 60)),  # breaks sample 0 alone
                outcome(NoiseAttack(), LINF, range(95))]
    finding = WhiteBoxCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "pass", finding
    assert finding.details["comparisons"] == 2


def test_white_box_fails_when_square_breaks_what_gradients_miss(
        default_model: RobustModel, digits_test: EvalData) -> None:
    outcomes = [outcome(PGD(), LINF, range(50)), outcome(FGSM(), LINF, range(60)),
                outcome(SquareAttack(), LINF, range(4, 60))]
    finding = WhiteBoxCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "fail"
    assert finding.message == ("square broke 4 samples (4.0% of 100) at Linf 0.1 that every "
                               "gradient attack left robust: gradient masking")
    outcomes[2] = outcome(SquareAttack(), LINF, range(3, 60))  # 3%: within the margin
    finding = WhiteBoxCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "pass"


def test_white_box_in_cascade_mode_counts_against_all_samples_attacked(
        default_model: RobustModel, digits_test: EvalData) -> None:
    # pgd and fgsm ran first; square only on the 4 samples both left robust, breaking one:
    # 1% of the 100 samples the gradient attacks attacked, not 25% of square's 4.
    outcomes = [outcome(PGD(), LINF, 10), outcome(FGSM(), LINF, 4, attacked=10),
                outcome(SquareAttack(), LINF, 3, attacked=4)]
    finding = WhiteBoxCheck().run(result_context(default_model, digits_test, outcomes))
    assert finding is not None and finding.status == "pass", finding
    assert finding.details["broken_only_by_it"] == 1 and finding.details["samples"] == 100


def _transfer_row(source: str, target: str, accuracy: float) -> dict[str, object]:
    return {"source": source, "target": target, "norm": "linf", "eps": 0.1,
            "accuracy": accuracy, "source_success": 0.3}


@pytest.mark.parametrize(("accuracy", "status"), [(0.45, "pass"), (0.40, "fail")])
def test_white_box_compares_transfer_into_the_model(accuracy: float, status: str,
                                                    default_model: RobustModel,
                                                    digits_test: EvalData) -> None:
    # pgd leaves 45% of the samples robust; fgsm 60%.
    outcomes = [outcome(PGD(), LINF, 45), outcome(FGSM(), LINF, 60)]
    result = make_result(transfer=[
        _transfer_row("digits-cnn", "digits-cnn", 0.10),  # the diagonal: white-box
        _transfer_row("digits-cnn", "surrogate", 0.05),  # into another model
        _transfer_row("surrogate", "digits-cnn", accuracy)])
    finding = WhiteBoxCheck().run(result_context(default_model, digits_test, outcomes, result))
    assert finding is not None and finding.status == status, finding
    assert finding.details["comparisons"] == 1
    assert finding.details["white_box_accuracy"] == 0.45
    assert "examples transferred from surrogate leave" in finding.message


def test_white_box_transfer_in_cascade_mode_uses_the_worst_case(
        default_model: RobustModel, digits_test: EvalData) -> None:
    result = make_result(mode="fast (cascade)",
                         robust_accuracy=[ThreatSummary("linf", 0.1, 0.38, ["pgd"])],
                         transfer=[_transfer_row("surrogate", "digits-cnn", 0.40)])
    finding = WhiteBoxCheck().run(result_context(default_model, digits_test, [], result))
    assert finding is not None and finding.status == "pass"
    assert finding.details["white_box_accuracy"] == 0.38


def test_white_box_does_not_apply_without_a_comparison(default_model: RobustModel,
                                                       digits_test: EvalData) -> None:
    outcomes = [outcome(PGD(), LINF, 45), outcome(SquareAttack(), L2, 40)]
    result = make_result(transfer=[_transfer_row("digits-cnn", "digits-cnn", 0.45)])
    assert WhiteBoxCheck().run(result_context(default_model, digits_test, outcomes,
                                              result)) is None


# --- eps-zero --------------------------------------------------------------------------------


def test_eps_zero_passes_on_the_default_model(default_model: RobustModel,
                                              digits_test: EvalData) -> None:
    context = probe_context(default_model, digits_test, [FGSM(), PGD(steps=5)], [LINF, L2])
    finding = EpsZeroCheck().run(context)
    assert finding is not None and finding.status == "pass", finding
    assert finding.details == {"samples": 64, "changed_linf": 0, "changed_l2": 0}
    assert "fgsm at Linf, pgd at L2" in finding.message  # first gradient attack per norm


def test_eps_zero_runs_the_strongest_gradient_attack(default_model: RobustModel,
                                                     digits_test: EvalData) -> None:
    n = len(digits_test.x)
    outcomes = [outcome(FGSM(), LINF, 300, n=n), outcome(PGD(steps=5), LINF, 200, n=n),
                outcome(SquareAttack(), LINF, 100, n=n)]
    context = probe_context(default_model, digits_test, [FGSM(), PGD(steps=5)], [LINF],
                            outcomes)
    finding = EpsZeroCheck().run(context)
    assert finding is not None and finding.status == "pass"
    assert "(pgd at Linf)" in finding.message


def test_eps_zero_fails_on_a_randomised_model(default_model: RobustModel,
                                              digits_test: EvalData) -> None:
    torch.manual_seed(0)
    noisy = wrapped(default_model, NoisyLogits)
    finding = EpsZeroCheck().run(probe_context(noisy, digits_test, [PGD(steps=5)], [LINF]))
    assert finding is not None and finding.status == "fail"
    assert finding.details["changed_linf"] > 10
    assert finding.message.startswith(f"pgd at Linf eps=0 changed "
                                      f"{finding.details['changed_linf']} of 64 correctly "
                                      "classified predictions")


def test_eps_zero_needs_a_gradient_attack(default_model: RobustModel,
                                          digits_test: EvalData) -> None:
    context = probe_context(default_model, digits_test, [SquareAttack(), NoiseAttack()],
                            [LINF])
    assert EpsZeroCheck().run(context) is None


# --- large-eps -------------------------------------------------------------------------------


def test_large_eps_passes_on_the_default_model(default_model: RobustModel,
                                               digits_test: EvalData) -> None:
    threats = [LINF, L2, ThreatModel(Norm.L1, 2.0)]
    finding = LargeEpsCheck().run(probe_context(default_model, digits_test, [], threats))
    assert finding is not None and finding.status == "pass", finding
    assert finding.details["eps_l2"] == 8.0 and finding.details["eps_l1"] == 64.0
    assert finding.details["accuracy_linf"] == 0.0


def test_large_eps_fails_when_gradients_are_zero(default_model: RobustModel,
                                                 digits_test: EvalData) -> None:
    quantised = wrapped(default_model, Quantised)
    finding = LargeEpsCheck().run(probe_context(quantised, digits_test, [], [LINF]))
    assert finding is not None and finding.status == "fail"
    assert finding.message.startswith("with Linf eps = 1 (the whole pixel range) 100% of 64 "
                                      "samples stay correct under pgd")


def test_large_eps_attacks_through_the_audits_adaptations(default_model: RobustModel,
                                                          digits_test: EvalData) -> None:
    context = probe_context(wrapped(default_model, Quantised), digits_test, [], [LINF])
    context.adaptations.append(Adaptation("bpda", "step function", straight_through))
    finding = LargeEpsCheck().run(context)
    assert finding is not None and finding.status == "pass", finding
    assert "pgd+bpda" in finding.message


# --- converged -------------------------------------------------------------------------------


def test_doubled_doubles_steps_and_restarts() -> None:
    more = doubled(PGD(steps=3, restarts=2, rel_step_size=0.1))
    assert isinstance(more, PGD)
    assert more.params == PGD(steps=6, restarts=4, rel_step_size=0.1).params
    through = doubled(adapted(PGD(steps=3), [Adaptation("eot", "random", lambda f: f)]))
    assert through is not None and through.name == "pgd+eot"
    assert through.params["steps"] == 6 and through.params["restarts"] == 2
    assert doubled(FGSM()) is None
    assert doubled(WorstCaseEnsemble([PGD()])) is None


def _converged(model: RobustModel, data: EvalData, attacks: Sequence[Attack],
               threats: Sequence[ThreatModel] = (LINF_HALF, LINF)) -> CheckContext:
    n = len(data.x)
    outcomes = [outcome(attack, threat, 250 - 10 * index, n=n)
                for threat in threats for index, attack in enumerate(attacks)]
    return probe_context(model, data, attacks, threats, outcomes)


def test_converged_passes_for_a_converged_pgd(default_model: RobustModel,
                                              digits_test: EvalData) -> None:
    context = _converged(default_model, digits_test, [FGSM(), PGD(steps=20)])
    finding = ConvergenceCheck().run(context)
    assert finding is not None and finding.status == "pass", finding
    assert finding.details["threat"] == "Linf 0.1"  # digits' standard eps: the headline
    assert finding.details["accuracy"] - finding.details["accuracy_doubled"] <= 0.05


def test_converged_warns_when_doubling_helps(default_model: RobustModel,
                                            digits_test: EvalData) -> None:
    # Three steps of eps/4 from a random start barely leave the start; six do much better
    # (measured: 86% of the probe batch correct after 3 steps, about 65% after 6 x 2).
    context = _converged(default_model, digits_test, [PGD(steps=20), PGD(steps=3)])
    finding = ConvergenceCheck().run(context)
    assert finding is not None and finding.status == "warn", finding
    assert finding.message.startswith("pgd had not converged: doubling steps and restarts "
                                      "lowers accuracy from 86%")
    assert "steps=6" in finding.details["doubled"]
    assert "restarts=2" in finding.details["doubled"]


@pytest.mark.parametrize("attacks", [[FGSM(), SquareAttack()], [WorstCaseEnsemble([PGD()])]],
                         ids=["no iterative attack", "no steps or restarts"])
def test_converged_does_not_apply(attacks: list[Attack], default_model: RobustModel,
                                  digits_test: EvalData) -> None:
    assert ConvergenceCheck().run(_converged(default_model, digits_test, attacks)) is None


# --- all six on a real audit -----------------------------------------------------------------


def test_no_false_alarm_on_the_default_model(default_model: RobustModel,
                                             digits_test: EvalData) -> None:
    result = run_audit(default_model, digits_test, [FGSM(), PGD(), NoiseAttack()],
                       [LINF_HALF, LINF], AuditSettings(show_progress=False, examples=0), [],
                       checks=[check() for check in EVALUATION_CHECKS])
    statuses = {finding.name: finding.status for finding in result.checks}
    assert statuses == {check.name: "pass" for check in EVALUATION_CHECKS}, result.checks
