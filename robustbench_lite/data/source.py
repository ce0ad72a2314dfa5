"""The `DatasetSource` plugin interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from robustbench_lite.data.eval_data import EvalData

SPLITS = ("train", "test")


class DatasetSource(ABC):
    """Produces `EvalData` from a name (embedded data) or from a file/folder.

    Embedded sources set ``needs_path = False`` and are chosen by ``name``. File sources
    implement ``detect`` (by content) so that ``--data PATH`` finds them; ``NAME:PATH``
    forces one. ``split`` is ``train`` or ``test``; sources with one split ignore it.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    needs_path: ClassVar[bool] = True

    def detect(self, path: Path) -> bool:
        """True if this source can read ``path``; cheap, reads headers only."""
        return False

    @abstractmethod
    def load(self, path: Path | None, split: str) -> EvalData:
        """Read the data; raise `DatasetError` with a clear message when it is malformed."""
