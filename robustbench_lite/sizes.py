"""`NetworkSizes`: the sizes of a small network, stored as JSON in a weights file's
metadata and checked before anything is allocated."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import ClassVar, TypeVar

SomeSizes = TypeVar("SomeSizes", bound="NetworkSizes")


def size_problem(value: object, low: int, high: int) -> str | None:
    """Why ``value`` is not a whole number from ``low`` to ``high`` (``must be ...``, with
    the value shortened); None when it is."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return None
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"must be a whole number from {low} to {high}, got {shown}"


@dataclass(frozen=True)
class NetworkSizes:
    """Base of frozen dataclasses whose fields are all sizes (whole numbers); subclasses add
    the fields with their defaults."""

    #: Largest value of a size field: a crafted ``config`` must not allocate gigabytes.
    LARGEST: ClassVar[int] = 1024

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            problem = size_problem(value, 1, self.LARGEST)
            if problem is not None:
                raise ValueError(f"{name} {problem}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls: type[SomeSizes], text: str) -> SomeSizes:
        """The sizes written by `to_json`; ValueError (or TypeError for unknown fields) for
        anything else."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError("the config is not a JSON object")
        return cls(**values)
