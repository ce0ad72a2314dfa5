"""The audit's Lipschitz certificate: stated in results.json and the report, sound, and
honestly unavailable for networks the bound does not understand."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from robustbench_lite.api import audit
from robustbench_lite.attacks import PGD
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.certify import certified_radii
from robustbench_lite.engine.certificate import certificate
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.reports.render import render_html
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel


def test_certificate_is_in_the_results_and_the_report(default_model: RobustModel,
                                                      digits_test: EvalData) -> None:
    result = audit(default_model, digits_test.subset(60), attacks=["pgd"],
                   threats=["l2:0.5"], transfer=False, examples=0, checks=False)
    found = result.certificate
    assert found["available"] and found["lipschitz"] > 1
    assert [row["eps"] for row in found["certified"]] == [0.05, 0.1, 0.25, 0.5, 1.0]
    html = render_html(result)
    section = html[html.index('<section id="certified"'):]
    assert f"{found['lipschitz']:.3g}" in section[:section.index("</section>")]


def test_certified_samples_survive_pgd(default_model: RobustModel,
                                       digits_test: EvalData) -> None:
    data = digits_test.subset(100)
    found = certificate(default_model, data, [])
    radii = certified_radii(default_model.module, data.x, data.y, found["lipschitz"])
    chosen = radii > 0.005
    assert chosen.any()
    eps = float(radii[chosen].min()) * 0.999
    x_adv = PGD(steps=50, restarts=2).run(default_model, data.x[chosen],
                                          Misclassification(data.y[chosen]),
                                          ThreatModel(Norm.L2, eps),
                                          torch.Generator().manual_seed(0))
    assert torch.equal(default_model.predict(x_adv), data.y[chosen])


class Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + 0.1 * torch.relu(x))


def test_unsupported_network_says_why(default_model: RobustModel,
                                      digits_test: EvalData) -> None:
    model = dataclasses.replace(default_model, module=Residual(default_model.module))
    found = certificate(model, digits_test.subset(20), [0.5])
    assert found["available"] is False and found["reason"]
    result = audit(model, digits_test.subset(20), attacks=["fgsm"], threats=["linf:0.1"],
                   transfer=False, examples=0, checks=False)
    assert f"No certificate: {found['reason']}"[:60] in render_html(result).replace(
        "&#39;", "'")
