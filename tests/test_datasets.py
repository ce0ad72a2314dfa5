"""The built-in dataset sources, on tiny fixtures written in each format (nothing downloaded)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_lite.builtin.datasets import register_datasets
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.data.cifar10 import CIFAR10_CLASSES, Cifar10Source
from robustbench_lite.data.colour_digits import ColourDigitsSource
from robustbench_lite.data.digits import DigitsSource
from robustbench_lite.data.image_folder import ImageFolderSource
from robustbench_lite.data.mnist_idx import MnistIdxSource
from robustbench_lite.data.npz import NpzSource
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.data.source import DatasetSource
from robustbench_lite.errors import DatasetError
from robustbench_lite.plugin_host import get_plugin_manager

FILE_SOURCES: list[type[DatasetSource]] = [NpzSource, ImageFolderSource, Cifar10Source,
                                           MnistIdxSource]

# ---------------------------------------------------------------- fixture writers


def write_npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def write_image_folder(root: Path, size: tuple[int, int] = (5, 4), mode: str = "RGB") -> Path:
    """Classes ``cat`` and ``dog``, three ``size`` (W, H) PNGs each; pixel value = 10*label+i."""
    for label, name in enumerate(("dog", "cat")[::-1]):  # created out of order on purpose
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(3):
            value = 10 * label + i
            Image.new(mode, size, color=value if mode == "L" else (value,) * 3).save(
                folder / f"{i:03d}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root


def _cifar_batch(n: int, seed: int, str_keys: bool = False) -> dict[Any, Any]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    if str_keys:
        return {"data": data, "labels": labels, "batch_label": "batch"}
    return {b"data": data, b"labels": labels, b"batch_label": b"batch"}


def write_cifar(root: Path, n: int = 5, meta: bool = True, str_keys: bool = False,
                protocol: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    names = ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]
    for seed, name in enumerate(names):
        with (root / name).open("wb") as handle:
            pickle.dump(_cifar_batch(n, seed, str_keys), handle, protocol=protocol)
    if meta:
        label_names = [name.encode() for name in CIFAR10_CLASSES]
        with (root / "batches.meta").open("wb") as handle:
            pickle.dump({b"label_names": label_names, b"num_vis": 3072}, handle, protocol=protocol)
    return root


def _short(value: bytes) -> bytes:
    return b"U" + bytes([len(value)]) + value


def python2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way Python 2 wrote the real CIFAR files (str, not bytes, opcodes)."""
    raw = data.tobytes()
    dtype = (b"cnumpy\ndtype\n" + _short(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _short(b"b")
             + b"\x87R" + b"(K\x01" + b"K" + bytes([data.shape[0]]) + b"M\x00\x0c\x86" + dtype
             + b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (b"\x80\x02}(" + _short(b"data") + array + _short(b"labels") + label_list
            + b"u.")


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n: int = 6, shape: tuple[int, int] = (6, 7), gz: bool = False,
                dotted: bool = False, splits: tuple[str, ...] = ("t10k", "train")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in splits:
        images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        sep = "." if dotted else "-"
        for kind, ndim, array in (("images", 3, images), ("labels", 1, labels)):
            name = f"{prefix}-{kind}{sep}idx{ndim}-ubyte"
            payload = _idx(array)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (root / name).write_bytes(payload)
    return root


@pytest.fixture
def fixtures(tmp_path: Path) -> dict[type[DatasetSource], Path]:
    rng = np.random.default_rng(0)
    return {
        NpzSource: write_npz(tmp_path / "d.npz", x=rng.random((3, 1, 4, 4)), y=np.array([0, 1, 0])),
        ImageFolderSource: write_image_folder(tmp_path / "folder"),
        Cifar10Source: write_cifar(tmp_path / "cifar"),
        MnistIdxSource: write_mnist(tmp_path / "mnist"),
    }


# ---------------------------------------------------------------- registration and detection


def test_hook_registers_all_six_sources() -> None:
    registered: list[Any] = []
    register_datasets(register=registered.append)
    assert registered == [DigitsSource, ColourDigitsSource, NpzSource, ImageFolderSource,
                          Cifar10Source, MnistIdxSource]
    names = {cls.name for cls in registered}
    assert names == {"digits", "colour-digits", "npz", "image-folder", "cifar10", "mnist"}
    for cls in registered:
        assert issubclass(cls, DatasetSource)
        assert cls.description
        assert cls.family in {"digits", "colour-digits", "generic", "cifar10", "mnist"}
    assert DigitsSource.needs_path is False
    assert all(cls.needs_path for cls in FILE_SOURCES)


def test_each_source_detects_only_its_own_format(
        fixtures: dict[type[DatasetSource], Path], tmp_path: Path) -> None:
    all_sources: list[type[DatasetSource]] = [*FILE_SOURCES, DigitsSource]
    for source_cls in all_sources:
        source = source_cls()
        for owner, path in fixtures.items():
            assert source.detect(path) is (owner is source_cls), (source_cls.name, path)
        assert source.detect(tmp_path / "does-not-exist") is False
        assert source.detect(tmp_path) is False  # the parent of all the fixtures


def test_paths_resolve_to_their_source(fixtures: dict[type[DatasetSource], Path]) -> None:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    families = {NpzSource: "generic", ImageFolderSource: "generic", Cifar10Source: "cifar10",
                MnistIdxSource: "mnist"}
    for source_cls, path in fixtures.items():
        data = load_dataset(str(path), catalogue)
        assert data.family == families[source_cls] and str(path) in data.source
        forced = load_dataset(f"{source_cls.name}:{path}", catalogue)
        assert forced.sha256 == data.sha256
    assert load_dataset("digits", catalogue).x.shape == (450, 1, 8, 8)


def test_detect_rejects_lookalikes(tmp_path: Path) -> None:
    plain_zip = tmp_path / "other.npz"
    np.savez(plain_zip, images=np.zeros(3))  # a zip, but without x.npy / y.npy
    assert not NpzSource().detect(plain_zip)
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    assert not NpzSource().detect(fake)
    no_images = tmp_path / "empty_classes"
    (no_images / "a").mkdir(parents=True)
    (no_images / "a" / "readme.txt").write_text("hi")
    assert not ImageFolderSource().detect(no_images)
    meta_missing = write_cifar(tmp_path / "cifar", meta=False)
    assert not Cifar10Source().detect(meta_missing)  # still loadable with cifar10:PATH


# ---------------------------------------------------------------- digits


def test_digits_split_sizes_and_values() -> None:
    test = DigitsSource().load(None, "test")
    train = DigitsSource().load(None, "train")
    assert test.x.shape == (450, 1, 8, 8) and train.x.shape == (1347, 1, 8, 8)
    assert test.x.dtype == torch.float32 and test.y.dtype == torch.int64
    assert float(test.x.min()) >= 0.0 and float(test.x.max()) == 1.0
    assert test.class_names == tuple(str(i) for i in range(10))
    assert (test.family, test.name) == ("digits", "digits")
    assert "450 of 1797" in test.source and "seed 0" in test.source
    counts = torch.bincount(test.y, minlength=10)
    totals = counts + torch.bincount(train.y, minlength=10)
    assert int(totals.sum()) == 1797
    assert bool(((counts - totals * 0.25).abs() <= 1).all())  # stratified


def test_digits_split_is_deterministic_and_disjoint() -> None:
    first = DigitsSource().load(None, "test")
    second = DigitsSource().load(None, "test")
    assert first.sha256 == second.sha256
    train = DigitsSource().load(None, "train")
    test_rows = {row.numpy().tobytes() for row in first.x}
    overlap = sum(row.numpy().tobytes() in test_rows for row in train.x)
    assert overlap < 5  # load_digits has a few duplicate images, not shared samples


def test_digits_rejects_unknown_split() -> None:
    with pytest.raises(DatasetError, match="split"):
        DigitsSource().load(None, "validation")


# ---------------------------------------------------------------- npz


def test_npz_uint8_channels_last(tmp_path: Path) -> None:
    x = np.arange(4 * 5 * 6 * 3, dtype=np.int64).reshape(4, 5, 6, 3) % 256
    path = write_npz(tmp_path / "nhwc.npz", x=x.astype(np.uint8), y=np.array([0, 1, 2, 1]),
                     class_names=np.array(["a", "b", "c"]))
    data = NpzSource().load(path, "test")
    assert data.x.shape == (4, 3, 5, 6) and data.x.dtype == torch.float32
    expected = torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).astype(np.float32) / 255)
    assert torch.allclose(data.x, expected)
    assert data.y.tolist() == [0, 1, 2, 1] and data.class_names == ("a", "b", "c")
    assert data.family == "generic" and str(path) in data.source


