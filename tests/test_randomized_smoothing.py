"""Randomized smoothing (Cohen et al. 2019): the Clopper-Pearson bound, CERTIFY's properties,
agreement with ART's implementation, the audit's certificate in results.json and the
reports, and the gaussian-augmentation defense that trains its base classifier."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from result_factory import make_result
from scipy.stats import beta, binomtest, norm
from torch import nn

from robustbench_lite import results_schema
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli import cli
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.base import TrainingStep
from robustbench_lite.defenses.gaussian import GaussianAugmentation
from robustbench_lite.defenses.randomized_smoothing import (
    ABSTAIN,
    certify,
    lower_confidence_bound,
)
from robustbench_lite.engine import audit as audit_module
from robustbench_lite.engine.audit import run_audit
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.errors import DefenseError, ResultsFileError
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.reports.diff import render_diff_html
from robustbench_lite.reports.outputs import results_document
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import AuditResult, read_results
from robustbench_lite.threat import parse_threat_spec


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the bound


@pytest.mark.parametrize("k, n", [(1, 10), (5, 10), (9, 10), (10, 10), (97, 100),
                                  (100, 100), (450, 1000), (999, 1000)])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_lower_bound_is_the_exact_interval_end(k: int, n: int, alpha: float) -> None:
    """One-sided at 1 - alpha = the lower end of the two-sided exact interval at 1 - 2 alpha."""
    expected = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha,
                                             method="exact").low
    assert float(lower_confidence_bound(k, n, alpha)) == pytest.approx(expected, abs=1e-9)


def test_lower_bound_of_nothing_is_zero_and_of_everything_is_alpha_root() -> None:
    assert float(lower_confidence_bound(0, 50, 0.001)) == 0.0
    assert float(lower_confidence_bound(50, 50, 0.001)) == pytest.approx(0.001 ** (1 / 50))
    many = lower_confidence_bound(np.array([0, 25, 50]), 50, 0.001)
    assert many.shape == (3,) and many[0] == 0 and 0 < many[1] < 0.5 < many[2] < 1


# ------------------------------------------------------------------ CERTIFY's properties


class Constant(nn.Module):
    def __init__(self, label: int, classes: int = 10) -> None:
        super().__init__()
        self.label, self.classes = label, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), self.classes)
        logits[:, self.label] = 1
        return logits


class Coin(nn.Module):
    """Ignores the input: a uniformly random class on every call (its own generator)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.classes = classes
        self.generator = torch.Generator().manual_seed(123)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rand(len(x), self.classes, generator=self.generator)


def test_constant_classifier_gets_the_largest_radius_n_draws_allow() -> None:
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([3, 3, 3, 1, 2])
    sigma, n, alpha = 0.5, 200, 0.001
    found = certify(Constant(3), x, y, sigma=sigma, n0=10, n=n, alpha=alpha, batch_size=64,
                    generator=_generator())
    assert found.predictions.tolist() == [3] * 5
    expected = sigma * norm.ppf(alpha ** (1 / n))
    assert torch.allclose(found.radii, torch.full((5,), expected), atol=1e-6)
    assert found.abstained == 0
    assert found.certified_accuracy(expected - 1e-4) == pytest.approx(0.6)
    assert found.certified_accuracy(expected + 1e-4) == 0


def test_random_classifier_abstains() -> None:
    x, y = torch.rand(20, 1, 8, 8), torch.zeros(20, dtype=torch.long)
    found = certify(Coin(), x, y, sigma=0.25, n0=20, n=100, batch_size=500,
                    generator=_generator())
    assert (found.predictions == ABSTAIN).all() and (found.radii == 0).all()
    assert found.abstained == 1 and found.certified_accuracy(0.0) == 0


def test_certificate_is_seeded(
        default_model: RobustModel, digits_test: EvalData) -> None:
    data = digits_test.subset(12)
    runs = [certify(default_model, data.x, data.y, sigma=0.25, n0=20, n=100, batch_size=64,
                    generator=_generator(7)) for _ in range(2)]
    assert torch.equal(runs[0].predictions, runs[1].predictions)
    assert torch.equal(runs[0].radii, runs[1].radii)
    other = certify(default_model, data.x, data.y, sigma=0.25, n0=20, n=100, batch_size=64,
                    generator=_generator(8))
    assert not torch.equal(runs[0].radii, other.radii)


@pytest.mark.parametrize("kwargs, message", [
    ({"sigma": 0.0}, "`sigma` must be a number > 0"),
    ({"n": 0}, "`n` must be an integer >= 1"),
    ({"n0": 1.5}, "`n0` must be an integer >= 1"),
    ({"alpha": 0.5}, "`alpha` must be a number with 0 < alpha < 0.5"),
])
def test_bad_settings_are_one_line(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"sigma": 0.25, "n0": 10, "n": 10, "alpha": 0.001,
                                **kwargs}
    with pytest.raises(DefenseError, match=message):
        certify(Constant(0), torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long),
                generator=_generator(), **settings)


