"""`UnitKey`: what decides a unit's outcome, and its canonical JSON and digest.

The digest is the SHA-256 of the canonical JSON (sorted keys, no whitespace, ASCII, floats as
Python's shortest round-trip ``repr``, tuples as lists, ``-0.0`` as ``0.0``, non-finite
floats as ``{"__float__": "inf"}``): the same in every process and Python version, so the
result store recognises finished work across runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np

_FLOAT_TAG = "__float__"


def _canonical(value: Any, where: str) -> Any:
    """``value`` as plain JSON data in canonical form (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Enum):
        return _canonical(value.value, where)
    if isinstance(value, str):
        return str.__str__(value)  # a plain str, also for str subclasses
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number + 0.0 if math.isfinite(number) else {_FLOAT_TAG: repr(number)}
    if isinstance(value, Mapping):
        result = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(f"{where}: keys must be strings, got {name!r}")
            result[str.__str__(name)] = _canonical(item, f"{where}.{name}")
        return result
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise TypeError(f"{where}: cannot use a {type(value).__name__} in a result-store key; "
                    "use None, bool, int, float, str, lists/tuples and str-keyed mappings")


def _decode(value: Any) -> Any:
    """Inverse of `_canonical` on parsed JSON: restores the tagged non-finite floats."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_FLOAT_TAG), str):
            return float(value[_FLOAT_TAG])
        return {name: _decode(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _text(name: str, value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str):
        raise TypeError(f"UnitKey.{name} must be a str, got {type(value).__name__}")
    return str.__str__(value)


def as_integer(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


@dataclass(frozen=True, eq=False)
class UnitKey:
    """Everything that decides a unit's outcome. Fields are normalised on construction
    (``eps`` to float, ``norm`` enums to their value, ``params`` to a read-only canonical
    copy); equality and hashing follow `digest`."""

    model_sha256: str  # `RobustModel.fingerprint`: the file's hash and how it was loaded
    data_sha256: str
    attack: str  # the attack's registered name
    params: Mapping[str, Any]  # its hyperparameters (JSON-serialisable)
    norm: str
    eps: float
    targeted: bool
    seed: int
    shard_start: int
    shard_stop: int
    context: str = ""  # anything else that changes the result (cascade order, transfer source)
    task: str = "classification"  # the task's registered name
    objective: str = ""  # the objective, and for targeted ones the target mode and targets
    #: What computed the unit: package version, attack and task implementation versions.
    versions: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model_sha256", "data_sha256", "attack", "norm", "context", "task",
                     "objective"):
            object.__setattr__(self, name, _text(name, getattr(self, name)))
        for name in ("params", "versions"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise TypeError(f"UnitKey.{name} must be a mapping, got "
                                f"{type(value).__name__}")
            object.__setattr__(self, name,
                               MappingProxyType(_decode(_canonical(value, name))))
        if isinstance(self.eps, (bool, np.bool_)) or not isinstance(
                self.eps, (int, float, np.integer, np.floating)):
            raise TypeError(f"UnitKey.eps must be a number, got {type(self.eps).__name__}")
        eps = float(self.eps)
        if not math.isfinite(eps):
            raise ValueError(f"UnitKey.eps must be finite, got {eps}")
        object.__setattr__(self, "eps", eps + 0.0)
        if not isinstance(self.targeted, (bool, np.bool_)):
            raise TypeError(f"UnitKey.targeted must be a bool, got "
                            f"{type(self.targeted).__name__}")
        object.__setattr__(self, "targeted", bool(self.targeted))
        for name in ("seed", "shard_start", "shard_stop"):
            object.__setattr__(self, name, as_integer(f"UnitKey.{name}", getattr(self, name)))
        if not 0 <= self.shard_start <= self.shard_stop:
            raise ValueError(f"UnitKey shard must satisfy 0 <= start <= stop, got "
                             f"[{self.shard_start}, {self.shard_stop})")

    @property
    def shard_size(self) -> int:
        return self.shard_stop - self.shard_start

    def canonical_json(self) -> str:
        """The key as canonical JSON: the text that `digest` hashes and the store keeps."""
        data = {
            "model_sha256": self.model_sha256,
            "data_sha256": self.data_sha256,
            "attack": self.attack,
            "params": _canonical(self.params, "params"),
            "norm": self.norm,
            "eps": self.eps,
            "targeted": self.targeted,
            "seed": self.seed,
            "shard_start": self.shard_start,
            "shard_stop": self.shard_stop,
            "context": self.context,
            "task": self.task,
            "objective": self.objective,
            "versions": _canonical(self.versions, "versions"),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)

    def digest(self) -> str:
        """SHA-256 (hex) of `canonical_json`: stable across processes and Python versions."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> UnitKey:
        """Rebuild a key from `canonical_json` output."""
        raw = json.loads(text)
        raw["params"] = _decode(raw["params"])
        if "versions" in raw:
            raw["versions"] = _decode(raw["versions"])
        return cls(**raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitKey):
            return NotImplemented
        return self.canonical_json() == other.canonical_json()

    def __hash__(self) -> int:
        return hash(self.canonical_json())
