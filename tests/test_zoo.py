"""Tests for the RobustBench-compatible CIFAR architectures in ``robustbench_lite.models.zoo``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.models.zoo.preact_resnet import PreActResNet18
from robustbench_lite.models.zoo.wide_resnet import WideResNet

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str) -> set[str]:
    return {f"{prefix}.{suffix}" for suffix in BN_SUFFIXES}


def _expected_preact_keys(bn_before_fc: bool = False) -> set[str]:
    """RobustBench ``PreActResNet18`` layout: projection shortcut only in ``layer{2,3,4}.0``."""
    keys = {"conv1.weight", "linear.weight", "linear.bias"}
    for stage in range(1, 5):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            keys |= _bn(f"{prefix}.bn1") | _bn(f"{prefix}.bn2")
            keys |= {f"{prefix}.conv1.weight", f"{prefix}.conv2.weight"}
            if stage > 1 and block == 0:
                keys.add(f"{prefix}.shortcut.0.weight")
    if bn_before_fc:
        keys |= _bn("bn")
    return keys


def _expected_wrn_keys(blocks_per_group: int) -> set[str]:
    """RobustBench ``WideResNet`` layout (widen_factor > 1): ``convShortcut`` in each ``.0``."""
    keys = {"conv1.weight", "fc.weight", "fc.bias"} | _bn("bn1")
    for group in range(1, 4):
        for block in range(blocks_per_group):
            prefix = f"block{group}.layer.{block}"
            keys |= _bn(f"{prefix}.bn1") | _bn(f"{prefix}.bn2")
            keys |= {f"{prefix}.conv1.weight", f"{prefix}.conv2.weight"}
            if block == 0:
                keys.add(f"{prefix}.convShortcut.weight")
    return keys


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def preact() -> PreActResNet18:
    torch.manual_seed(0)
    return PreActResNet18().eval()


@pytest.fixture(scope="module")
def wrn() -> WideResNet:
    torch.manual_seed(0)
    return WideResNet().eval()


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("name", ["preact", "wrn"])
def test_forward_gives_logits(name: str, request: pytest.FixtureRequest) -> None:
    model: nn.Module = request.getfixturevalue(name)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    # Attacks need input gradients.
    logits.sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0


def test_forward_is_batch_independent_in_eval(preact: PreActResNet18) -> None:
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        together = preact(x)
        alone = preact(x[:1])
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- parameter counts


def test_preact_parameter_count(preact: PreActResNet18) -> None:
    # Same count as RobustBench's PreActResNet18() (no bn before the classifier).
    assert _num_params(preact) == 11_171_146


def test_preact_bn_before_fc_adds_final_bn() -> None:
    model = PreActResNet18(bn_before_fc=True)
    assert _num_params(model) == 11_171_146 + 2 * 512
    assert set(model.state_dict()) == _expected_preact_keys(bn_before_fc=True)


def test_wrn_parameter_count(wrn: WideResNet) -> None:
    assert _num_params(wrn) == 36_479_194


# ---------------------------------------------------------------- state_dict layout


def test_preact_state_dict_keys(preact: PreActResNet18) -> None:
    state = preact.state_dict()
    keys = set(state)
    assert keys == _expected_preact_keys()
    assert len(state) == 102
    for key in ("layer1.0.bn1.running_mean", "layer2.0.shortcut.0.weight", "linear.weight",
                "layer4.1.conv2.weight"):
        assert key in keys
    # No projection in layer1 or in the second blocks, no stem BatchNorm, no final bn.
    for key in ("layer1.0.shortcut.0.weight", "layer2.1.shortcut.0.weight", "bn1.weight",
                "bn.weight", "fc.weight"):
        assert key not in keys
    assert state["layer2.0.shortcut.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.0.conv1.weight"].shape == (512, 256, 3, 3)
    assert state["conv1.weight"].shape == (64, 3, 3, 3)
    assert state["linear.weight"].shape == (10, 512)


def test_wrn_state_dict_keys(wrn: WideResNet) -> None:
    state = wrn.state_dict()
    keys = set(state)
    assert keys == _expected_wrn_keys(blocks_per_group=4)
    assert len(state) == 155
    for key in ("block1.layer.0.convShortcut.weight", "block3.layer.3.conv2.weight", "fc.bias",
                "bn1.running_var", "block2.layer.0.bn1.num_batches_tracked"):
        assert key in keys
    for key in ("block1.layer.1.convShortcut.weight", "block3.layer.4.conv1.weight",
                "sub_block1.layer.0.conv1.weight", "bn2.weight", "linear.weight"):
        assert key not in keys
    assert state["conv1.weight"].shape == (16, 3, 3, 3)
    assert state["block1.layer.0.convShortcut.weight"].shape == (160, 16, 1, 1)
    assert state["block3.layer.0.conv1.weight"].shape == (640, 320, 3, 3)
    assert state["fc.weight"].shape == (10, 640)


def test_wrn_without_widening_has_no_first_shortcut() -> None:
    # 16 -> 16 channels in block1: identity shortcut, exactly as in RobustBench.
    keys = set(WideResNet(depth=10, widen_factor=1).state_dict())
    assert "block1.layer.0.convShortcut.weight" not in keys
    assert "block2.layer.0.convShortcut.weight" in keys


def test_state_dict_round_trips_strictly(preact: PreActResNet18) -> None:
    other = PreActResNet18()
    other.load_state_dict(preact.state_dict(), strict=True)
    other.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(other(x), preact(x))


# ---------------------------------------------------------------- options and validation


def test_num_classes_changes_head() -> None:
    preact = PreActResNet18(num_classes=100)
    assert preact.linear.weight.shape == (100, 512)
    assert preact.linear.bias.shape == (100,)
    wrn = WideResNet(depth=10, widen_factor=2, num_classes=100)
    assert wrn.fc.weight.shape == (100, 128)
    with torch.no_grad():
        assert preact.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 100)
        assert wrn.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 100)


def test_in_channels_changes_stem() -> None:
    assert PreActResNet18(in_channels=1).conv1.weight.shape == (64, 1, 3, 3)
    wrn = WideResNet(depth=10, widen_factor=1, in_channels=1)
    assert wrn.conv1.weight.shape == (16, 1, 3, 3)
    with torch.no_grad():
        assert wrn.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("depth", [4, 27, 30, 0, -2])
def test_bad_depth_raises(depth: int) -> None:
    with pytest.raises(ValueError, match=r"6n \+ 4"):
        WideResNet(depth=depth)


def test_bad_widen_factor_and_dropout_raise() -> None:
    with pytest.raises(ValueError, match="widen_factor"):
        WideResNet(depth=10, widen_factor=0)
    with pytest.raises(ValueError, match="dropout"):
        WideResNet(depth=10, widen_factor=1, dropout=1.0)


def test_bad_num_classes_raises() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        PreActResNet18(num_classes=0)
    with pytest.raises(ValueError, match="num_classes"):
        WideResNet(depth=10, num_classes=0)


def test_dropout_is_active_only_in_training() -> None:
    torch.manual_seed(0)
    model = WideResNet(depth=10, widen_factor=1, dropout=0.5)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))
