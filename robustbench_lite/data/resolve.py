"""Turn a ``--data`` spec (a name, a path, or ``NAME:PATH``) into `EvalData`."""

from __future__ import annotations

from pathlib import Path

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.source import SPLITS
from robustbench_lite.errors import DatasetError, UnknownDatasetError

DEFAULT_DATASET = "digits"


def load_dataset(spec: str, catalogue: Catalogue, split: str = "test") -> EvalData:
    """Load the data named by ``spec``.

    - a registered embedded dataset name (``digits``);
    - ``NAME:PATH`` to read ``PATH`` with the source ``NAME``;
    - a path, whose format is detected by content.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    registry = catalogue.datasets
    if spec in registry.names():
        source = registry.get(spec)()
        if source.needs_path:
            raise DatasetError(f"dataset {spec!r} reads files; pass {spec}:PATH")
        return source.load(None, split)
    name, sep, rest = spec.partition(":")
    if sep and name in registry.names():
        path = Path(rest).expanduser()
        if not path.exists():
            raise DatasetError(f"dataset path not found: {path}")
        return registry.get(name)().load(path, split)
    path = Path(spec).expanduser()
    if path.exists():
        for source_class in registry.values():
            source = source_class()
            if source.needs_path and source.detect(path):
                return source.load(path, split)
        formats = ", ".join(cls.name for cls in registry.values() if cls.needs_path)
        raise DatasetError(f"{path} is not in a dataset format this tool can read ({formats}); "
                           "force one with `data` NAME:PATH")
    embedded = [cls.name for cls in registry.values() if not cls.needs_path]
    raise UnknownDatasetError(spec, [*embedded, "a path", "NAME:PATH"])
