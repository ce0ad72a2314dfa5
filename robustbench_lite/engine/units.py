"""Units of work: one attack at one threat model on one shard of the data, for one task.

A unit is independent of every other one (in cascade mode, of every unit outside its own
cascade), so an executor may run units in any order or place; its `UnitKey` says exactly
what it computes, which is how the result store recognises finished work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.attacks.base import Attack
from robustbench_lite.engine.keys import UnitKey
from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel

#: ``context`` of a unit that measures per-sample minimal distances (minimum-norm attacks).
MINIMAL_CONTEXT = "minimal distances"


@dataclass(frozen=True)
class WorkUnit:
    """``attack`` at ``threat`` on samples ``[start, stop)``, attacking only the samples
    where ``attack_mask`` (over the shard) is True, judged by ``task``; ``targets`` (over
    the shard) are the host's targets of a targeted threat model."""

    attack: Attack
    threat: ThreatModel
    start: int
    stop: int
    attack_mask: torch.Tensor
    key: UnitKey
    task: Task
    targets: torch.Tensor | None = None

    @property
    def minimal(self) -> bool:
        return self.key.context == MINIMAL_CONTEXT


def implementation_versions(attack: Attack, task: Task, draws: int = 1) -> dict[str, str | int]:
    """What computed a unit: the package version, the attack's and task's versions and, for
    a randomised model, the number of draws each example was judged over."""
    from robustbench_lite import __version__

    versions: dict[str, str | int] = {"robustbench_lite": __version__,
                                      "attack": attack.version, "task": task.version}
    if draws > 1:
        versions["draws"] = draws
    return versions


def unit_key(attack: Attack, threat: ThreatModel, task: Task, objective: str,
             model_sha256: str, data_sha256: str, seed: int, start: int, stop: int,
             context: str = "", draws: int = 1) -> UnitKey:
    """The key of a unit; ``objective`` names the objective and, for a targeted threat
    model, the target mode and the digest of the targets (`engine.targets`); ``draws`` the
    forward draws per judged example (randomised models)."""
    return UnitKey(model_sha256=model_sha256, data_sha256=data_sha256, attack=attack.name,
                   params=attack.params, norm=threat.norm.value, eps=threat.eps,
                   targeted=threat.targeted, seed=seed, shard_start=start, shard_stop=stop,
                   context=context, task=task.name, objective=objective,
                   versions=implementation_versions(attack, task, draws))


def shards(n_samples: int, shard_size: int | None) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``n_samples`` (one shard when ``shard_size`` is None)."""
    size = shard_size or n_samples
    return [(start, min(start + size, n_samples)) for start in range(0, n_samples, size)]
