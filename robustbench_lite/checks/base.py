"""Sanity checks of an audit: the `Check` plugin class, what a check sees (`CheckContext`)
and how a check that finds gradient masking adapts the attacks (`Adaptation`).

A check runs at one of two stages. ``before`` checks probe the model on a small batch of
correctly classified samples before any attack runs; they may ask for an `Adaptation`, and
the audit then runs every gradient attack a second time through it (as ``NAME+TAG`` cells
that count in the worst case). ``after`` checks read the finished cells and may run small
extra attacks on the probe batch. Each returns a `SanityCheck` (pass / warn / fail, one
line, the numbers behind it), or None where it does not apply (say, no single-step attack
ran).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.host.attack import CLASSIFICATION, BatchResult, attack_batch, batch_seed
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import AuditResult, SanityCheck
from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel

#: Samples (correctly classified ones, in data order) that checks probe and re-attack.
PROBE_SAMPLES = 64

#: ``batch_start`` of the seeds of checks' extra attacks; no audit batch starts there.
CHECK_BATCH = -2


class CheckStage(str, Enum):
    BEFORE = "before"
    AFTER = "after"


@dataclass(frozen=True)
class Adaptation:
    """A change of the model as gradient attacks see it (never as the host judges success):
    ``wrap`` turns the model function into the one the attack differentiates. ``tag`` names
    the adapted cells (``pgd+eot``); ``reason`` says why, in one line. Adaptations wrap the
    model in order of ``layer``, lowest (closest to the model) first."""

    tag: str
    reason: str
    wrap: Callable[[LogitsFn], LogitsFn]
    layer: int = 50


@dataclass(frozen=True)
class CellOutcome:
    """One finished cell's per-sample outcome over the evaluation data: ``robust`` (the
    sample withstood the attack: untargeted, still correct; targeted, its target not
    reached) and ``attacked`` (it was attacked: correct on clean input, with a target for a
    targeted threat model, and in cascade mode left robust by earlier attacks). For a
    randomised model ``robust`` is the majority of the draws and ``expected`` holds each
    sample's fresh expected correctness (`robustbench_lite.host.expectation`)."""

    attack: Attack
    threat: ThreatModel
    robust: np.ndarray
    attacked: np.ndarray
    expected: np.ndarray | None = None


def broken(outcome: CellOutcome) -> int:
    """Samples the attack broke."""
    return int((outcome.attacked & ~outcome.robust).sum())


def strongest(outcomes: Iterable[CellOutcome]) -> CellOutcome | None:
    """The outcome that broke the most samples (the first of equals; None if none attacked
    any). In full mode every attack runs on the same samples, so this is the cell of lowest
    accuracy; in cascade mode it is also the attack that contributed most."""
    ran = [outcome for outcome in outcomes if outcome.attacked.any()]
    return max(ran, key=broken) if ran else None


@dataclass
class CheckContext:
    """What a check sees. ``probe_x``/``probe_y`` are up to `PROBE_SAMPLES` samples the
    task judges correct, on the model's device. ``result`` and ``outcomes`` are set for
    ``after`` checks; ``before`` checks add to ``adaptations``. ``draws`` > 1: the model is
    randomised and the host judges each example over that many forward draws;
    ``probe_clean_scores`` then holds the probe samples' fresh expected correctness on clean
    input (from the engine's clean pass; None: the checks draw it themselves)."""

    model: RobustModel
    data: EvalData
    attacks: Sequence[Attack]
    threats: Sequence[ThreatModel]
    probe_x: torch.Tensor
    probe_y: torch.Tensor
    seed: int
    task: Task = CLASSIFICATION
    draws: int = 1
    probe_clean_scores: np.ndarray | None = None
    result: AuditResult | None = None
    outcomes: list[CellOutcome] = field(default_factory=list)
    adaptations: list[Adaptation] = field(default_factory=list)
    _probe_outputs: torch.Tensor | None = field(default=None, init=False, repr=False)

    def probe_outputs(self) -> torch.Tensor:
        """The model's outputs on the probe batch: one forward pass, shared by the checks."""
        if self._probe_outputs is None:
            with torch.no_grad():
                self._probe_outputs = self.model(self.probe_x)
        return self._probe_outputs

    def robust_on_probe(self, attack: Attack, threat: ThreatModel) -> torch.Tensor:
        """Attack the probe batch through the host (seeded, verified) at the untargeted
        ``threat``; True where the task still judges the model right (randomised models: in
        the majority of the draws)."""
        return self.attack_probe(attack, threat).correct.cpu()

    def attack_probe(self, attack: Attack, threat: ThreatModel) -> BatchResult:
        """The host's whole judgement of ``attack`` on the probe batch at the untargeted
        ``threat`` (with expectation scores for a randomised model)."""
        return attack_batch(attack, self.model, self.probe_x, self.probe_y, threat,
                            batch_seed(self.seed, attack, threat, CHECK_BATCH),
                            task=self.task, draws=self.draws)

    def finished(self) -> AuditResult:
        """The finished audit; only ``after`` checks may ask."""
        if self.result is None:
            raise RuntimeError("the audit has not finished: only after-stage checks see it")
        return self.result

    def gradient_attacks(self) -> list[Attack]:
        return [attack for attack in self.attacks if attack.kind is AttackKind.GRADIENT]


class Check(ABC):
    """Base class of every sanity check (registered with ``register_checks``).

    Subclasses set ``name`` (unique, shown in the report), ``stage`` and ``description`` (one
    sentence: what it guards against) and implement `run`. A check must be constructible
    with no arguments.
    """

    name: ClassVar[str]
    stage: ClassVar[CheckStage]
    description: ClassVar[str]

    @abstractmethod
    def run(self, context: CheckContext) -> SanityCheck | None:
        """The finding, or None where the check does not apply to this audit."""
