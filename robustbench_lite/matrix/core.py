"""`ThreatMatrix`: which attacks run at which threat models.

A matrix is the product of its attack specs and its threat models; the engine skips a cell
whose attack does not support the threat model and says so. Presets are `MatrixPreset`
objects registered through ``register_threat_matrices``; they build a matrix for a data
family, so eps values follow the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from robustbench_lite.threat import ThreatModel


@dataclass(frozen=True)
class MatrixCell:
    """One attack spec (``NAME[:k=v,...]``) at one threat model."""

    attack: str
    threat: ThreatModel


@dataclass(frozen=True)
class ThreatMatrix:
    """A named, versioned set of cells: every attack at every threat model."""

    name: str
    version: str
    attacks: tuple[str, ...]
    threats: tuple[ThreatModel, ...]
    description: str = ""

    def cells(self) -> list[MatrixCell]:
        """Cells grouped by threat model, attacks in the matrix's order."""
        return [MatrixCell(attack, threat) for threat in self.threats for attack in self.attacks]

    def with_overrides(self, attacks: Sequence[str] = (),
                       threats: Sequence[ThreatModel] = ()) -> ThreatMatrix:
        """The same matrix with its attacks and/or threat models replaced (empty: kept)."""
        return replace(self, attacks=tuple(attacks) or self.attacks,
                       threats=tuple(threats) or self.threats)


@dataclass(frozen=True)
class MatrixPreset:
    """A registered preset: ``build(family)`` returns the matrix for a data family
    (``digits``, ``mnist``, ``cifar10``, ``generic``, ...)."""

    name: str
    version: str
    description: str
    build: Callable[[str], ThreatMatrix]
