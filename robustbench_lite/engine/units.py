"""Units of work: one attack at one threat model on one shard of the data.

A unit is independent of every other one (in cascade mode, of every unit outside its own
cascade), so an executor may run units in any order or place; its `UnitKey` says exactly
what it computes, which is how the result store recognises finished work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.attacks.base import Attack
from robustbench_lite.engine.keys import UnitKey
from robustbench_lite.threat import ThreatModel

#: ``context`` of a unit that measures per-sample minimal distances (minimum-norm attacks).
MINIMAL_CONTEXT = "minimal distances"


@dataclass(frozen=True)
class WorkUnit:
    """``attack`` at ``threat`` on samples ``[start, stop)``, attacking only the samples
    where ``attack_mask`` (over the shard) is True."""

    attack: Attack
    threat: ThreatModel
    start: int
    stop: int
    attack_mask: torch.Tensor
    key: UnitKey

    @property
    def minimal(self) -> bool:
        return self.key.context == MINIMAL_CONTEXT


def unit_key(attack: Attack, threat: ThreatModel, model_sha256: str, data_sha256: str,
             seed: int, start: int, stop: int, context: str = "") -> UnitKey:
    return UnitKey(model_sha256=model_sha256, data_sha256=data_sha256, attack=attack.name,
                   params=attack.params, norm=threat.norm.value, eps=threat.eps,
                   targeted=threat.targeted, seed=seed, shard_start=start, shard_stop=stop,
                   context=context)


def shards(n_samples: int, shard_size: int | None) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``n_samples`` (one shard when ``shard_size`` is None)."""
    size = shard_size or n_samples
    return [(start, min(start + size, n_samples)) for start in range(0, n_samples, size)]
