"""Every model-loading path of `robustbench_lite.models.loading` and every bad-input error.

Each model file is written into ``tmp_path`` from a `DigitsCNN` holding the bundled weights;
a loaded model must give the same logits as the original on real digits samples.
"""

from __future__ import annotations

import importlib
import random
import re
import sys
import textwrap
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from small_models import NaNNet, WideInputNet
from torch import nn

from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.errors import (
    ModelDataMismatchError,
    ModelLoadError,
    NonFiniteOutputError,
    UnknownArchitectureError,
    UntrustedModelError,
)
from robustbench_lite.models.loading import check_model_on_data, load_model
from robustbench_lite.models.normalize import Normalized
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.plugin_host import get_plugin_manager

WEIGHTS = (Path(__file__).resolve().parent.parent / "robustbench_lite" / "weights"
           / "digits_cnn.safetensors")
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10

#: torch 2.x deprecates the TorchScript API; that is torch's warning, not the loader's.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return catalogue_for(get_plugin_manager(load_entrypoints=False))


@pytest.fixture(scope="module")
def digits(catalogue: Catalogue) -> EvalData:
    return load_dataset("digits", catalogue).subset(32)


@pytest.fixture(scope="module")
def samples(digits: EvalData) -> torch.Tensor:
    return digits.x[:6]


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return load_file(str(WEIGHTS))


@pytest.fixture
def original(state_dict: dict[str, torch.Tensor]) -> DigitsCNN:
    model = DigitsCNN()
    model.load_state_dict(state_dict)
    return model.eval()


