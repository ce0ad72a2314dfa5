"""Tasks as plugins: a third-party task ("is the digit even?") audits end to end through the
engine, generic attacks serve its objective, and attacks that need more are skipped with
the reason."""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import robustbench_lite
from robustbench_lite.api import audit
from robustbench_lite.catalogue import build_catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import ModelDataMismatchError, PluginError, ThreatModelError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.reports.render import render_html
from robustbench_lite.tasks import Objective, Task
from robustbench_lite.threat import Norm, ThreatModel


def _parity_scores(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-sum-exp of the even and of the odd digits' logits."""
    return outputs[:, 0::2].logsumexp(dim=1), outputs[:, 1::2].logsumexp(dim=1)


@dataclass(frozen=True)
class FlipParity(Objective):
    """Make the model's top digit of the other parity than the true one (0 even, 1 odd)."""

    parity: torch.Tensor

    name = "flip-parity"

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        even, odd = _parity_scores(outputs)
        return torch.where(self.parity == 0, odd - even, even - odd)

    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1) % 2 != self.parity

    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        best_even = outputs[:, 0::2].amax(dim=1)
        best_odd = outputs[:, 1::2].amax(dim=1)
        own_minus_other = best_even - best_odd
        return torch.where(self.parity == 0, own_minus_other, -own_minus_other)


class EvenDigitTask(Task):
    """Is the digit even? Judged on a 10-class digits model's top class."""

    name = "even-digit"
    description = "digit logits; correct when the top digit has the label's parity"

    def check(self, outputs: torch.Tensor, data: EvalData) -> None:
        if outputs.shape[1] != 10:
            raise ModelDataMismatchError("even-digit needs 10 digit logits")

    def correct(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1) % 2 == labels % 2

    def objective_type(self, threat: ThreatModel) -> type[Objective]:
        if threat.targeted:
            raise ThreatModelError("task 'even-digit' has no targeted objective")
        return FlipParity

    def objective(self, threat: ThreatModel, labels: torch.Tensor,
                  targets: torch.Tensor | None) -> Objective:
        return FlipParity(labels % 2)

    def explain(self, outputs: torch.Tensor, class_names: Sequence[str]
                ) -> list[tuple[str, float]]:
        probabilities = torch.softmax(outputs, dim=1)
        even = probabilities[:, 0::2].sum(dim=1)
        return [("even", float(p)) if p >= 0.5 else ("odd", 1 - float(p)) for p in even]

    def label_name(self, label: int, class_names: Sequence[str]) -> str:
        return "even" if label % 2 == 0 else "odd"

    def metrics(self, clean_outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return {"share_predicted_even": float((clean_outputs.argmax(dim=1) % 2 == 0)
                                              .float().mean())}


def _plugin(*tasks: type[Task]) -> types.ModuleType:
    module = types.ModuleType("even_digit_plugin")

    def register_tasks(register: Callable[[Any], None]) -> None:
        for task in tasks:
            register(task)

    module.register_tasks = robustbench_lite.hookimpl(register_tasks)  # type: ignore[attr-defined]
    return module


def test_a_third_party_task_audits_end_to_end(default_model: RobustModel,
                                              digits_test: EvalData) -> None:
    manager = get_plugin_manager(load_entrypoints=False,
                                 extra_plugins=(_plugin(EvenDigitTask),))
    data = digits_test.subset(120)
    result = audit(default_model, data, task="even-digit", manager=manager,
                   attacks=["fgsm", "pgd:steps=20", "apgd-ce:steps=20", "square:n_queries=300",
                            "noise", "apgd-dlr:steps=20"],
                   threats=["linf:0.3", "linf:0.3:targeted"], transfer=False, examples=2)
    assert result.task.name == "even-digit"
    assert 0 < result.task.metrics["share_predicted_even"] < 1
    parity_right = float(((default_model.predict(data.x) % 2) == (data.y % 2)).float().mean())
    assert result.clean_accuracy == pytest.approx(parity_right)
    cells = {(c.attack, c.targeted): c for c in result.cells}
    for generic in ("fgsm", "pgd", "apgd-ce", "square", "noise"):
        cell = cells[(generic, False)]
        assert cell.error is None and cell.skipped is None, (generic, cell)
        assert cell.objective == "flip-parity"
    # The gradient attacks flip the parity of nearly every digit at this budget, as the host
    # judges it (the task's correct(), re-predicted), and beat the noise baseline.
    for strong in ("pgd", "apgd-ce"):
        assert cells[(strong, False)].success_rate >= 0.9
        assert cells[(strong, False)].accuracy <= 0.1
    assert cells[("noise", False)].success_rate < cells[("pgd", False)].success_rate
    assert "dlr" in cells[("apgd-dlr", False)].skipped
    assert all("no targeted objective" in cells[(name, True)].skipped
               for name in ("fgsm", "pgd", "apgd-ce", "square", "noise", "apgd-dlr"))
    assert result.examples and {e.true_label for e in result.examples} <= {"even", "odd"}
    assert "Task <strong>even-digit</strong>" in render_html(result)


def test_the_host_judges_a_task_with_its_own_test(default_model: RobustModel,
                                                  tiny_batch: tuple[torch.Tensor, torch.Tensor]
                                                  ) -> None:
    from robustbench_lite.attacks.pgd import PGD

    x, y = tiny_batch
    outcome = attack_batch(PGD(steps=20), default_model, x, y, ThreatModel(Norm.LINF, 0.3), 0,
                           task=EvenDigitTask())
    flipped = default_model(outcome.x_adv).argmax(dim=1) % 2 != y % 2
    assert torch.equal(outcome.success, flipped)
    assert torch.equal(outcome.correct, ~flipped)
    assert float(flipped.float().mean()) >= 0.9


def test_tasks_register_through_the_hook_and_clash_by_name() -> None:
    catalogue = build_catalogue(get_plugin_manager(load_entrypoints=False,
                                                   extra_plugins=(_plugin(EvenDigitTask),)))
    assert catalogue.tasks.names() == ["classification", "even-digit", "gan"]

    class Clash(EvenDigitTask):
        name = "classification"

    with pytest.raises(PluginError, match="registered twice"):
        build_catalogue(get_plugin_manager(load_entrypoints=False,
                                           extra_plugins=(_plugin(Clash),)))


def test_an_unknown_task_lists_the_registered_ones(default_model: RobustModel,
                                                   digits_test: EvalData) -> None:
    with pytest.raises(KeyError, match="unknown task 'parity'; choose one of: classification"):
        audit(default_model, digits_test.subset(10), task="parity", transfer=False)


def test_robust_plugins_lists_tasks() -> None:
    from click.testing import CliRunner

    from robustbench_lite.cli import cli

    listing = CliRunner().invoke(cli, ["plugins"])
    assert listing.exit_code == 0, listing.output
    assert "tasks: classification" in listing.output
    as_json = CliRunner().invoke(cli, ["plugins", "--json"])
    assert "classification" in as_json.output and "tasks" in as_json.output
