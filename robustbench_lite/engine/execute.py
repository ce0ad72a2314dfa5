"""Run one attack on one batch as the host: seed it, count its queries, verify its output
and re-predict success. A plugin's exception or a cheat affects only its own cell."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from robustbench_lite.attacks.base import Attack
from robustbench_lite.engine.verify import verify_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.threat import ThreatModel


class QueryCounter:
    """Wraps a model and counts the samples it is asked to classify."""

    def __init__(self, model: RobustModel) -> None:
        self.model = model
        self.queries = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        return self.model(x)


@dataclass
class BatchOutcome:
    """``x_adv`` holds the clean image wherever the attack's output was not valid."""

    x_adv: torch.Tensor
    predicted: torch.Tensor
    valid: torch.Tensor
    problems: tuple[str, ...]
    queries: int


def batch_seed(seed: int, attack: Attack, threat: ThreatModel, batch_start: int) -> int:
    """A seed that depends on the run seed, the cell and the batch, not on run order."""
    key = f"{seed}|{attack.name}|{sorted(attack.params.items())}|{threat}|{batch_start}"
    return zlib.crc32(key.encode())


def attack_batch(attack: Attack, model: RobustModel, x: torch.Tensor, y: torch.Tensor,
                 threat: ThreatModel, seed: int) -> BatchOutcome:
    """Attack ``x`` (on the model's device); exceptions from the attack propagate."""
    counter = QueryCounter(model)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    x_adv = attack.run(counter, x, y, threat, generator)
    verification = verify_batch(x, x_adv, threat)
    valid = verification.valid
    checked = x.clone()
    if isinstance(x_adv, torch.Tensor) and bool(valid.any()):
        checked[valid] = x_adv.detach().to(x.device)[valid]
    with torch.no_grad():
        predicted = model(checked).argmax(dim=1)
    return BatchOutcome(checked, predicted, valid, verification.problems, counter.queries)
