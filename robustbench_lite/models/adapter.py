"""The `ModelAdapter` plugin interface: turn a model file into a torch module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torch import nn

from robustbench_lite.models.robust_model import LoadInfo

#: How many leading bytes of a file adapters get to look at when detecting its format.
HEADER_BYTES = 64


@dataclass(frozen=True)
class LoadRequest:
    """What the user asked for: the file, an optional architecture, and the trust flag.

    ``build_architecture`` builds an empty module for ``--arch`` (``None`` when no ``--arch``
    was given); ``architecture`` is its display name.
    """

    path: Path
    header: bytes
    trust_model: bool = False
    architecture: str | None = None
    build_architecture: Callable[[], nn.Module] | None = None


@dataclass(frozen=True)
class LoadedModule:
    module: nn.Module
    info: LoadInfo


class ModelAdapter(ABC):
    """Loads one family of model files.

    Subclasses set ``name`` and ``description`` and implement ``detect`` (by content, never
    by extension) and ``load``. Adapters registered by third-party plugins are tried before
    the built-in ones, so a plugin can take over a format.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def detect(self, path: Path, header: bytes) -> bool:
        """True if this adapter understands the file; must be cheap and never execute code."""

    @abstractmethod
    def load(self, request: LoadRequest) -> LoadedModule:
        """Load the file; raise `ModelLoadError` (or a subclass) with a clear message."""