def test_npz_float_channels_first_and_grayscale(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float64)
    data = NpzSource().load(write_npz(tmp_path / "f.npz", x=x, y=np.array([0, 1, 1])), "train")
    assert data.x.shape == (3, 1, 4, 4) and torch.allclose(data.x, torch.from_numpy(x).float())
    assert data.class_names == ("0", "1")
    gray = NpzSource().load(write_npz(tmp_path / "g.npz", x=np.zeros((2, 7, 7), np.uint8),
                                      y=np.array([0, 0])), "test")
    assert gray.x.shape == (2, 1, 7, 7)


@pytest.mark.parametrize(("arrays", "match"), [
    ({"x": np.zeros((2, 1, 3, 3))}, r"missing array\(s\) y"),
    ({"images": np.zeros((2, 1, 3, 3)), "labels": np.zeros(2, np.int64)}, r"x, y"),
    ({"x": np.zeros((2, 9)), "y": np.zeros(2, np.int64)}, "shape"),
    ({"x": np.zeros((2, 1, 3, 3), np.int32), "y": np.zeros(2, np.int64)}, "uint8"),
    ({"x": np.zeros((2, 1, 3, 3)), "y": np.zeros(2)}, "integer"),
    ({"x": np.full((2, 1, 3, 3), 2.0), "y": np.zeros(2, np.int64)}, r"\[0, 1\]"),
    ({"x": np.zeros((2, 1, 3, 3)), "y": np.array([0, 3]), "class_names": np.array(["a", "b"])},
     "labels must lie"),
    ({"x": np.zeros((2, 1, 3, 3)), "y": np.array([0, -1])}, "labels must lie"),
    ({"x": np.zeros((3, 1, 3, 3)), "y": np.zeros(2, np.int64)}, "3 images but 2 labels"),
])
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=match):
        NpzSource().load(path, "test")


