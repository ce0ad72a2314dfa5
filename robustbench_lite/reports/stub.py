"""A small made-up `AuditResult` with every optional part present (failed, targeted and
invalid cells, transfer rows, sanity checks, gates, examples, a certificate, notes, a GAN
audit's ``gan`` object and a threat summary of another task's objective), on
which the report templates are rendered before an audit runs (`render.check_templates`):
a template that fails on any part of a result fails at once, not after the audit."""

from __future__ import annotations

from robustbench_lite.results import (
    AdversarialExample,
    AuditResult,
    CellResult,
    CurvePoint,
    DataInfo,
    Judgement,
    ModelInfo,
    PerClassRow,
    RunInfo,
    SanityCheck,
    StageNote,
    TaskInfo,
    ThreatSummary,
)

#: A 1x1 transparent PNG: the examples' images.
_PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
          "YAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
_CLASSES = ["zero", "one"]


def _cell(attack: str, norm: str, eps: float, accuracy: float | None,
          **fields: object) -> CellResult:
    values: dict[str, object] = dict(
        attack=attack, params={"steps": 10}, norm=norm, eps=eps, targeted=False,
        accuracy=accuracy, success_rate=None if accuracy is None else 1 - accuracy,
        n_samples=4, mean_distance=None if accuracy is None else eps / 2,
        max_distance=None if accuracy is None else eps, queries=40, seconds=0.5,
        batch_size=4, n_attacked=4)
    values.update(fields)
    return CellResult(**values)  # type: ignore[arg-type]


def _example(norm: str, eps: float, semantic: bool = False) -> AdversarialExample:
    return AdversarialExample(
        index=0, attack="pgd" if not semantic else "semantic", norm=norm, eps=eps,
        true_label=_CLASSES[0], clean_label=_CLASSES[0], clean_confidence=0.9,
        adversarial_label=_CLASSES[1], adversarial_confidence=0.6, distance=eps,
        amplification=4.0, clean_image=_PIXEL, perturbation_image=_PIXEL,
        adversarial_image=_PIXEL)


def stub_result() -> AuditResult:
    """A made-up result of two classes and four samples with every optional part."""
    threats = [("linf", 0.1, False, None), ("l2", 0.5, True, "least-likely")]
    cells = [
        _cell("fgsm", "linf", 0.1, 0.5),
        _cell("pgd", "linf", 0.1, 0.25, violations=1,
              violation_details=["1 sample outside the eps-ball"]),
        _cell("pgd", "l2", 0.5, 0.75, targeted=True, target_mode="least-likely",
              objective="targeted(least-likely)", success_rate=0.25),
        _cell("square", "linf", 0.1, None, error="RuntimeError: example failure"),
        _cell("deepfool", "l2", 0.5, None, skipped="example: not applicable"),
    ]
    return AuditResult(
        model=ModelInfo("template-check", "0" * 64, "safetensors", False, "digits-cnn", 2,
                        [1, 8, 8], notes=["switched from training to evaluation mode"]),
        data=DataInfo("template-check", "1" * 64, 4, "made up to check the templates",
                      "digits", list(_CLASSES)),
        clean_accuracy=1.0, cells=cells,
        robust_accuracy=[
            ThreatSummary(norm=norm, eps=eps, accuracy=0.25, attacks=["fgsm", "pgd"],
                          targeted=targeted, target_mode=mode,
                          success_rate=0.25 if targeted else None, standard_error=0.01)
            for norm, eps, targeted, mode in threats]
        + [ThreatSummary(norm="linf", eps=0.25, accuracy=0.5, attacks=["pgd"],
                         objective="latent-z-fool-d")],
        run=RunInfo(0, "cpu", 4, "robust audit", "2000-01-01T00:00:00+00:00", 1.0,
                    {"robustbench_lite": "0", "torch": "0"},
                    [{"name": "example-plugin", "version": "1.0"}]),
        matrix={"name": "template-check", "version": "1"}, mode="fast",
        per_class=[PerClassRow(norm, eps, name, 2, 1.0, 0.5, targeted, mode)
                   for norm, eps, targeted, mode in threats for name in _CLASSES],
        curves=[CurvePoint("linf", "pgd", eps, accuracy)
                for eps, accuracy in ((0.05, 0.75), (0.1, 0.25))]
        + [CurvePoint("l2", "minimal", 0.5, 0.5, source="minimal")],
        transfer=[{"source": "surrogate", "target": "template-check", "norm": "linf",
                   "eps": 0.1, "accuracy": 0.5, "attack": "pgd", "n_samples": 4}],
        checks=[SanityCheck("gradient-masking", "pass", "gradients look fine",
                            {"zero_share": 0.0, "samples": 4}),
                SanityCheck("randomness", "warn", "outputs vary", {"spread": 0.01}),
                SanityCheck("convergence", "fail", "more steps broke more samples", {})],
        gates=[{"threshold": 0.5, "norm": "linf", "eps": 0.1, "accuracy": 0.25,
                "passed": False, "message": "worst-case robust accuracy 25.0% at linf "
                "eps=0.1 is below 50.0%"},
               {"threshold": 0.1, "norm": None, "eps": None, "accuracy": 0.25,
                "passed": True, "message": "worst-case robust accuracy 25.0% >= 10.0%"}],
        examples=[_example("linf", 0.1), _example("semantic", 1.0, semantic=True)],
        certificate={"available": True, "lipschitz": 12.5, "median_radius": 0.05,
                     "certified": [{"eps": 0.1, "accuracy": 0.25}],
                     "smoothing": {"available": True, "sigma": 0.25, "n0": 50, "n": 400,
                                   "alpha": 0.001, "abstained": 0.1, "accuracy": 0.5,
                                   "certified": [{"radius": 0.25, "accuracy": 0.25}]}},
        task=TaskInfo(description="made up to check the templates", metrics={"top1": 1.0}),
        notes=[StageNote("transfer", "surrogate", "failed", "example failure"),
               StageNote("examples", "", "skipped", "example reason")],
        judgement=Judgement(randomised=True, draws=16, clean_standard_error=0.01),
        gan=_gan(),
    )


def _gan() -> dict[str, object]:
    """A GAN audit's ``gan`` object with every optional part."""
    return {
        "d_accuracy": 0.5, "d_real_accuracy": 0.5, "d_fake_accuracy": 0.5,
        "feature_extractor": "template-check features", "fd": 1.5, "kid": 0.01,
        "kid_std": 0.001, "real_samples": 4, "generated_samples": 4, "z_dim": 2, "w_dim": 2,
        "views": [{"objective": "latent-z-fool-d", "space": "z", "n_samples": 4,
                   "clean_accuracy": 0.5, "data": "template-check"}],
        "movement": [{"objective": "latent-z-fool-d", "norm": "linf", "eps": 0.25,
                      "attack": "pgd", "n_samples": 4, "success_rate": 0.5, "pixel_l2": 0.1,
                      "pixel_linf": 0.05, "feature_distance": 0.2,
                      "pixel_l2_successful": None, "feature_distance_successful": None}],
        "grids": [{"objective": "latent-z-fool-d", "norm": "linf", "eps": 0.25,
                   "attack": "pgd", "image": _PIXEL, "caption": "template-check"}],
        "training": [{"epoch": 1, "d_loss": 1.0, "g_loss": 1.0, "seconds": 1.0, "r1": 0.1,
                      "fd": 2.0, "kid": 0.02, "eps": 0.5, "d_accuracy": 0.5},
                     {"epoch": 2, "d_loss": 0.9, "g_loss": None, "seconds": 1.0}],
    }
