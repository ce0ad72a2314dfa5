"""The ``cifar10`` dataset source: CIFAR-10's "python version" batch folder.

Format and contract: the folder ``cifar-10-batches-py`` (or a folder that contains it) with
``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``. Split ``test`` reads
``test_batch``; split ``train`` concatenates ``data_batch_1`` .. ``data_batch_5``. Each batch
is a pickled dict with ``data`` (uint8 array ``(N, 3072)``, channel-major 3x32x32) and
``labels`` (N ints); ``batches.meta`` holds ``label_names``. Keys may be ``str`` or ``bytes``
(the original files are Python-2 pickles, read with ``encoding="bytes"``). Without
``batches.meta`` the standard CIFAR-10 class names are used.

SECURITY: batches are never read with plain ``pickle.load``. `RestrictedUnpickler` only
resolves the few numpy globals needed to rebuild arrays and dtypes (plus a latin-1-only
stand-in for ``_codecs.encode``, which protocol-2 pickles written by Python 3 use for bytes);
any other global, e.g. ``os.system``, raises `DatasetError` before anything runs.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import SPLITS, DatasetSource
from robustbench_lite.errors import DatasetError

logger = logging.getLogger(__name__)

BATCH_FOLDER = "cifar-10-batches-py"
TEST_BATCHES = ("test_batch",)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
META_FILE = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that only performs what pickle uses it for."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode is only allowed for latin-1 bytes")
    return text.encode("latin1")


def _numpy_attr(module: str, name: str) -> Callable[[], Any]:
    """Resolve ``name`` from ``numpy._core.<module>`` (numpy 2) or ``numpy.core.<module>``."""

    def resolve() -> Any:
        try:
            found = importlib.import_module(f"numpy._core.{module}")
        except ImportError:
            found = importlib.import_module(f"numpy.core.{module}")
        return getattr(found, name)

    return resolve


_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _numpy_attr("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _numpy_attr("multiarray", "scalar")
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numpy_attr("numeric", "_frombuffer")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and plain containers, and nothing else."""

    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED.get((module, name))
        if resolve is None:
            raise DatasetError(f"refusing to unpickle {module}.{name} from {self.source}: "
                               "CIFAR batches contain only arrays")
        return resolve()


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with `RestrictedUnpickler`; every failure is a `DatasetError`."""
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(handle, path).load()
    except DatasetError:
        raise
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found; download and extract CIFAR-10's python "
                           "version (cifar-10-python.tar.gz)") from exc
    except Exception as exc:  # corrupt pickles raise many types
        raise DatasetError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc}); "
                           "re-extract cifar-10-python.tar.gz") from exc


def _get(batch: dict[Any, Any], key: str, path: Path) -> Any:
    for candidate in (key, key.encode("ascii")):
        if candidate in batch:
            return batch[candidate]
    raise DatasetError(f"{path}: missing key {key!r}; re-extract cifar-10-python.tar.gz")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one batch file."""
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(batch).__name__}; "
                           "re-extract cifar-10-python.tar.gz")
    data = _get(batch, "data", path)
    labels_raw = _get(batch, "labels", path)
    size = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != size:
        shape = getattr(data, "shape", None)
        raise DatasetError(f"{path}: 'data' must be a uint8 array (N, {size}), got "
                           f"{type(data).__name__} of shape {shape}; re-extract the batch")
    try:
        labels = np.asarray(labels_raw, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: 'labels' must be a list of integers; re-extract the "
                           "batch") from exc
    if labels.shape != (len(data),):
        raise DatasetError(f"{path}: {len(data)} images but labels of shape {labels.shape}; "
                           "re-extract the batch")
    return data.reshape(len(data), *IMAGE_SHAPE), labels


def read_class_names(folder: Path) -> tuple[str, ...]:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        logger.info("%s not found; using the standard CIFAR-10 class names", meta_path)
        return CIFAR10_CLASSES
    meta = load_pickle(meta_path)
    if not isinstance(meta, dict):
        raise DatasetError(f"{meta_path}: expected a pickled dict; re-extract the batches")
    names = _get(meta, "label_names", meta_path)
    if not isinstance(names, (list, tuple)) or not names:
        raise DatasetError(f"{meta_path}: 'label_names' must be a list of names; re-extract "
                           "the batches")
    return tuple(name.decode("utf-8", errors="replace") if isinstance(name, bytes) else str(name)
                 for name in names)


def batch_folder(path: Path) -> Path:
    """``path`` itself, or its ``cifar-10-batches-py`` subfolder when it has one."""
    nested = path / BATCH_FOLDER
    return nested if nested.is_dir() else path


class Cifar10Source(DatasetSource):
    """CIFAR-10 python batches, read with a restricted unpickler (never runs code)."""

    name = "cifar10"
    description = "CIFAR-10 python-version batch folder (cifar-10-batches-py)"
    family: ClassVar[str] = "cifar10"

    def detect(self, path: Path) -> bool:
        try:
            if not path.is_dir():
                return False
            folder = batch_folder(path)
            has_batch = any((folder / name).is_file() for name in ("test_batch", "data_batch_1"))
            return has_batch and (folder / META_FILE).is_file()
        except OSError:
            return False

    def load(self, path: Path | None, split: str) -> EvalData:
        if path is None:
            raise DatasetError("dataset 'cifar10' needs a folder: pass "
                               "`data` cifar10:PATH/cifar-10-batches-py")
        if split not in SPLITS:
            raise DatasetError(f"dataset 'cifar10': unknown split {split!r}; use one of "
                               f"{', '.join(SPLITS)}")
        folder = batch_folder(path)
        names = TEST_BATCHES if split == "test" else TRAIN_BATCHES
        for name in names:
            if not (folder / name).is_file():
                raise DatasetError(f"{folder / name}: missing batch file for the {split} split; "
                                   "extract cifar-10-python.tar.gz into this folder")
        batches = [read_batch(folder / name) for name in names]
        images = np.concatenate([images for images, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        y = torch.from_numpy(labels)
        source = f"{folder} (CIFAR-10 {split} split: {', '.join(names)}, {len(labels)} images)"
        logger.debug("loaded %s", source)
        return make_eval_data(x, y, read_class_names(folder), name=self.name,
                              family=self.family, source=source)