def test_npz_refuses_object_arrays(tmp_path: Path) -> None:
    x = np.empty(2, dtype=object)
    x[:] = [np.zeros((1, 2, 2)), np.zeros((1, 2, 2))]
    path = write_npz(tmp_path / "obj.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(DatasetError, match=r"obj\.npz.*object arrays"):
        NpzSource().load(path, "test")


def test_npz_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match=r"broken\.npz"):
        NpzSource().load(path, "test")


# ---------------------------------------------------------------- image folder


def test_image_folder_rgb(tmp_path: Path) -> None:
    data = ImageFolderSource().load(write_image_folder(tmp_path / "f"), "test")
    assert data.x.shape == (6, 3, 4, 5)  # (N, C, H, W) from 5x4 (W x H) images
    assert data.class_names == ("cat", "dog")
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]
    values = [round(float(v) * 255) for v in data.x[:, 0, 0, 0]]
    assert values == [0, 1, 2, 10, 11, 12]  # sorted order: cat/000..002, dog/000..002
    assert float(data.x.min()) >= 0.0 and float(data.x.max()) <= 1.0


def test_image_folder_grayscale_and_mixed_modes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "g", mode="L")
    gray = ImageFolderSource().load(root, "test")
    assert gray.x.shape == (6, 1, 4, 5)
    Image.new("RGB", (5, 4), color=(200, 100, 50)).save(root / "dog" / "zzz.png")
    mixed = ImageFolderSource().load(root, "test")
    assert mixed.x.shape == (7, 3, 4, 5)
    assert torch.equal(mixed.x[0, 0], mixed.x[0, 2])  # gray replicated into RGB
    assert [round(float(v) * 255) for v in mixed.x[-1, :, 0, 0]] == [200, 100, 50]


def test_image_folder_mixed_sizes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f")
    Image.new("RGB", (9, 9)).save(root / "dog" / "big.jpg")
    with pytest.raises(DatasetError, match=r"big\.jpg.*9x9.*5x4.*resize"):
        ImageFolderSource().load(root, "test")


def test_image_folder_unreadable_image(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f")
    (root / "cat" / "broken.PNG").write_bytes(b"definitely not a png")
    with pytest.raises(DatasetError, match=r"broken\.PNG"):
        ImageFolderSource().load(root, "test")


def test_image_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "f" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        ImageFolderSource().load(tmp_path / "f", "test")


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_test_and_train_splits(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "cifar")
    test = Cifar10Source().load(root, "test")
    assert test.x.shape == (5, 3, 32, 32) and test.x.dtype == torch.float32
    batch = _cifar_batch(5, seed=0)
    expected = torch.from_numpy(batch[b"data"].reshape(5, 3, 32, 32).astype(np.float32) / 255)
    assert torch.equal(test.x, expected) and test.y.tolist() == batch[b"labels"]
    assert test.class_names == CIFAR10_CLASSES and test.family == "cifar10"
    train = Cifar10Source().load(root, "train")
    assert train.x.shape == (25, 3, 32, 32)
    assert train.y[:5].tolist() == _cifar_batch(5, seed=1)[b"labels"]


def test_cifar_str_keys_nested_folder_and_missing_meta(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "top" / "cifar-10-batches-py", meta=False, str_keys=True,
                       protocol=pickle.HIGHEST_PROTOCOL)
    assert Cifar10Source().detect(tmp_path / "top") is False  # no batches.meta
    data = Cifar10Source().load(tmp_path / "top", "test")  # finds the nested batch folder
    assert data.class_names == CIFAR10_CLASSES and len(data.y) == 5
    write_cifar(root, meta=True)
    assert Cifar10Source().detect(tmp_path / "top")


def test_cifar_reads_python2_pickles(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "cifar")
    data = np.random.default_rng(3).integers(0, 256, size=(2, 3072), dtype=np.uint8)
    (root / "test_batch").write_bytes(python2_cifar_pickle(data, [7, 2]))
    loaded = Cifar10Source().load(root, "test")
    assert torch.equal(loaded.x, torch.from_numpy(data.reshape(2, 3, 32, 32) / 255).float())
    assert loaded.y.tolist() == [7, 2]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("target", ["test_batch", "batches.meta"])
def test_cifar_refuses_malicious_pickle(tmp_path: Path, target: str) -> None:
    root = write_cifar(tmp_path / "cifar")
    marker = tmp_path / "pwned"
    with (root / target).open("wb") as handle:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, handle, protocol=2)
    with pytest.raises(DatasetError, match=rf"refusing to unpickle \w+\.system from .*{target}"):
        Cifar10Source().load(root, "test")
    assert not marker.exists()


