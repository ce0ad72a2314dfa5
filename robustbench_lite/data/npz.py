"""The ``npz`` dataset source: a NumPy ``.npz`` archive with arrays ``x`` and ``y``.

Format and contract:

* ``x``: images, either ``(N, C, H, W)``, ``(N, H, W)`` (one channel is added) or
  channels-last ``(N, H, W, C)``. The layout rule: ``x`` is channels-last when
  ``x.shape[-1] in (1, 3, 4)`` and ``x.shape[1] not in (1, 3, 4)``; otherwise it is
  channels-first. ``uint8`` images are divided by 255; float images must already lie in [0, 1].
* ``y``: integer labels ``(N,)`` in ``[0, num_classes)``.
* ``class_names`` (optional): a 1-D array of strings; without it classes are named
  ``"0"``..``"K-1"``.

The file is read with ``numpy.load(path, allow_pickle=False)``: object arrays (pickles) are
refused, so loading a file never runs code. One split per file: ``split`` is ignored.
Detection is by content: a zip archive holding ``x.npy`` and ``y.npy``.
"""

from __future__ import annotations

import logging
import math
import zipfile
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import torch

from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import DatasetSource
from robustbench_lite.errors import DatasetError
from robustbench_lite.limits import gib, memory_bytes

logger = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"
CHANNEL_COUNTS = (1, 3, 4)
"""Channel counts recognised when guessing the layout of a 4-D ``x``."""


def to_channels_first(x: np.ndarray, path: Path) -> np.ndarray:
    """``x`` as ``(N, C, H, W)``, following the layout rule of the module docstring."""
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim != 4:
        raise DatasetError(f"{path}: array 'x' has shape {x.shape}; save images as (N, C, H, W), "
                           "(N, H, W) or (N, H, W, C)")
    if x.shape[-1] in CHANNEL_COUNTS and x.shape[1] not in CHANNEL_COUNTS:
        return np.transpose(x, (0, 3, 1, 2))
    return x


def _images(x: np.ndarray, path: Path) -> torch.Tensor:
    if x.dtype == np.uint8:
        scaled = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        scaled = x.astype(np.float32)
    else:
        raise DatasetError(f"{path}: array 'x' has dtype {x.dtype}; save images as uint8 "
                           "(0..255) or as floats in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(to_channels_first(scaled, path)))


def _labels(y: np.ndarray, path: Path) -> torch.Tensor:
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DatasetError(f"{path}: array 'y' has shape {y.shape} and dtype {y.dtype}; save "
                           "labels as a 1-D integer array")
    return torch.from_numpy(y.astype(np.int64))


def _class_names(names: np.ndarray, path: Path) -> tuple[str, ...]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(f"{path}: array 'class_names' has shape {names.shape} and dtype "
                           f"{names.dtype}; save it as a 1-D array of strings")
    if names.dtype.kind == "S":
        return tuple(bytes(name).decode("utf-8", errors="replace") for name in names)
    return tuple(str(name) for name in names)


#: Arrays read from the archive, with the dtype kinds each may hold (``x``: images, ``y``:
#: labels, ``class_names``: strings).
ARRAYS = {"x.npy": "uif", "y.npy": "uib", "class_names.npy": "US"}


def check_headers(path: Path) -> None:
    """Read the ``.npy`` header of each array in the archive (never its data) and refuse,
    with one-line `DatasetError`s, a header that cannot be read, one that declares more data
    than its member holds (a crafted or truncated file would make numpy allocate what the
    header claims), or arrays too large for half this machine's memory. (Arrays of the wrong
    dtype are left to the per-array checks, which say what to save instead.)"""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for name, kinds in ARRAYS.items():
                try:
                    info = archive.getinfo(name)
                except KeyError:
                    continue
                with archive.open(info) as member:
                    shape, dtype, offset = _read_header(member, path, name)
                if dtype.kind not in kinds or dtype.hasobject:
                    continue  # the per-array checks below explain what is wrong
                declared = math.prod(shape) * dtype.itemsize
                stored = info.file_size - offset
                if declared > stored:
                    raise DatasetError(
                        f"{path}: {name} declares shape {shape} of {dtype} ({declared:,} "
                        f"bytes) but holds only {max(stored, 0):,} bytes; the file is "
                        "truncated or corrupt: save it again with numpy.savez")
                total += math.prod(shape) * max(dtype.itemsize, 4)  # x becomes float32
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc}); save it with "
                           "numpy.savez") from exc
    if total > memory_bytes() // 2:
        raise DatasetError(f"{path}: its arrays need {gib(total)} in memory, more than half "
                           f"of this machine's {gib(memory_bytes())}; save fewer samples")


def _read_header(member: IO[bytes], path: Path,
                 name: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """``(shape, dtype, data offset)`` of the ``.npy`` member ``name``."""
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not "
                             "supported here")
    except (ValueError, SyntaxError, TypeError) as exc:
        first = " ".join(str(exc).split())[:120]
        raise DatasetError(f"{path}: {name} has no valid .npy header ({first}); save plain "
                           "numeric arrays with numpy.savez") from exc
    return tuple(int(size) for size in shape), np.dtype(dtype), member.tell()


class NpzSource(DatasetSource):
    """A ``.npz`` file with ``x``, ``y`` and optionally ``class_names`` (never unpickled)."""

    name = "npz"
    description = "NumPy .npz file with arrays x (images) and y (labels), optional class_names"
    family: ClassVar[str] = "generic"

    def detect(self, path: Path) -> bool:
        try:
            if not path.is_file():
                return False
            with path.open("rb") as handle:
                if handle.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                    return False
            with zipfile.ZipFile(path) as archive:
                members = set(archive.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
        return {"x.npy", "y.npy"} <= members

    def load(self, path: Path | None, split: str) -> EvalData:
        if path is None:
            raise DatasetError("dataset 'npz' needs a file: pass `data` npz:PATH.npz")
        check_headers(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in ("x", "y") if key not in archive.files]
                if missing:
                    raise DatasetError(f"{path}: missing array(s) {', '.join(missing)}; save "
                                       "with numpy.savez(path, x=images, y=labels)")
                x = archive["x"]
                y = archive["y"]
                names = archive["class_names"] if "class_names" in archive.files else None
        except DatasetError:
            raise
        except ValueError as exc:  # object arrays need pickle, which we refuse
            raise DatasetError(f"{path}: cannot read without unpickling ({exc}); save plain "
                               "numeric arrays, not object arrays") from exc
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DatasetError(f"{path}: not a readable .npz file ({exc}); save it with "
                               "numpy.savez") from exc
        class_names = _class_names(names, path) if names is not None else None
        images = _images(x, path)
        labels = _labels(y, path)
        source = f"{path} (npz, {len(labels)} samples)"
        logger.debug("loaded %s", source)
        return make_eval_data(images, labels, class_names, name=path.stem, family=self.family,
                              source=source)
