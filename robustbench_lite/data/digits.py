"""The ``digits`` dataset: scikit-learn's bundled 8x8 handwritten digits, no download needed.

Format and contract: ``sklearn.datasets.load_digits()`` returns 1797 grayscale 8x8 images
with integer values 0..16 and labels 0..9. They are divided by 16 into [0, 1] and shaped
``(N, 1, 8, 8)``.

The train/test split is FIXED so that every run and every machine evaluates the same images:
``train_test_split(..., test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)``
with ``TEST_FRACTION = 0.25`` and ``SPLIT_SEED = 0``, i.e. 1347 train and 450 test images, each
class in the same proportion in both. Samples keep the (shuffled) order the split returns, so
the first ``n`` samples of a split mix all classes. Changing these constants changes every
published digits result; do not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import SPLITS, DatasetSource
from robustbench_lite.errors import DatasetError

logger = logging.getLogger(__name__)

TEST_FRACTION = 0.25
"""Fraction of the 1797 digits held out as the test split (450 images)."""
SPLIT_SEED = 0
"""``random_state`` of the stratified split; fixed forever."""
MAX_PIXEL_VALUE = 16.0
"""``load_digits`` pixels are integers 0..16."""


class DigitsSource(DatasetSource):
    """scikit-learn's 8x8 digits with a fixed, seeded, stratified 75/25 split.

    ``TEST_FRACTION = 0.25`` and ``SPLIT_SEED = 0`` give 1347 train and 450 test images
    (``x``: ``(N, 1, 8, 8)`` in [0, 1]; classes ``"0"``..``"9"``). Embedded: takes no path.
    """

    name = "digits"
    description = "scikit-learn's bundled 8x8 handwritten digits (1347 train / 450 test)"
    needs_path = False
    family: ClassVar[str] = "digits"

    def load(self, path: Path | None, split: str) -> EvalData:
        if split not in SPLITS:
            raise DatasetError(f"dataset 'digits': unknown split {split!r}; use one of "
                               f"{', '.join(SPLITS)}")
        if path is not None:
            logger.warning("dataset 'digits' is embedded; ignoring the path %s", path)
        bunch = load_digits()
        images = np.asarray(bunch.images, dtype=np.float32) / MAX_PIXEL_VALUE
        labels = np.asarray(bunch.target, dtype=np.int64)
        indices = np.arange(len(labels))
        train_idx, test_idx = train_test_split(indices, test_size=TEST_FRACTION,
                                               random_state=SPLIT_SEED, stratify=labels)
        chosen = np.asarray(test_idx if split == "test" else train_idx)
        x = torch.from_numpy(np.ascontiguousarray(images[chosen][:, None, :, :]))
        y = torch.from_numpy(np.ascontiguousarray(labels[chosen]))
        class_names = tuple(str(digit) for digit in range(10))
        source = (f"sklearn.datasets.load_digits ({split} split: {len(chosen)} of "
                  f"{len(labels)}, seed {SPLIT_SEED})")
        logger.debug("loaded %s", source)
        return make_eval_data(x, y, class_names, name=self.name, family=self.family,
                              source=source)
