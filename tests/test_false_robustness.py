"""False-robustness detection end to end: each gradient-masking trap makes its check fire and
the adaptive fallbacks bring the worst case back to (at most a few points above) the
unwrapped model's; honest models raise no alarm."""

from __future__ import annotations

import pytest
from trap_models import default_digits_module, pgd_trained_model, robust_model, trap_models

from robustbench_lite.api import audit
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import AuditResult

pytestmark = pytest.mark.slow

#: Worst case of a trap may exceed the unwrapped model's by this much (2 of 3 fallbacks
#: change the loss landscape a little; quantising can also make the model truly weaker).
MARGIN = 0.05

TRAP_ATTACKS = ("fgsm", "pgd")
HONEST_ATTACKS = ("fgsm", "pgd", "square:n_queries=300", "noise")

#: The check each trap must fire, and the fallback tag its adaptive cells carry.
EXPECTED = {
    "quantized": ("differentiable preprocessing", "bpda"),
    "jpeg": ("differentiable preprocessing", "bpda"),
    "huge-temperature": ("input gradients", "rescaled"),
    "random-noise": ("deterministic model", "eot"),
    "probabilities": ("logits, not probabilities", "log"),
}


@pytest.fixture(scope="module")
def data(digits_test: EvalData) -> EvalData:
    return digits_test.subset(150)


_RESULTS: dict[tuple[str, tuple[str, ...]], AuditResult] = {}


def run(model: RobustModel, data: EvalData, attacks: tuple[str, ...]) -> AuditResult:
    """The audit of ``model`` with ``attacks`` at Linf 0.05 and 0.1, once per test run."""
    key = (model.name, attacks)
    if key not in _RESULTS:
        _RESULTS[key] = audit(model, data, attacks=list(attacks), threats=["linf:0.05,0.1"],
                              transfer=False, examples=0)
    return _RESULTS[key]


def worst(result: AuditResult, eps: float = 0.1) -> float:
    return next(row.accuracy for row in result.robust_accuracy if row.eps == eps)


@pytest.mark.parametrize("trap", sorted(EXPECTED))
def test_trap_fires_its_check_and_the_fallback_finds_the_true_accuracy(
        trap: str, data: EvalData) -> None:
    inner = default_digits_module()
    baseline = run(robust_model(inner, "unwrapped"), data, TRAP_ATTACKS)
    result = run(trap_models(inner)[trap], data, TRAP_ATTACKS)
    check, tag = EXPECTED[trap]
    statuses = {finding.name: finding.status for finding in result.checks}
    assert statuses[check] in ("warn", "fail"), result.checks
    adaptive = [cell for cell in result.cells if cell.attack.endswith(f"+{tag}")]
    assert {cell.attack for cell in adaptive} == {f"{name}+{tag}" for name in TRAP_ATTACKS}
    assert worst(result) <= worst(baseline) + MARGIN, (worst(result), worst(baseline))


@pytest.mark.parametrize("honest", ["default", "pgd-trained"])
def test_honest_models_raise_no_alarm(honest: str, data: EvalData,
                                      default_model: RobustModel) -> None:
    model = default_model if honest == "default" else pgd_trained_model()
    result = run(model, data, HONEST_ATTACKS)
    alarms = [(check.name, check.status, check.message) for check in result.checks
              if check.status != "pass"]
    assert not alarms
    assert len(result.checks) >= 13  # every built-in check ran
    assert not [cell for cell in result.cells if "+" in cell.attack]  # no fallback needed


def test_pgd_training_is_visible(data: EvalData, default_model: RobustModel) -> None:
    assert worst(run(pgd_trained_model(), data, HONEST_ATTACKS)) \
        > worst(run(default_model, data, HONEST_ATTACKS)) + 0.1