# ------------------------------------------------------------------ against ART


def test_radii_agree_with_art(default_model: RobustModel, digits_test: EvalData) -> None:
    """Same model, noise level and budget through ART's PyTorchRandomizedSmoothing: the
    two differ only by Monte Carlo noise (ART draws with NumPy). ART's Clopper-Pearson
    bound calls statsmodels, which is not installed; it is replaced by the same formula
    (``proportion_confint(k, n, alpha=2 alpha, method="beta")[0]``) through scipy.

    The tolerances are Monte Carlo noise, measured: at n = 1000 two runs of our own with
    other seeds differ by less than 0.1 sigma on only about 77% of these digits (the radius
    moves fastest where p_A is far from 1), by less than 0.2 sigma on all of them, and their
    mean radii by about 0.01 sigma."""
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    sigma, n0, n, alpha = 0.25, 50, 1000, 0.001
    data = digits_test.subset(30)
    ours = certify(default_model, data.x, data.y, sigma=sigma, n0=n0, n=n, alpha=alpha,
                   batch_size=1000, generator=_generator())
    art = PyTorchRandomizedSmoothing(
        default_model.module, nn.CrossEntropyLoss(), input_shape=tuple(data.x.shape[1:]),
        nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu", sample_size=n0,
        scale=sigma, alpha=alpha)
    art._lower_confidence_bound = (
        lambda k, total: float(beta.ppf(alpha, k, total - k + 1)) if k > 0 else 0.0)
    np.random.seed(0)
    predictions, radii = art.certify(data.x.numpy(), n=n, batch_size=1000)
    art_predictions = torch.from_numpy(predictions).long()
    art_radii = torch.from_numpy(radii).float()
    same_abstention = (ours.predictions == ABSTAIN) == (art_predictions == ABSTAIN)
    assert same_abstention.float().mean() >= 0.9
    both = (ours.predictions != ABSTAIN) & (art_predictions != ABSTAIN)
    assert torch.equal(ours.predictions[both], art_predictions[both])
    gap = (ours.radii[both] - art_radii[both]).abs()
    assert (gap < 0.2 * sigma).float().mean() >= 0.9
    assert abs(float(ours.radii[both].mean() - art_radii[both].mean())) < 0.04 * sigma


# ------------------------------------------------------------------ the audit's certificate


LIPSCHITZ = {"available": False, "reason": "skipped here (its bound takes seconds)"}


@pytest.fixture
def no_lipschitz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "certificate", lambda *args: dict(LIPSCHITZ))


def _audited(model: RobustModel, data: EvalData, sigma: float | None) -> AuditResult:
    settings = AuditSettings(show_progress=False, examples=0, smoothing_sigma=sigma,
                             smoothing_n0=20, smoothing_n=100, batch_size=500)
    return run_audit(model, data, [], parse_threat_spec("l2:0.3"), settings, [], certify=True)


@pytest.mark.usefixtures("no_lipschitz")
def test_audit_states_the_smoothing_certificate(default_model: RobustModel,
                                                digits_test: EvalData,
                                                tmp_path: Path) -> None:
    data = digits_test.subset(30)
    result = _audited(default_model, data, 0.25)
    found = result.certificate["smoothing"]
    assert found["available"] is True and found["sigma"] == 0.25
    assert (found["n0"], found["n"], found["alpha"]) == (20, 100, 0.001)
    assert [row["radius"] for row in found["certified"]] == [0.25, 0.3, 0.5, 1.0]
    assert 0 <= found["abstained"] <= 1
    # n = 100 draws cannot certify beyond sigma * Phi^-1(alpha^(1/100)) ~ 0.41
    assert found["certified"][-2]["accuracy"] == 0 and found["certified"][0]["accuracy"] > 0
    assert result.certificate["reason"] == LIPSCHITZ["reason"]  # the Lipschitz one is kept
    html = render_html(result)
    section = html[html.index('<section id="certified"'):]
    section = section[:section.index("</section>")]
    assert "Randomized smoothing" in section and "not the base model f" in section
    first = found["certified"][0]
    assert f"{100 * first['accuracy']:.1f}%" in section
    path = tmp_path / "results.json"
    path.write_text(results_schema.dumps(results_document(result)))
    assert read_results(path).certificate["smoothing"] == json.loads(
        json.dumps(found))
    assert "randomized smoothing" in render_diff_html(_audited(default_model, data, None),
                                                      result)


@pytest.mark.usefixtures("no_lipschitz")
def test_smoothing_is_off_unless_asked(default_model: RobustModel,
                                       digits_test: EvalData) -> None:
    assert "smoothing" not in _audited(default_model, digits_test.subset(5),
                                       None).certificate


