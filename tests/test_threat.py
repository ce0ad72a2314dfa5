from __future__ import annotations

import math

import pytest
import torch

from robustbench_lite.errors import ThreatModelError
from robustbench_lite.threat import (
    Norm,
    ThreatModel,
    parse_eps,
    parse_threat_spec,
    project_l1_ball,
)


@pytest.mark.parametrize(("text", "value"), [("0.1", 0.1), ("8/255", 8 / 255), ("1e-2", 0.01),
                                             (" 4 / 255 ", 4 / 255), (".5", 0.5)])
def test_parse_eps_accepts_decimals_and_fractions(text: str, value: float) -> None:
    assert math.isclose(parse_eps(text), value)


@pytest.mark.parametrize("text", ["", "abc", "1/0", "0.1.2", "--0.1"])
def test_parse_eps_rejects_garbage(text: str) -> None:
    with pytest.raises(ThreatModelError):
        parse_eps(text)


def test_parse_threat_spec() -> None:
    threats = parse_threat_spec("linf:0.1,8/255")
    assert [t.norm for t in threats] == [Norm.LINF, Norm.LINF]
    assert [t.eps for t in threats] == pytest.approx([0.1, 8 / 255])
    assert parse_threat_spec("L2:1.0")[0].norm is Norm.L2


def test_negative_eps_gets_the_positive_eps_message() -> None:
    with pytest.raises(ThreatModelError, match=r"eps must be greater than 0, got -0\.1"):
        parse_threat_spec("linf:-0.1")


@pytest.mark.parametrize("spec", ["linf:0", "linf:-0.1", "linf", "linf:", "l7:0.1", ":0.1"])
def test_parse_threat_spec_rejects_bad_input(spec: str) -> None:
    with pytest.raises(ThreatModelError):
        parse_threat_spec(spec)


def test_zero_eps_allowed_in_the_library_only() -> None:
    assert parse_threat_spec("linf:0", allow_zero=True)[0].eps == 0
    assert ThreatModel(Norm.LINF, 0.0).eps == 0
    with pytest.raises(ThreatModelError):
        ThreatModel(Norm.LINF, -1.0)
    with pytest.raises(ThreatModelError):
        ThreatModel(Norm.L2, float("nan"))


@pytest.mark.parametrize("norm", list(Norm))
def test_project_lands_inside_and_contains_agrees(norm: Norm) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=generator)
    far = x + 3 * torch.randn(16, 1, 8, 8, generator=generator)
    threat = ThreatModel(norm, 0.5)
    projected = threat.project(far, x)
    assert bool(threat.contains(projected, x).all())
    assert not bool(threat.contains(far, x).all())
    assert projected.min() >= 0 and projected.max() <= 1


def test_linf_projection_is_exact_clip() -> None:
    x = torch.full((1, 1, 2, 2), 0.5)
    x_adv = torch.tensor([[[[0.9, 0.1], [0.55, 0.5]]]])
    projected = ThreatModel(Norm.LINF, 0.1).project(x_adv, x)
    assert torch.allclose(projected, torch.tensor([[[[0.6, 0.4], [0.55, 0.5]]]]))


def test_contains_checks_the_pixel_box() -> None:
    x = torch.full((1, 1, 2, 2), 0.98)
    outside_box = x + 0.05
    assert not bool(ThreatModel(Norm.LINF, 0.1).contains(outside_box, x)[0])


def test_l1_projection_is_the_euclidean_projection() -> None:
    generator = torch.Generator().manual_seed(1)
    delta = torch.randn(32, 1, 4, 4, generator=generator)
    projected = project_l1_ball(delta, 2.0)
    sizes = projected.flatten(1).abs().sum(dim=1)
    assert torch.allclose(sizes, torch.full_like(sizes, 2.0), atol=1e-5)
    # soft-thresholding form: every moved coordinate shrank by the same per-sample amount
    shrink = (delta.abs() - projected.abs()).flatten(1)
    kept = projected.flatten(1) != 0
    for row in range(len(delta)):
        values = shrink[row][kept[row]]
        assert torch.allclose(values, values[0].expand_as(values), atol=1e-5)
    inside = delta / delta.flatten(1).abs().sum(dim=1).view(-1, 1, 1, 1)
    assert torch.equal(project_l1_ball(inside, 2.0), inside)
