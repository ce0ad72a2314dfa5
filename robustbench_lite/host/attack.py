"""Run one attack on one batch as the host: seed it, count its queries, verify its output
and judge it with the task. A plugin's exception or a cheat affects only its own cell.

The attack receives copies of the clean batch and of the objective; the host verifies and
judges against its own copies, so an attack that writes into its inputs changes nothing
but its own answer.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from robustbench_lite.attacks.base import Attack
from robustbench_lite.host.expectation import score_over_draws
from robustbench_lite.host.verify import verify_batch
from robustbench_lite.tasks.base import Task
from robustbench_lite.tasks.classification.task import ClassificationTask
from robustbench_lite.tasks.objective import ModelFn
from robustbench_lite.threat import ThreatModel

#: The task `attack_batch` judges with when none is given.
CLASSIFICATION = ClassificationTask()


class QueryCounter:
    """Wraps a model function and counts the samples it is asked to evaluate."""

    def __init__(self, model: ModelFn) -> None:
        self.model = model
        self.queries = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        return self.model(x)


@dataclass(frozen=True)
class BatchResult:
    """What the host made of one attacked batch (after Foolbox 3's result triple).

    ``x_adv`` holds the clean image wherever the attack's output was not valid; ``outputs``
    are the model's outputs on ``x_adv``; ``success`` says where the objective was reached
    and ``correct`` where the task still judges the model right (both re-computed by the
    host; a NaN or infinite output is never correct and never a reached target);
    ``problems`` describes invalid samples; ``queries`` counts the attack's model
    evaluations; ``non_finite`` counts outputs holding NaN or inf. For a randomised model
    (``draws`` > 1) ``expectation`` holds the ``(3, n)`` per-sample scores of
    `robustbench_lite.host.expectation` and ``correct``/``success`` are their majority."""

    x_adv: torch.Tensor
    outputs: torch.Tensor
    success: torch.Tensor
    correct: torch.Tensor
    valid: torch.Tensor
    problems: tuple[str, ...]
    queries: int
    non_finite: int = 0
    expectation: torch.Tensor | None = None


def batch_seed(seed: int, attack: Attack, threat: ThreatModel, batch_start: int) -> int:
    """A seed that depends on the run seed, the cell and the batch, not on run order."""
    key = f"{seed}|{attack.name}|{sorted(attack.params.items())}|{threat}|{batch_start}"
    return zlib.crc32(key.encode())


def attack_batch(attack: Attack, model: ModelFn, x: torch.Tensor, labels: torch.Tensor,
                 threat: ThreatModel, seed: int, *, task: Task = CLASSIFICATION,
                 targets: torch.Tensor | None = None, draws: int = 1) -> BatchResult:
    """Attack ``x`` (on the model's device) toward ``task``'s objective at ``threat``
    (``targets``: the host's targets, for targeted threat models); exceptions from the
    attack propagate. ``model`` maps images to outputs (a `RobustModel`). With ``draws`` >
    1 (a randomised model) every example is judged in expectation over that many draws."""
    clean = x.detach().clone()
    truth = labels.detach().clone()
    goal = task.objective(threat, truth, None if targets is None else targets.detach().clone())
    handed = task.objective(threat, truth.clone(),
                            None if targets is None else targets.detach().clone())
    counter = QueryCounter(model)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    x_adv = attack.run(counter, clean.clone(), handed, threat, generator)
    verification = verify_batch(clean, x_adv, threat)
    valid = verification.valid
    checked = clean.clone()
    if isinstance(x_adv, torch.Tensor) and bool(valid.any()):
        checked[valid] = x_adv.detach().to(x.device)[valid]
    with torch.no_grad():
        outputs = model(checked)
    finite = torch.isfinite(outputs.flatten(1)).all(dim=1)
    correct = task.correct(outputs, truth) & finite  # whatever the task says about NaN
    success = goal.success(outputs)
    scores = None
    if draws > 1:
        judged = score_over_draws(model, checked, lambda out: task.correct(out, truth),
                             goal.success, draws)
        correct, success, scores = judged.fresh >= 0.5, judged.success >= 0.5, \
            judged.stacked()
    return BatchResult(checked, outputs, success, correct, valid, verification.problems,
                       counter.queries, int((~finite).sum()), scores)