def _raw_with(smoothing: dict[str, Any]) -> dict[str, Any]:
    result = make_result(certificate={"available": False, "reason": "not a chain",
                                      "smoothing": smoothing})
    document: dict[str, Any] = json.loads(results_schema.dumps(results_document(result)))
    return document


GOOD = {"available": True, "sigma": 0.5, "n0": 50, "n": 400, "alpha": 0.001,
        "abstained": 0.1, "accuracy": 0.8,
        "certified": [{"radius": 0.25, "accuracy": 0.7}, {"radius": 0.5, "accuracy": 0.4}]}


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["certified"][0].update(radius=-0.25),
     "certificate.smoothing.certified[0].radius must be a non-negative number"),
    (lambda s: s["certified"][1].update(accuracy=1.2),
     "certificate.smoothing.certified[1].accuracy must be a number in [0, 1]"),
    (lambda s: s.update(abstained=-0.1),
     "certificate.smoothing.abstained must be a number in [0, 1]"),
    (lambda s: s.pop("sigma"), "missing the field 'certificate.smoothing.sigma'"),
    (lambda s: s.update(n="400"), "certificate.smoothing.n must be"),
    (lambda s: s.clear() or s.update(available=False),
     "missing the field 'certificate.smoothing.reason'"),
])
def test_smoothing_in_results_json_is_checked(change: Any, expected: str,
                                              tmp_path: Path) -> None:
    good = _raw_with(copy.deepcopy(GOOD))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(good))
    assert read_results(path).certificate["smoothing"]["certified"][1]["radius"] == 0.5
    smoothing = copy.deepcopy(GOOD)
    change(smoothing)
    path.write_text(json.dumps(_raw_with(smoothing)))
    with pytest.raises(ResultsFileError, match=expected.replace("[", r"\[").replace(
            "]", r"\]")):
        read_results(path)


# ------------------------------------------------------------------ the defense


def _step(x: torch.Tensor, seed: int = 0) -> TrainingStep:
    return TrainingStep(nn.Identity(), x, torch.zeros(len(x), dtype=torch.long), 10, 0.5,
                        _generator(seed))


def test_gaussian_augmentation_adds_clipped_noise_of_sigma() -> None:
    x = torch.full((64, 1, 16, 16), 0.5)
    noisy = GaussianAugmentation(sigma=0.1).perturb(_step(x))
    assert noisy.shape == x.shape and noisy.min() >= 0 and noisy.max() <= 1
    assert float((noisy - x).std()) == pytest.approx(0.1, rel=0.05)
    assert torch.equal(noisy, GaussianAugmentation(sigma=0.1).perturb(_step(x)))
    clipped = GaussianAugmentation(sigma=1.0).perturb(_step(torch.zeros(8, 1, 4, 4)))
    assert clipped.min() == 0 and (clipped == 0).float().mean() > 0.4


def test_gaussian_augmentation_ratio_keeps_a_share_clean() -> None:
    x = torch.full((400, 1, 4, 4), 0.5)
    noisy = GaussianAugmentation(sigma=0.25, ratio=0.25).perturb(_step(x))
    changed = (noisy != x).flatten(1).any(dim=1).float().mean()
    assert float(changed) == pytest.approx(0.25, abs=0.07)


@pytest.mark.parametrize("kwargs, message", [({"sigma": 0}, "sigma must be a number > 0"),
                                             ({"ratio": 1.5}, "0 < ratio <= 1"),
                                             ({"sigma": "big"}, "sigma must be")])
def test_gaussian_augmentation_checks_its_parameters(kwargs: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(DefenseError, match=message):
        GaussianAugmentation(**kwargs)


def test_gaussian_augmentation_is_registered() -> None:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    defense = catalogue.defenses.get("gaussian-augmentation")
    assert defense is GaussianAugmentation and defense().perturbs
    assert not defense().owns_loss


@pytest.mark.slow
def test_harden_with_gaussian_augmentation_certifies_both_audits(tmp_path: Path) -> None:
    """``robust harden --defense gaussian-augmentation:sigma=S`` trains end to end and turns
    the smoothing certificate on at S in the audits before and after."""
    outcome = CliRunner().invoke(cli, [
        "harden", "--defense", "gaussian-augmentation:sigma=0.5", "--epochs", "1",
        "--n-samples", "20", "--matrix", "quick", "--out", str(tmp_path), "-q"])
    assert outcome.exit_code == 0, outcome.output
    for side in ("before", "after"):
        smoothing = read_results(tmp_path / side / "results.json").certificate["smoothing"]
        assert smoothing["available"] is True and smoothing["sigma"] == 0.5
        assert "Randomized smoothing" in (tmp_path / side / "report.html").read_text()
    assert "randomized smoothing" in (tmp_path / "comparison.html").read_text()
