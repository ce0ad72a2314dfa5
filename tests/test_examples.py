"""Example images: which samples, the PNGs, and what the audit stores for the report."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_lite.attacks import FGSM, PGD
from robustbench_lite.attacks.base import LogitsFn
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.engine.examples import capture_examples, choose_samples, png_data_uri
from robustbench_lite.host.attack import CLASSIFICATION
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.objective import Objective
from robustbench_lite.threat import Norm, ThreatModel

LINF = ThreatModel(Norm.LINF, 0.1)


def decode(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):])))


def test_choose_samples_prefers_broken_ones_of_distinct_classes() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    broken = np.array([True, True, False, True, False, False, False])
    candidates = np.array([True, True, True, True, True, False, True])
    assert choose_samples(broken, candidates, labels, 2) == [0, 3]
    assert choose_samples(broken, candidates, labels, 3) == [0, 3, 1]
    # then the candidates the attack did not break, one per class first
    assert choose_samples(broken, candidates, labels, 6) == [0, 3, 1, 2, 4, 6]
    assert choose_samples(broken, candidates, labels, 10) == [0, 3, 1, 2, 4, 6]
    assert choose_samples(broken & False, candidates, labels, 2) == [0, 2]
    assert choose_samples(broken, candidates, labels, 0) == []


def test_png_data_uri_enlarges_and_keeps_values() -> None:
    grey = np.linspace(0, 1, 64).reshape(1, 8, 8)
    picture = decode(png_data_uri(grey))
    assert picture.size == (96, 96) and picture.mode == "L"
    pixels = np.asarray(picture)
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255
    assert (pixels[:12, :12] == pixels[0, 0]).all()  # nearest neighbour, 12x
    colour = decode(png_data_uri(np.full((3, 200, 100), 0.5)))
    assert colour.size == (100, 200) and colour.mode == "RGB"  # large images stay as they are
    assert np.asarray(colour)[0, 0].tolist() == [128, 128, 128]


def test_capture_examples_describes_the_attack(default_model: RobustModel,
                                               digits_test: EvalData) -> None:
    examples = capture_examples(default_model, digits_test, CLASSIFICATION, PGD(steps=10), LINF,
                                [0, 1, 2], seed=0)
    assert [example.index for example in examples] == [0, 1, 2]
    names = digits_test.class_names
    for example in examples:
        assert example.true_label == names[int(digits_test.y[example.index])]
        assert {example.clean_label, example.adversarial_label} <= set(names)
        assert 0 < example.clean_confidence <= 1 and 0 < example.adversarial_confidence <= 1
        assert example.distance <= LINF.eps + 1e-5
        assert (example.attack, example.norm, example.eps) == ("pgd", "linf", 0.1)
        clean = np.asarray(decode(example.clean_image), dtype=float) / 255
        adversarial = np.asarray(decode(example.adversarial_image), dtype=float) / 255
        assert np.abs(adversarial - clean).max() <= LINF.eps + 1 / 255  # 8-bit rounding
        perturbation = np.asarray(decode(example.perturbation_image), dtype=float) / 255
        # amplified around mid-grey until the largest change reaches black or white
        assert np.abs(perturbation - 0.5).max() == pytest.approx(0.5, abs=1 / 255)
        assert example.amplification == pytest.approx(0.5 / example.distance, rel=1e-3)
    assert any(e.adversarial_label != e.true_label for e in examples)


def test_capture_examples_skips_unshowable_images_and_notes_failed_attacks(
        default_model: RobustModel, digits_test: EvalData) -> None:
    two_channels = EvalData(digits_test.x[:4].repeat(1, 2, 1, 1), digits_test.y[:4],
                            digits_test.class_names, "two channels")
    assert capture_examples(default_model, two_channels, CLASSIFICATION, FGSM(), LINF, [0, 1],
                            seed=0) == []

    class Broken(FGSM):
        def run(self, model: LogitsFn, x: torch.Tensor, objective: Objective,
                threat: ThreatModel, generator: torch.Generator) -> torch.Tensor:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        capture_examples(default_model, digits_test, CLASSIFICATION, Broken(), LINF, [0], 0)
    # In an audit the examples stage is guarded: the failure is a note, the cells stay.
    result = run_audit(default_model, digits_test.subset(30), [Broken()], [LINF],
                       AuditSettings(show_progress=False, examples=2), [])
    assert result.examples == [] and result.notes == []  # the cell failed: nothing to show
    assert result.cells[0].error == "RuntimeError: boom"


def test_audit_stores_examples_of_the_strongest_attack(default_model: RobustModel,
                                                       digits_test: EvalData) -> None:
    data = digits_test.subset(60)
    threats = [ThreatModel(Norm.LINF, 0.05), LINF]
    settings = AuditSettings(show_progress=False, examples=4)
    result = run_audit(default_model, data, [FGSM(), PGD(steps=10)], threats, settings, [])
    assert len(result.examples) == 4
    assert {(e.attack, e.eps) for e in result.examples} == {("pgd", 0.1)}  # the headline eps
    broken = [e for e in result.examples if e.adversarial_label != e.true_label]
    assert broken and result.examples[0] in broken  # broken samples come first
    labels = [e.true_label for e in broken]
    assert len(set(labels)) == len(labels)  # one per class first
    none = run_audit(default_model, data, [FGSM()], threats,
                     AuditSettings(show_progress=False, examples=0), [])
    assert none.examples == []
