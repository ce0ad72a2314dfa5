"""The host's targets for targeted threat models: chosen once per threat model, with the
run's seed, by the task (`Task.choose_targets`), and named in every unit's key."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel


@dataclass(frozen=True)
class ThreatGoal:
    """What the attacks pursue at one threat model: the objective's name, the per-sample
    targets (targeted threat models; -1 where a sample has none) and a text naming both
    for the result store."""

    objective: str
    targets: torch.Tensor | None

    @property
    def targets_sha256(self) -> str | None:
        """SHA-256 of the targets as little-endian int64 (None when untargeted)."""
        if self.targets is None:
            return None
        data = self.targets.cpu().to(torch.int64).numpy().astype("<i8").tobytes()
        return hashlib.sha256(data).hexdigest()

    @property
    def key_text(self) -> str:
        if self.targets is None:
            return self.objective
        return f"{self.objective} targets sha256:{self.targets_sha256}"

    def targetable(self, n: int) -> np.ndarray:
        """Per sample: the sample has a target (all True when untargeted)."""
        if self.targets is None:
            return np.ones(n, dtype=bool)
        return (self.targets >= 0).cpu().numpy()


def threat_goal(task: Task, threat: ThreatModel, clean_outputs: torch.Tensor,
                labels: torch.Tensor, seed: int) -> ThreatGoal:
    """The goal at ``threat``; `ThreatModelError` where the task has none there."""
    objective = task.objective_type(threat).name
    if not threat.targeted:
        return ThreatGoal(objective, None)
    generator = torch.Generator().manual_seed(zlib.crc32(f"targets|{seed}|{threat}".encode()))
    targets = task.choose_targets(threat, clean_outputs.cpu(), labels.cpu(), generator)
    return ThreatGoal(f"{objective} ({threat.targets})", targets.cpu().to(torch.int64))
