"""The checks framework: the ``register_checks`` hook, how stages run, failing checks,
adaptive fallbacks (BPDA, EOT, log, rescaling) and ``robust audit --strict``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import torch
from click.testing import CliRunner

import robustbench_lite
from robustbench_lite.api import audit
from robustbench_lite.attacks import FGSM, PGD
from robustbench_lite.attacks.base import AttackKind
from robustbench_lite.catalogue import build_catalogue
from robustbench_lite.checks.adapt import (
    adapted,
    expectation,
    log_probabilities,
    rescaled,
    straight_through,
)
from robustbench_lite.checks.base import Adaptation, Check, CheckContext, CheckStage
from robustbench_lite.checks.probes import ForwardGradientsCheck
from robustbench_lite.cli import cli
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.results import SanityCheck
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel

LINF = ThreatModel(Norm.LINF, 0.1)


def plugin(*checks: type[Check]) -> ModuleType:
    module = ModuleType("check_plugin")

    def register_checks(register: Callable[[Any], None]) -> None:
        for check in checks:
            register(check)

    module.register_checks = robustbench_lite.hookimpl(register_checks)  # type: ignore[attr-defined]
    return module


class Recorder(Check):
    """Records what each stage saw."""

    name = "recorder"
    stage = CheckStage.BEFORE
    description = "Test check."
    seen: ClassVar[list[tuple[str, int, bool]]] = []

    def run(self, context: CheckContext) -> SanityCheck:
        self.seen.append((self.stage.value, len(context.probe_x), context.result is not None))
        return SanityCheck(self.name, "pass", "seen", {"probe": len(context.probe_x)})


class AfterRecorder(Recorder):
    name = "after recorder"
    stage = CheckStage.AFTER

    def run(self, context: CheckContext) -> SanityCheck:
        result = context.finished()
        assert {outcome.attack.name for outcome in context.outcomes} == {"fgsm"}
        self.seen.append((self.stage.value, len(result.cells), True))
        return SanityCheck(self.name, "fail", "always fails", {})


class Crashing(Check):
    name = "crashing"
    stage = CheckStage.AFTER
    description = "Raises."

    def run(self, context: CheckContext) -> SanityCheck:
        raise ZeroDivisionError("oops")


class Garbage(Check):
    name = "garbage"
    stage = CheckStage.BEFORE
    description = "Returns a wrong type."

    def run(self, context: CheckContext) -> SanityCheck:
        return "fine"  # type: ignore[return-value]


class NotApplicable(Check):
    name = "not applicable"
    stage = CheckStage.AFTER
    description = "Returns None."

    def run(self, context: CheckContext) -> None:
        return None


@pytest.fixture
def manager() -> Iterator[Any]:
    Recorder.seen.clear()
    yield get_plugin_manager(load_entrypoints=False, extra_plugins=(
        plugin(Recorder, AfterRecorder, Crashing, Garbage, NotApplicable),))


def test_plugin_checks_run_at_their_stage(manager: Any, default_model: RobustModel,
                                          digits_test: EvalData,
                                          caplog: pytest.LogCaptureFixture) -> None:
    assert "recorder" in build_catalogue(manager).checks.names()
    data = digits_test.subset(80)
    correct = int((default_model.predict(data.x) == data.y).sum())
    probe = min(correct, 64)
    with caplog.at_level(logging.WARNING):
        result = audit(default_model, data, attacks=["fgsm"], threats=["linf:0.1"],
                       transfer=False, examples=0, manager=manager)
    assert Recorder.seen == [("before", probe, False), ("after", 1, True)]
    found = {check.name: check for check in result.checks}
    assert found["recorder"].details == {"probe": probe}
    assert found["after recorder"].status == "fail"
    # A check that raises or returns garbage is a note (one failure policy), not a finding.
    assert "crashing" not in found and "garbage" not in found
    notes = {note.subject: note for note in result.notes if note.stage == "checks"}
    assert notes["crashing"].status == "failed"
    assert notes["crashing"].reason == "the check itself failed: ZeroDivisionError: oops"
    assert "'fine'" in notes["garbage"].reason
    assert "not applicable" not in found
    assert "input gradients" in found  # built-ins run too
    names = [check.name for check in result.checks]
    assert names.index("recorder") < names.index("every attack ran")  # before-stage first


def test_no_checks(default_model: RobustModel, digits_test: EvalData) -> None:
    result = audit(default_model, digits_test.subset(20), attacks=["fgsm"],
                   threats=["linf:0.1"], transfer=False, examples=0, checks=False)
    assert result.checks == []


def test_straight_through_passes_gradients_of_step_functions() -> None:
    x = torch.rand(2, 5, requires_grad=True)

    def model(x: torch.Tensor) -> torch.Tensor:
        return (torch.round(x * 4) / 4).floor().detach() + x.sign() * 0 + torch.ceil(x)

    straight_through(model)(x).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.full_like(x, 2.0))
    with torch.no_grad():
        assert torch.equal(straight_through(model)(x), model(x))  # same values


def test_expectation_log_and_rescaling() -> None:
    calls: list[int] = []

    def noisy(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x * 2

    x = torch.ones(3, 4)
    assert torch.equal(expectation(5)(noisy)(x), x * 2) and len(calls) == 5
    probabilities = torch.softmax(torch.randn(3, 4), dim=1)
    assert torch.allclose(log_probabilities(lambda _: probabilities)(x).softmax(1),
                          probabilities)
    logits = torch.randn(3, 4) * 1e4
    scaled = rescaled(lambda _: logits)(x)
    assert torch.allclose(scaled.std(dim=1), torch.ones(3))
    assert torch.equal(scaled.argmax(1), logits.argmax(1))


def test_adapted_attack_is_named_ordered_and_runs_through_the_wrapper(
        default_model: RobustModel, tiny_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    order: list[str] = []

    def marking(tag: str) -> Callable[[Any], Any]:
        def wrap(model: Any) -> Any:
            def forward(x: torch.Tensor) -> torch.Tensor:
                order.append(tag)
                return model(x)
            return forward
        return wrap

    pgd = PGD(steps=3)
    attack = adapted(pgd, [Adaptation("outer", "r", marking("outer"), layer=40),
                           Adaptation("inner", "r", marking("inner"), layer=10)])
    assert attack.name == "pgd+inner+outer"
    assert attack.kind is AttackKind.GRADIENT and attack.params == pgd.params
    assert attack.supports(LINF) and adapted(FGSM(), []).single_step
    x, y = tiny_batch
    attack.run(default_model, x[:4], Misclassification(y[:4]), LINF,
               torch.Generator().manual_seed(0))
    assert order[:2] == ["outer", "inner"]  # the outer wrapper calls the inner one


@pytest.fixture
def quantized(default_model: RobustModel) -> RobustModel:
    class Quantized(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(torch.round(x * 7) / 7)

    return dataclasses.replace(default_model, module=Quantized(default_model.module))


def test_strict_exit_code_and_messages(tmp_path: Path, quantized: RobustModel,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import robustbench_lite.api as api

    real = api.open_model
    monkeypatch.setattr(api, "open_model", lambda *args, **kwargs: quantized
                        if args[0] == "quantized" else real(*args, **kwargs))
    base = ["audit", "quantized", "--data", "digits", "--n-samples", "60", "--attack", "pgd",
            "--threat", "linf:0.1", "--no-transfer", "--examples", "0", "-q"]
    lenient = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "a")])
    assert lenient.exit_code == 0, lenient.output
    assert "Check FAILED: input gradients: 100% of" in lenient.stderr
    strict = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "b"), "--strict"])
    assert strict.exit_code == 4
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert {cell["attack"] for cell in results["cells"]} == {"pgd", "pgd+bpda"}
    html = (tmp_path / "b" / "report.html").read_text()
    assert "pgd+bpda" in html and "status-fail" in html


def test_test_time_optimisation_is_flagged(default_model: RobustModel,
                                           tiny_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    class Refining(torch.nn.Module):
        """Takes one gradient step on its input's entropy before classifying."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                z = x.detach().requires_grad_(True)
                entropy = -(self.inner(z).softmax(1) * self.inner(z).log_softmax(1)).sum()
                (grad,) = torch.autograd.grad(entropy, z)
            return self.inner((x - 0.01 * grad.sign()).clamp(0, 1))

    x, y = tiny_batch
    refining = dataclasses.replace(default_model, module=Refining(default_model.module))
    for model, status in ((default_model, "pass"), (refining, "warn")):
        context = CheckContext(model=model, data=None, attacks=[], threats=[],  # type: ignore[arg-type]
                               probe_x=x, probe_y=y, seed=0)
        finding = ForwardGradientsCheck().run(context)
        assert finding.status == status, finding
    assert finding.details == {"gradient_calls": 1}
    assert torch.autograd.grad.__name__ == "grad"  # restored after the probe
