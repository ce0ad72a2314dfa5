"""Objectives: what an attack maximises, and how the host decides it succeeded.

An `Objective` is bound to one batch: it holds the per-sample state the goal needs (true
labels, target classes, reference embeddings) and is indexed like the batch. Attacks see the
model only as a function from images to outputs (`ModelFn`) and the goal only through the
objective, so one PGD serves every task whose objectives it can use.

Every objective offers `loss` (differentiable, per sample, to maximise), `success` (the
host's test, per sample) and `margin` (per sample, at most 0 exactly where `success` holds;
score-based attacks minimise it). Anything more is a *capability* named in ``offers``
(classification offers ``dlr``, ``class-rounds``, ``labels`` or ``targets``); an attack
names the capabilities it needs in ``Attack.requires``, and the host skips a cell whose
objective lacks one, with the reason.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch

#: What an attack may call: images in [0, 1] to the model's outputs (logits, embeddings...).
ModelFn = Callable[[torch.Tensor], torch.Tensor]

SomeObjective = TypeVar("SomeObjective", bound="Objective")


class Objective(ABC):
    """One batch's adversarial goal. Subclasses are frozen dataclasses whose tensor fields
    hold one entry per sample (first dimension), so `select` can index them all."""

    #: The objective's name within its task (``untargeted``, ``targeted``, ``dodging``).
    name: ClassVar[str]
    #: Capabilities beyond loss, success and margin, for attacks that need them.
    offers: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-sample loss to maximise, differentiable in ``outputs``."""

    @abstractmethod
    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-sample bool: the goal is reached on these outputs."""

    @abstractmethod
    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-sample value that is at most 0 exactly where `success` holds (to minimise)."""

    def select(self: SomeObjective, index: torch.Tensor) -> SomeObjective:
        """The objective of the samples ``index`` (a bool mask or integer indices)."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} is not a dataclass: override select()")
        changes = {f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **changes)

    def __len__(self) -> int:
        if dataclasses.is_dataclass(self):
            for f in dataclasses.fields(self):
                value = getattr(self, f.name)
                if isinstance(value, torch.Tensor):
                    return len(value)
        raise TypeError(f"{type(self).__name__} has no per-sample tensor: override __len__()")


def missing_capabilities(needed: frozenset[str], objective: type[Objective]) -> list[str]:
    """The capabilities in ``needed`` that ``objective`` does not offer, sorted."""
    return sorted(needed - objective.offers)
