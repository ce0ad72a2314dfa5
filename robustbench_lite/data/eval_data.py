"""`EvalData`: images in [0, 1] with labels, as every dataset source returns them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from robustbench_lite.errors import DatasetError
from robustbench_lite.limits import MAX_CLASSES


@dataclass(frozen=True)
class EvalData:
    """``x``: float32 ``(N, C, H, W)`` in [0, 1]; ``y``: int64 ``(N,)`` in ``[0, num_classes)``.

    ``family`` names the kind of data (``digits``, ``mnist``, ``cifar10``, ``generic``) and
    chooses dataset-aware defaults such as the eps grid.
    """

    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    name: str
    family: str = "generic"
    source: str = ""

    def __post_init__(self) -> None:
        if self.x.dim() != 4:
            raise DatasetError(f"dataset {self.name!r}: images must be (N, C, H, W), got shape "
                               f"{tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise DatasetError(f"dataset {self.name!r}: {len(self.x)} images but "
                               f"{len(self.y)} labels")
        if len(self.x) == 0:
            raise DatasetError(f"dataset {self.name!r} is empty")
        if not torch.isfinite(self.x).all() or self.x.min() < 0 or self.x.max() > 1:
            raise DatasetError(f"dataset {self.name!r}: pixel values must be finite and in "
                               "[0, 1]; scale them before saving (e.g. divide uint8 by 255)")
        if self.y.min() < 0 or self.y.max() >= len(self.class_names):
            raise DatasetError(f"dataset {self.name!r}: labels must lie in [0, "
                               f"{len(self.class_names)}), got {int(self.y.min())}.."
                               f"{int(self.y.max())}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def sha256(self) -> str:
        """Hash of the exact tensors evaluated (images as float32, labels as int64)."""
        digest = hashlib.sha256()
        digest.update(self.x.contiguous().numpy().tobytes())
        digest.update(self.y.contiguous().numpy().tobytes())
        return digest.hexdigest()

    def take(self, indices: torch.Tensor, name: str) -> EvalData:
        """The samples at ``indices``, as data called ``name``."""
        return EvalData(self.x[indices], self.y[indices], self.class_names, name, self.family,
                        self.source)

    def subset(self, limit: int | None) -> EvalData:
        """The first ``limit`` samples (all of them when ``limit`` is None)."""
        if limit is None or limit >= len(self.x):
            return self
        if limit <= 0:
            raise DatasetError(f"the number of samples must be positive, got {limit}")
        return EvalData(self.x[:limit], self.y[:limit], self.class_names, self.name,
                        self.family, self.source)


def make_eval_data(x: torch.Tensor, y: torch.Tensor, class_names: tuple[str, ...] | None,
                   name: str, family: str = "generic", source: str = "") -> EvalData:
    """Build `EvalData`, converting dtypes and naming classes 0..K-1 when no names are given."""
    x = x.to(torch.float32)
    y = y.to(torch.int64)
    if class_names is None:
        top = int(y.max()) if len(y) else -1
        if top >= MAX_CLASSES:
            raise DatasetError(f"dataset {name!r}: label {top} implies {top + 1:,} classes, "
                               f"more than the {MAX_CLASSES:,} supported; labels must be "
                               "class indices 0..K-1")
        class_names = tuple(str(i) for i in range(top + 1))
    return EvalData(x.contiguous(), y.contiguous(), class_names, name, family, source)