def test_cifar_errors(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "cifar")
    (root / "data_batch_3").unlink()
    Cifar10Source().load(root, "test")
    with pytest.raises(DatasetError, match="data_batch_3"):
        Cifar10Source().load(root, "train")
    (root / "test_batch").write_bytes(b"\x80\x02 truncated")
    with pytest.raises(DatasetError, match="test_batch"):
        Cifar10Source().load(root, "test")
    with (root / "test_batch").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(DatasetError, match="3072"):
        Cifar10Source().load(root, "test")
    with (root / "test_batch").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, handle)
    with pytest.raises(DatasetError, match="labels must lie"):
        Cifar10Source().load(root, "test")


# ---------------------------------------------------------------- MNIST IDX


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True),
                                            (True, True)])
def test_mnist_plain_gzip_and_dotted(tmp_path: Path, gz: bool, dotted: bool) -> None:
    root = write_mnist(tmp_path / "m", gz=gz, dotted=dotted)
    assert MnistIdxSource().detect(root)
    for split in ("test", "train"):
        data = MnistIdxSource().load(root, split)
        assert data.x.shape == (6, 1, 6, 7) and data.x.dtype == torch.float32
        assert data.y.tolist() == [0, 1, 2, 3, 4, 5] and data.y.dtype == torch.int64
        assert data.class_names == tuple(str(i) for i in range(10))
        assert float(data.x.min()) >= 0.0 and float(data.x.max()) <= 1.0
        assert data.family == "mnist"


def test_mnist_values_and_images_file_path(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    (root / "t10k-images-idx3-ubyte").write_bytes(_idx(images))
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.array([3, 12])))
    image_file = root / "t10k-images-idx3-ubyte"
    assert MnistIdxSource().detect(image_file)
    data = MnistIdxSource().load(image_file, "train")  # a file path fixes the split
    assert torch.equal(data.x[:, 0], torch.from_numpy(images / 255).float())
    assert data.class_names == tuple(str(i) for i in range(13))  # a label above 9
    (root / "t10k-labels-idx1-ubyte").unlink()
    assert not MnistIdxSource().detect(image_file)
    with pytest.raises(DatasetError, match="labels file beside"):
        MnistIdxSource().load(image_file, "test")


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_truncated_file(tmp_path: Path, gz: bool) -> None:
    root = write_mnist(tmp_path / "m", splits=("t10k",))
    payload = (root / "t10k-images-idx3-ubyte").read_bytes()[:-10]
    (root / "t10k-images-idx3-ubyte").unlink()
    target = root / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    target.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(DatasetError, match=rf"{target.name}.*truncated"):
        MnistIdxSource().load(root, "test")


def test_mnist_errors(tmp_path: Path) -> None:
    root = write_mnist(tmp_path / "m", splits=("t10k",))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        MnistIdxSource().load(root, "train")
    labels = root / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x08\x03\x00\x01" + labels.read_bytes()[4:])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.*bad magic"):
        MnistIdxSource().load(root, "test")
    labels.write_bytes(_idx(np.arange(5)))
    with pytest.raises(DatasetError, match="5 labels for 6 images"):
        MnistIdxSource().load(root, "test")
    labels.write_bytes(_idx(np.arange(6)) + b"extra")
    with pytest.raises(DatasetError, match="longer than its header"):
        MnistIdxSource().load(root, "test")
    (root / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + bytes(12))
    with pytest.raises(DatasetError, match="type code 0x0d"):
        MnistIdxSource().load(root, "test")
    gz_root = write_mnist(tmp_path / "g", gz=True, splits=("t10k",))
    (gz_root / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz"):
        MnistIdxSource().load(gz_root, "test")
