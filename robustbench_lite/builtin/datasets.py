"""Built-in dataset sources, registered through the same hook as third-party plugins.

``digits`` and ``colour-digits`` are embedded (no path); ``npz``, ``image-folder``,
``cifar10`` and ``mnist`` read a file or folder and are found by ``detect`` when
``--data PATH`` names no source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.data.cifar10 import Cifar10Source
from robustbench_lite.data.colour_digits import ColourDigitsSource
from robustbench_lite.data.digits import DigitsSource
from robustbench_lite.data.image_folder import ImageFolderSource
from robustbench_lite.data.mnist_idx import MnistIdxSource
from robustbench_lite.data.npz import NpzSource
from robustbench_lite.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(DigitsSource)
    register(ColourDigitsSource)
    register(NpzSource)
    register(ImageFolderSource)
    register(Cifar10Source)
    register(MnistIdxSource)