@pytest.fixture
def make_module(tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    """Write Python source as a uniquely named module in ``tmp_path`` and import it."""
    folder = tmp_path / "pymods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    created: list[str] = []

    def make(source: str) -> ModuleType:
        name = f"rbl_test_{uuid.uuid4().hex[:12]}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return __import__(name)

    yield make
    for name in created:
        sys.modules.pop(name, None)


def _load(path: Path, catalogue: Catalogue, **kwargs: Any) -> RobustModel:
    return load_model(path, catalogue=catalogue, input_shape=INPUT_SHAPE,
                      num_classes=NUM_CLASSES, **kwargs)


def _assert_same_logits(model: RobustModel, original: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = original(x)
        got = model(x)
    assert got.shape == (len(x), NUM_CLASSES)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- TorchScript


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_detected_by_content(how: str, tmp_path: Path, catalogue: Catalogue,
                                         original: DigitsCNN, samples: torch.Tensor) -> None:
    scripted = torch.jit.script(original) if how == "script" \
        else torch.jit.trace(original, samples[:2])
    path = tmp_path / "weights.bin"  # misleading extension: detection is by content
    torch.jit.save(scripted, str(path))
    model = _load(path, catalogue)
    assert model.load_info.format == "torchscript"
    assert model.load_info.trusted is False
    assert model.name == "weights.bin"
    assert not model.module.training
    _assert_same_logits(model, original, samples)


def test_torchscript_ignores_arch_with_a_note(tmp_path: Path, catalogue: Catalogue,
                                              original: DigitsCNN,
                                              samples: torch.Tensor) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(original), str(path))
    model = _load(path, catalogue, arch="digits-cnn")
    assert any("--arch ignored" in note for note in model.load_info.notes)
    _assert_same_logits(model, original, samples)


# ---------------------------------------------------------------- torch.save state_dicts


def _prefixed(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"module.{key}": value for key, value in sd.items()}


CHECKPOINT_LAYOUTS: dict[str, Callable[[dict[str, torch.Tensor]], object]] = {
    "plain": lambda sd: sd,
    "state_dict+epoch": lambda sd: {"state_dict": sd, "epoch": 3},
    "model": lambda sd: {"model": sd},
    "nested model/state_dict": lambda sd: {"model": {"state_dict": sd}},
    "dataparallel prefix": _prefixed,
    "checkpoint of dataparallel": lambda sd: {"state_dict": _prefixed(sd), "epoch": 7},
}


@pytest.mark.parametrize("layout", list(CHECKPOINT_LAYOUTS))
def test_state_dict_layouts(layout: str, tmp_path: Path, catalogue: Catalogue,
                            original: DigitsCNN, samples: torch.Tensor) -> None:
    path = tmp_path / "checkpoint.weird"
    torch.save(CHECKPOINT_LAYOUTS[layout](original.state_dict()), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a state_dict build is in eval mode: no warning
        model = _load(path, catalogue, arch="digits-cnn")
    assert model.load_info.format == "torch-checkpoint"
    assert model.load_info.architecture == "digits-cnn"
    assert model.load_info.trusted is False
    _assert_same_logits(model, original, samples)


def test_real_dataparallel_state_dict(tmp_path: Path, catalogue: Catalogue,
                                      original: DigitsCNN, samples: torch.Tensor) -> None:
    wrapped_state = nn.DataParallel(original).state_dict()
    assert all(key.startswith("module.") for key in wrapped_state)
    path = tmp_path / "dp.pth"
    torch.save(wrapped_state, path)
    _assert_same_logits(_load(path, catalogue, arch="digits-cnn"), original, samples)


def test_legacy_non_zip_torch_save(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN,
                                   samples: torch.Tensor) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": original.state_dict()}, path,
               _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    model = _load(path, catalogue, arch="digits-cnn")
    assert model.load_info.format == "torch-checkpoint"
    _assert_same_logits(model, original, samples)


def test_safetensors_with_arch(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN,
                               samples: torch.Tensor) -> None:
    path = tmp_path / "weights.pt"  # misleading extension again
    save_file(original.state_dict(), str(path))
    model = _load(path, catalogue, arch="digits-cnn")
    assert model.load_info.format == "safetensors"
    _assert_same_logits(model, original, samples)


def test_safetensors_naming_its_architecture_needs_no_arch(
        tmp_path: Path, catalogue: Catalogue, original: DigitsCNN,
        samples: torch.Tensor) -> None:
    """Files written by ``robust train``/``robust harden`` carry ``architecture`` metadata;
    an unknown name there is ignored (the usual "needs --arch" error follows)."""
    named, unknown = tmp_path / "named.safetensors", tmp_path / "unknown.safetensors"
    save_file(original.state_dict(), str(named), metadata={"architecture": "digits-cnn"})
    save_file(original.state_dict(), str(unknown), metadata={"architecture": "no-such"})
    _assert_same_logits(_load(named, catalogue), original, samples)
    with pytest.raises(ModelLoadError, match="`arch`"):
        _load(unknown, catalogue)
    colour = DigitsCNN(in_channels=3)
    coloured = tmp_path / "colour.safetensors"
    save_file(colour.state_dict(), str(coloured),
              metadata={"architecture": "digits-cnn", "arch_kwargs": '{"in_channels": 3}'})
    loaded = load_model(coloured, catalogue=catalogue, input_shape=(3, 8, 8), num_classes=10)
    assert loaded.module(torch.zeros(2, 3, 8, 8)).shape == (2, 10)


def test_bundled_weights_load_as_safetensors(catalogue: Catalogue, original: DigitsCNN,
                                             samples: torch.Tensor) -> None:
    model = _load(WEIGHTS, catalogue, arch="digits-cnn", name="default")
    assert model.name == "default"
    assert len(model.sha256) == 64
    _assert_same_logits(model, original, samples)


# ---------------------------------------------------------------- --arch module:Class


CUSTOM_ARCH = """
    import torch
    from robustbench_lite.models.zoo.digits_cnn import DigitsCNN

    class ScaledCNN(DigitsCNN):
        def __init__(self, num_classes, scale=1.0):
            super().__init__(num_classes=num_classes)
            self.scale = scale

        def forward(self, x):
            return super().forward(x) * self.scale

    def not_a_module(**kwargs):
        return 42
"""


def test_arch_module_class_with_kwargs(tmp_path: Path, catalogue: Catalogue,
                                       original: DigitsCNN, samples: torch.Tensor,
                                       make_module: Callable[[str], ModuleType]) -> None:
    module = make_module(CUSTOM_ARCH)
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    model = _load(path, catalogue, arch=f"{module.__name__}:ScaledCNN",
                  arch_kwargs={"num_classes": 10, "scale": 2.0})
    assert model.load_info.architecture == f"{module.__name__}:ScaledCNN"
    with torch.no_grad():
        torch.testing.assert_close(model(samples), 2.0 * original(samples), rtol=0, atol=1e-5)


def test_arch_module_class_bad_kwargs_or_return(tmp_path: Path, catalogue: Catalogue,
                                                original: DigitsCNN,
                                                make_module: Callable[[str], ModuleType]) -> None:
    module = make_module(CUSTOM_ARCH)
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(ModelLoadError, match="`arch_kwargs`"):
        _load(path, catalogue, arch=f"{module.__name__}:ScaledCNN", arch_kwargs={"bogus": 1})
    with pytest.raises(ModelLoadError, match=r"not a torch\.nn\.Module"):
        _load(path, catalogue, arch=f"{module.__name__}:not_a_module")


@pytest.mark.parametrize(("spec", "message"), [
    ("rbl_no_such_module_xyz:Net", "cannot import module 'rbl_no_such_module_xyz'"),
    ("robustbench_lite.models.zoo.digits_cnn:NoSuchClass", "has no attribute 'NoSuchClass'"),
    (":Net", "package.module:ClassName"),
])
def test_arch_bad_import(spec: str, message: str, tmp_path: Path, catalogue: Catalogue,
                         original: DigitsCNN) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(ModelLoadError) as info:
        _load(path, catalogue, arch=spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- pickled nn.Module and trust


PICKLED_MODULES = """
    from pathlib import Path

    from robustbench_lite.models.zoo.digits_cnn import DigitsCNN

    class PickledCNN(DigitsCNN):
        pass

    def touch(path):
        Path(path).write_text("code from the pickle ran")
        return 0

    class Payload:
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):
            return (touch, (self.marker,))
"""


def test_pickled_module_needs_trust(tmp_path: Path, catalogue: Catalogue,
                                    state_dict: dict[str, torch.Tensor], samples: torch.Tensor,
                                    make_module: Callable[[str], ModuleType]) -> None:
    module = make_module(PICKLED_MODULES)
    whole = module.PickledCNN()
    whole.load_state_dict(state_dict)
    whole.eval()
    path = tmp_path / "whole.pt"
    torch.save(whole, path)

    with pytest.raises(UntrustedModelError) as info:
        _load(path, catalogue)
    message = str(info.value)
    assert "arbitrary code" in message
    assert "`trust_model`" in message
    assert isinstance(info.value, ModelLoadError)

    model = _load(path, catalogue, trust_model=True)
    assert model.load_info.trusted is True
    assert model.load_info.format == "torch-pickle"
    assert type(model.module).__name__ == "PickledCNN"
    _assert_same_logits(model, whole, samples)


def test_trusted_checkpoint_of_weights_is_recorded_as_trusted(
        tmp_path: Path, catalogue: Catalogue, state_dict: dict[str, torch.Tensor]) -> None:
    """A checkpoint that holds weights beside other pickled objects needs full unpickling;
    loaded with trust_model, the result says so (it used to say trusted: false)."""
    import argparse

    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state_dict, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UntrustedModelError):
        _load(path, catalogue, arch="digits-cnn")
    model = _load(path, catalogue, arch="digits-cnn", trust_model=True)
    assert model.load_info.trusted is True


def test_pickled_module_in_checkpoint_with_trust(tmp_path: Path, catalogue: Catalogue,
                                                 state_dict: dict[str, torch.Tensor],
                                                 samples: torch.Tensor,
                                                 make_module: Callable[[str], ModuleType]
                                                 ) -> None:
    module = make_module(PICKLED_MODULES)
    whole = module.PickledCNN()
    whole.load_state_dict(state_dict)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": whole.eval(), "epoch": 1}, path)
    with pytest.raises(UntrustedModelError):
        _load(path, catalogue)
    model = _load(path, catalogue, trust_model=True)
    assert model.load_info.trusted is True
    _assert_same_logits(model, whole, samples)


def test_untrusted_load_never_runs_pickle_code(tmp_path: Path, catalogue: Catalogue,
                                               make_module: Callable[[str], ModuleType]) -> None:
    module = make_module(PICKLED_MODULES)
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": module.Payload(str(marker))}, path)

    with pytest.raises(UntrustedModelError):
        _load(path, catalogue)
    with pytest.raises(UntrustedModelError):
        _load(path, catalogue, arch="digits-cnn")
    assert not marker.exists(), "loading without --trust-model executed code from the pickle"

    # Positive control: the payload does run when the user trusts the file.
    with pytest.raises(ModelLoadError):
        _load(path, catalogue, trust_model=True)
    assert marker.read_text() == "code from the pickle ran"


def test_trusted_pickle_of_unimportable_class(tmp_path: Path, catalogue: Catalogue,
                                              make_module: Callable[[str], ModuleType]) -> None:
    module = make_module(PICKLED_MODULES)
    path = tmp_path / "whole.pt"
    torch.save(module.PickledCNN(), path)
    sys.modules.pop(module.__name__)
    Path(module.__file__ or "").unlink()
    importlib.invalidate_caches()
    with pytest.raises(ModelLoadError, match="PYTHONPATH"):
        _load(path, catalogue, trust_model=True)


# ---------------------------------------------------------------- normalisation and mode


def test_mean_std_folded_in(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN,
                            samples: torch.Tensor) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    model = _load(path, catalogue, arch="digits-cnn", mean=[0.5], std=[0.25])
    assert isinstance(model.module, Normalized)
    with torch.no_grad():
        expected = original((samples - 0.5) / 0.25)
        torch.testing.assert_close(model(samples), expected, rtol=0, atol=1e-6)
        assert not torch.allclose(model(samples), original(samples))


@pytest.mark.parametrize(("mean", "std", "message"), [
    ([0.5], None, "both `mean` and `std`"),
    (None, [0.5], "both `mean` and `std`"),
    ([0.5, 0.5, 0.5], [0.2, 0.2, 0.2], "1 channels"),
    ([0.5], [0.0], "positive"),
    ([0.5], [0.2, 0.2], "`std` has 2"),
])
def test_mean_std_errors(mean: list[float] | None, std: list[float] | None, message: str,
                         tmp_path: Path, catalogue: Catalogue, original: DigitsCNN) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        _load(path, catalogue, arch="digits-cnn", mean=mean, std=std)


class DropoutCNN(nn.Module):
    """A model whose predictions differ between training and evaluation mode."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop(self.base(x))
        return out


def test_training_mode_torchscript_warns_and_is_switched(tmp_path: Path, catalogue: Catalogue,
                                                         original: DigitsCNN,
                                                         samples: torch.Tensor) -> None:
    net = DropoutCNN(original).train()
    path = tmp_path / "train_mode.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    with pytest.warns(UserWarning, match="training mode.*evaluation mode"):
        model = _load(path, catalogue)
    assert model.module.training is False
    assert all(not sub.training for sub in model.module.modules())
    assert any("evaluation mode" in note for note in model.load_info.notes)
    _assert_same_logits(model, original, samples)  # dropout is off


def test_eval_mode_torchscript_does_not_warn(tmp_path: Path, catalogue: Catalogue,
                                             original: DigitsCNN) -> None:
    path = tmp_path / "eval_mode.pt"
    torch.jit.save(torch.jit.script(original.eval()), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        model = _load(path, catalogue)
    assert model.load_info.notes == ()


# ---------------------------------------------------------------- unreadable files


def test_missing_file(tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        _load(tmp_path / "nope.pt", catalogue)


def test_directory(tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(ModelLoadError, match="not a file"):
        _load(tmp_path, catalogue)


def test_empty_file(tmp_path: Path, catalogue: Catalogue) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        _load(path, catalogue, arch="digits-cnn")


@pytest.mark.parametrize("content", [
    random.Random(0).randbytes(4096),
    b"this is a text file, not a model\n" * 20,
    b"\x00" * 100,
])
def test_not_a_model(content: bytes, tmp_path: Path, catalogue: Catalogue) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        _load(path, catalogue, arch="digits-cnn")
    message = str(info.value)
    assert "not a model file" in message
    assert "torchscript" in message and "safetensors" in message


def _truncated_load_error(full: Path, path: Path, catalogue: Catalogue) -> str:
    """Write the first half of ``full`` to ``path``; loading it must raise ModelLoadError,
    whose message is returned."""
    data = full.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        _load(path, catalogue, arch="digits-cnn")
    return str(info.value)


@pytest.mark.parametrize("kind", ["torch.save", "torchscript"])
def test_truncated_zip(kind: str, tmp_path: Path, catalogue: Catalogue,
                       original: DigitsCNN) -> None:
    full = tmp_path / "full.pt"
    if kind == "torch.save":
        torch.save(original.state_dict(), full)
    else:
        torch.jit.save(torch.jit.script(original), str(full))
    message = _truncated_load_error(full, tmp_path / "truncated.pt", catalogue)
    assert "corrupt" in message or "truncated" in message


def test_truncated_legacy_file(tmp_path: Path, catalogue: Catalogue,
                               original: DigitsCNN) -> None:
    full = tmp_path / "full.pt"
    torch.save(original.state_dict(), full, _use_new_zipfile_serialization=False)
    message = _truncated_load_error(full, tmp_path / "truncated.pt", catalogue)
    assert "corrupt" in message or "truncated" in message


def test_truncated_safetensors(tmp_path: Path, catalogue: Catalogue,
                               original: DigitsCNN) -> None:
    full = tmp_path / "full.safetensors"
    save_file(original.state_dict(), str(full))
    _truncated_load_error(full, tmp_path / "truncated.safetensors", catalogue)


# ---------------------------------------------------------------- architecture mismatches


def test_wrong_keys_for_arch(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(ModelLoadError) as info:
        _load(path, catalogue, arch="preact-resnet18")
    message = str(info.value)
    assert "`arch` preact-resnet18" in message
    assert "missing keys: " in message and "conv1.weight" in message
    assert "unexpected keys: " in message and "features.0.weight" in message
    assert "\n" not in message


def test_wrong_shapes_for_arch(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(ModelLoadError) as info:
        _load(path, catalogue, arch="digits-cnn", arch_kwargs={"num_classes": 5})
    message = str(info.value)
    assert "shape mismatch" in message and "classifier.3.weight" in message
    assert "num_classes" in message


@pytest.mark.parametrize("save", ["torch", "safetensors"])
def test_state_dict_without_arch(save: str, tmp_path: Path, catalogue: Catalogue,
                                 original: DigitsCNN) -> None:
    path = tmp_path / "weights.bin"
    if save == "torch":
        torch.save({"state_dict": original.state_dict()}, path)
    else:
        save_file(original.state_dict(), str(path))
    with pytest.raises(ModelLoadError, match="`arch`"):
        _load(path, catalogue)


def test_checkpoint_without_state_dict(tmp_path: Path, catalogue: Catalogue) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ModelLoadError, match="holds no state_dict") as info:
        _load(path, catalogue, arch="digits-cnn")
    assert "epoch" in str(info.value)


def test_unknown_arch_name(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(UnknownArchitectureError) as info:
        _load(path, catalogue, arch="resnet9000")
    message = str(info.value)
    assert "'resnet9000'" in message
    assert "digits-cnn" in message and "preact-resnet18" in message
    assert "package.module:ClassName" in message


# ---------------------------------------------------------------- check_model_on_data


def test_check_model_on_data_ok(tmp_path: Path, catalogue: Catalogue, original: DigitsCNN,
                                digits: EvalData) -> None:
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    model = load_model(path, catalogue=catalogue, input_shape=digits.input_shape,
                       arch="digits-cnn")
    assert model.num_classes == 0  # not known until checked on data
    check_model_on_data(model, digits)
    assert model.num_classes == 10


def test_check_wrong_input_shape(tmp_path: Path, catalogue: Catalogue,
                                 digits: EvalData) -> None:
    path = tmp_path / "cifar_model.pt"
    torch.jit.save(torch.jit.script(WideInputNet().eval()), str(path))
    model = _load(path, catalogue)
    with pytest.raises(ModelDataMismatchError) as info:
        check_model_on_data(model, digits)
    message = str(info.value)
    assert "(1, 8, 8)" in message and "'digits'" in message
    assert "\n" not in message


def test_check_class_count_mismatch(tmp_path: Path, catalogue: Catalogue,
                                    digits: EvalData) -> None:
    torch.manual_seed(0)
    path = tmp_path / "five.pt"
    torch.save(DigitsCNN(num_classes=5).state_dict(), path)
    model = _load(path, catalogue, arch="digits-cnn", arch_kwargs={"num_classes": 5})
    with pytest.raises(ModelDataMismatchError) as info:
        check_model_on_data(model, digits)
    message = str(info.value)
    assert "5 classes" in message and "has 10" in message


def test_check_wrong_output_shape(tmp_path: Path, catalogue: Catalogue,
                                  digits: EvalData) -> None:
    path = tmp_path / "flat.pt"
    torch.jit.save(torch.jit.script(nn.Flatten(0).eval()), str(path))
    model = _load(path, catalogue)
    with pytest.raises(ModelDataMismatchError, match=r"\(batch, features\)"):
        check_model_on_data(model, digits)


def test_check_nan_logits(tmp_path: Path, catalogue: Catalogue, digits: EvalData) -> None:
    path = tmp_path / "nan.pt"
    torch.jit.save(torch.jit.script(NaNNet().eval()), str(path))
    model = _load(path, catalogue)
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite"):
        check_model_on_data(model, digits)
