"""The ``mnist`` dataset source: MNIST-style IDX files, plain or gzip-compressed.

Format and contract: split ``test`` reads ``t10k-images-idx3-ubyte`` + ``t10k-labels-idx1-ubyte``,
split ``train`` reads ``train-images-idx3-ubyte`` + ``train-labels-idx1-ubyte``; each may end in
``.gz``, and the dotted variant of some mirrors (``t10k-images.idx3-ubyte``) is accepted. The
same layout serves Fashion-MNIST and KMNIST. ``PATH`` is the folder holding them, or an
images file itself (its labels file is then looked up beside it and ``split`` is ignored).

An IDX file is a header (two zero bytes, the type code ``0x08`` = uint8, the number of
dimensions, then each dimension as a big-endian uint32) followed by exactly the
product-of-dimensions data bytes. Images ``(N, H, W)`` become ``(N, 1, H, W)`` divided by 255;
labels ``(N,)`` become int64. Classes are ``"0"``..``"9"`` (more when a label exceeds 9).
Truncated, oversized or malformed files raise `DatasetError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import logging
import struct
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import SPLITS, DatasetSource
from robustbench_lite.errors import DatasetError
from robustbench_lite.limits import gib, memory_bytes

logger = logging.getLogger(__name__)

PREFIXES = {"test": "t10k", "train": "train"}
UINT8_TYPE = 0x08
MIN_CLASSES = 10


def _candidates(prefix: str, kind: str, ndim: int) -> list[str]:
    stems = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [stem + suffix for stem in stems for suffix in ("", ".gz")]


def find_file(folder: Path, prefix: str, kind: str) -> Path | None:
    """The first existing ``images`` (idx3) or ``labels`` (idx1) file of ``prefix``."""
    ndim = 3 if kind == "images" else 1
    for name in _candidates(prefix, kind, ndim):
        if (folder / name).is_file():
            return folder / name
    return None


def labels_beside(images: Path) -> Path | None:
    """The labels file matching an images file name, in the same folder."""
    for prefix in PREFIXES.values():
        if images.name in _candidates(prefix, "images", 3):
            return find_file(images.parent, prefix, "labels")
    return None


def _open(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _read_exact(handle: io.BufferedIOBase, count: int, path: Path, what: str) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise DatasetError(f"{path}: file is truncated ({what}: expected {count} bytes, got "
                           f"{len(data)}); download it again")
    return data


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array stored in IDX file ``path`` (reads no more than the header announces)."""
    try:
        with _open(path) as handle:
            magic = _read_exact(handle, 4, path, "header")
            if magic[0] != 0 or magic[1] != 0:
                raise DatasetError(f"{path}: not an IDX file (bad magic {magic.hex()}); pass "
                                   "MNIST's *-ubyte or *-ubyte.gz files")
            if magic[2] != UINT8_TYPE:
                raise DatasetError(f"{path}: IDX type code 0x{magic[2]:02x} is not supported; "
                                   "only uint8 (0x08) files can be read")
            ndim = magic[3]
            if ndim == 0:
                raise DatasetError(f"{path}: IDX header declares 0 dimensions; download the "
                                   "file again")
            shape = struct.unpack(f">{ndim}I", _read_exact(handle, 4 * ndim, path, "dimensions"))
            count = _checked_size(path, shape)
            data = _read_exact(handle, count, path, "data")
            if handle.read(1):
                raise DatasetError(f"{path}: file is longer than its header {shape} announces; "
                                   "download it again")
    except DatasetError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read IDX file ({type(exc).__name__}: {exc}); "
                           "download it again") from exc
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _checked_size(path: Path, shape: tuple[int, ...]) -> int:
    """Bytes the header announces; `DatasetError` before any allocation when a plain file
    is shorter, or the array would take more than half of this machine's memory (a crafted
    or corrupt header, a decompression bomb)."""
    count = 1
    for size in shape:
        count *= size  # Python ints: no overflow
    limit = memory_bytes() // 2
    if count > limit:
        raise DatasetError(f"{path}: IDX header declares an array of shape {shape} "
                           f"({gib(count)}), more than half of this machine's "
                           f"{gib(memory_bytes())}; the file is corrupt or not MNIST")
    header = 4 + 4 * len(shape)
    if path.suffix != ".gz" and header + count > path.stat().st_size:
        raise DatasetError(f"{path}: file is truncated (its header announces {count} data "
                           f"bytes, the file holds {path.stat().st_size - header}); download "
                           "it again")
    return count


def _pair(path: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files for ``path`` and ``split``, or None if absent."""
    if path.is_file():
        labels = labels_beside(path)
        return (path, labels) if labels is not None else None
    prefix = PREFIXES[split]
    images = find_file(path, prefix, "images")
    labels = find_file(path, prefix, "labels")
    return (images, labels) if images is not None and labels is not None else None


def _looks_like_idx(path: Path) -> bool:
    try:
        with _open(path) as handle:
            magic = handle.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(magic) == 4 and magic[:3] == b"\x00\x00\x08"


class MnistIdxSource(DatasetSource):
    """MNIST IDX files (plain or .gz), in a folder or given as the images file."""

    name = "mnist"
    description = "MNIST-style IDX files (t10k-/train-images-idx3-ubyte[.gz] + labels)"
    family: ClassVar[str] = "mnist"

    def detect(self, path: Path) -> bool:
        try:
            for split in SPLITS:
                pair = _pair(path, split)
                if pair is not None:
                    return _looks_like_idx(pair[0])
        except OSError:
            return False
        return False

    def load(self, path: Path | None, split: str) -> EvalData:
        if path is None:
            raise DatasetError("dataset 'mnist' needs a folder: pass `data` mnist:PATH")
        if split not in SPLITS:
            raise DatasetError(f"dataset 'mnist': unknown split {split!r}; use one of "
                               f"{', '.join(SPLITS)}")
        pair = _pair(path, split)
        if pair is None and path.is_file():
            raise DatasetError(f"{path}: not an MNIST images file with its labels file beside "
                               "it; pass the folder, or t10k-/train-images-idx3-ubyte[.gz] "
                               "next to its labels file")
        if pair is None:
            prefix = PREFIXES[split]
            raise DatasetError(f"{path}: no {prefix}-images-idx3-ubyte[.gz] with its "
                               f"{prefix}-labels-idx1-ubyte[.gz] for the {split} split; put "
                               "both files in this folder")
        images_path, labels_path = pair
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3:
            raise DatasetError(f"{images_path}: images must have 3 dimensions (N, H, W), got "
                               f"{images.shape}; pass the images (idx3) file")
        if labels.ndim != 1:
            raise DatasetError(f"{labels_path}: labels must have 1 dimension (N,), got "
                               f"{labels.shape}; pass the labels (idx1) file")
        if len(images) != len(labels):
            raise DatasetError(f"{labels_path}: {len(labels)} labels for {len(images)} images "
                               f"in {images_path.name}; use files of the same split")
        x = torch.from_numpy(images[:, None, :, :].astype(np.float32) / 255.0)
        y = torch.from_numpy(labels.astype(np.int64))
        count = max(MIN_CLASSES, int(labels.max()) + 1) if len(labels) else MIN_CLASSES
        class_names = tuple(str(i) for i in range(count))
        source = f"{images_path} + {labels_path.name} (IDX, {len(labels)} images)"
        logger.debug("loaded %s", source)
        return make_eval_data(x, y, class_names, name=self.name, family=self.family,
                              source=source)
