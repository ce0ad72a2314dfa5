"""Threat matrices: named, versioned sets of (attack, threat model) cells."""

from robustbench_lite.matrix.core import MatrixCell, MatrixPreset, ThreatMatrix

__all__ = ["MatrixCell", "MatrixPreset", "ThreatMatrix"]
