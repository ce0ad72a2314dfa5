"""The ``image-folder`` dataset source: one subfolder of images per class.

Format and contract: ``PATH/<class name>/<image file>``. Class names are the sorted names of
the subfolders (hidden ones, starting with ``.``, are skipped) and labels follow that order;
an empty class folder still counts as a class, so labels keep matching the model's.
Image files are those ending in .png, .jpg, .jpeg, .bmp, .gif, .webp, .tif or .tiff (any
case); other files and deeper folders are ignored. Files are read in sorted order, so the
result is deterministic.

Images are read with Pillow as 8-bit: all become grayscale ``"L"`` (``C = 1``) when every image
is grayscale, otherwise ``"RGB"`` (``C = 3``; alpha is dropped, gray is replicated). All images
must have the same size; resize them beforehand. Values are divided by 255. One split per
folder: ``split`` is ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import DatasetSource
from robustbench_lite.errors import DatasetError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
GRAYSCALE_MODES = frozenset({"1", "L", "LA"})
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of ``root``, sorted by name, hidden ones skipped."""
    return sorted((child for child in root.iterdir()
                   if child.is_dir() and not child.name.startswith(".")),
                  key=lambda child: child.name)


def image_files(folder: Path) -> list[Path]:
    return sorted((child for child in folder.iterdir() if child.is_file() and is_image_file(child)),
                  key=lambda child: child.name)


def _read_image(path: Path) -> np.ndarray:
    """``(H, W)`` uint8 for a grayscale image, ``(H, W, 3)`` uint8 otherwise."""
    try:
        with Image.open(path) as image:
            if image.mode in HIGH_DEPTH_MODES:
                raise DatasetError(f"{path}: image mode {image.mode!r} is not 8-bit; save the "
                                   "images as 8-bit grayscale or RGB")
            target = "L" if image.mode in GRAYSCALE_MODES else "RGB"
            return np.asarray(image.convert(target), dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt or unknown files
        raise DatasetError(f"{path}: cannot read image ({type(exc).__name__}: {exc}); "
                           "replace or remove the file") from exc


class ImageFolderSource(DatasetSource):
    """A folder with one subfolder of same-sized images per class."""

    name = "image-folder"
    description = "folder with one subfolder of images (png, jpg, ...) per class"
    family: ClassVar[str] = "generic"

    def detect(self, path: Path) -> bool:
        try:
            if not path.is_dir():
                return False
            for folder in class_folders(path):
                if any(child.is_file() and is_image_file(child) for child in folder.iterdir()):
                    return True
        except OSError:
            return False
        return False

    def load(self, path: Path | None, split: str) -> EvalData:
        if path is None:
            raise DatasetError("dataset 'image-folder' needs a folder: pass "
                               "`data` image-folder:PATH")
        try:
            folders = class_folders(path)
            files = [(label, file) for label, folder in enumerate(folders)
                     for file in image_files(folder)]
        except OSError as exc:
            raise DatasetError(f"{path}: cannot list the folder ({exc}); pass a folder with "
                               "one subfolder of images per class") from exc
        if not files:
            raise DatasetError(f"{path}: no images found; put images in one subfolder per "
                               f"class, e.g. {path}/cat/001.png")
        for folder in folders:
            if not image_files(folder):
                logger.warning("class folder %s holds no images; it still counts as a class",
                               folder)
        arrays: list[np.ndarray] = []
        first_size: tuple[int, int] | None = None
        for _, file in files:
            array = _read_image(file)
            size = (array.shape[1], array.shape[0])
            if first_size is None:
                first_size = size
            elif size != first_size:
                raise DatasetError(f"{file}: image size {size[0]}x{size[1]} differs from "
                                   f"{first_size[0]}x{first_size[1]} of {files[0][1]}; resize "
                                   "all images to one size")
            arrays.append(array)
        if all(array.ndim == 2 for array in arrays):
            stacked = np.stack(arrays)[:, None, :, :]
        else:
            rgb = [array if array.ndim == 3 else np.repeat(array[:, :, None], 3, axis=2)
                   for array in arrays]
            stacked = np.transpose(np.stack(rgb), (0, 3, 1, 2))
        x = torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float32) / 255.0)
        y = torch.tensor([label for label, _ in files], dtype=torch.int64)
        class_names = tuple(folder.name for folder in folders)
        source = f"{path} (image folder, {len(files)} images, {len(class_names)} classes)"
        logger.debug("loaded %s", source)
        return make_eval_data(x, y, class_names, name=path.name, family=self.family,
                              source=source)
