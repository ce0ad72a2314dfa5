"""The ``colour-digits`` dataset: the bundled 8x8 digits, coloured so that colour is a shortcut.

A small counterpart of the Colour-MNIST experiment of Gowal et al., "Achieving Robustness in
the Wild via Adversarial Mixing with Disentangled Representations" (CVPR 2020): the digit
(foreground) is coloured, the background stays black, and in the training split the colour
predicts the class while in the test split it does not.

Construction, per image: ``x = g * c`` with ``g`` the grey digit of `DigitsSource` (8x8,
values in [0, 1]) and ``c`` an RGB foreground colour, so ``x`` is ``(N, 3, 8, 8)`` in [0, 1].

- The split is exactly `DigitsSource`'s (1347 train / 450 test, same order).
- ``PALETTE[k]``: the mean colour of class ``k``, the fully saturated, full-value colour of hue
  ``k / 10`` (ten hues 36 degrees apart: red, orange, yellow, ..., pink).
- Train: ``c = clip(PALETTE[y] + noise, 0, 1)`` with Gaussian ``noise`` of standard deviation
  ``COLOUR_NOISE = 0.05`` per channel. The mean colour of the class predicts the label: colour
  is a spurious shortcut.
- Test: ``c = clip(PALETTE[k] + noise, 0, 1)`` with ``k`` drawn uniformly from the ten classes
  independently of the label: the same colours as in training, their link to the class broken.
- Randomness: ``numpy.random.default_rng(COLOUR_SEED + offset)`` with ``offset`` 0 for train
  and 1 for test, fixed forever. Changing any constant here changes every published
  colour-digits result; do not.
"""

from __future__ import annotations

import colorsys
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.data.digits import DigitsSource
from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import SPLITS, DatasetSource
from robustbench_lite.errors import DatasetError

logger = logging.getLogger(__name__)

NUM_CLASSES = 10
COLOUR_NOISE = 0.05
"""Standard deviation of the per-sample Gaussian colour noise, per RGB channel."""
COLOUR_SEED = 2020
"""Seed of the colour draws (``+ 0`` train, ``+ 1`` test); fixed forever."""
PALETTE = np.array([colorsys.hsv_to_rgb(k / NUM_CLASSES, 1.0, 1.0) for k in range(NUM_CLASSES)],
                   dtype=np.float32)
"""``(10, 3)``: the mean foreground colour of each class in the training split."""


def colour_for(labels: np.ndarray, split: str) -> np.ndarray:
    """The ``(N, 3)`` foreground colours of a split whose labels are ``labels``."""
    rng = np.random.default_rng(COLOUR_SEED + SPLITS.index(split))
    if split == "train":
        means = PALETTE[labels]
    else:
        means = PALETTE[rng.integers(0, NUM_CLASSES, size=len(labels))]
    noise = rng.normal(0.0, COLOUR_NOISE, size=means.shape).astype(np.float32)
    colours: np.ndarray = np.clip(means + noise, 0.0, 1.0)
    return colours


class ColourDigitsSource(DatasetSource):
    """`DigitsSource` coloured: class-coloured train split, randomly coloured test split.

    ``x``: ``(N, 3, 8, 8)`` in [0, 1], a grey digit times an RGB foreground colour on black;
    classes ``"0"``..``"9"``. Embedded: takes no path. See the module docstring for the
    constants.
    """

    name = "colour-digits"
    description = ("8x8 digits coloured by class in the train split and at random in the test "
                   "split (a Colour-MNIST analogue, 1347 train / 450 test)")
    needs_path = False
    family: ClassVar[str] = "colour-digits"

    def load(self, path: Path | None, split: str) -> EvalData:
        if split not in SPLITS:
            raise DatasetError(f"dataset {self.name!r}: unknown split {split!r}; use one of "
                               f"{', '.join(SPLITS)}")
        if path is not None:
            logger.warning("dataset %r is embedded; ignoring the path %s", self.name, path)
        grey = DigitsSource().load(None, split)
        colours = torch.from_numpy(colour_for(grey.y.numpy(), split))
        x = grey.x * colours[:, :, None, None]
        source = (f"sklearn digits coloured ({split} split: {len(x)} images, colour seed "
                  f"{COLOUR_SEED}, {'class' if split == 'train' else 'random'} colours)")
        logger.debug("loaded %s", source)
        return make_eval_data(x, grey.y, grey.class_names, name=self.name, family=self.family,
                              source=source)
