"""Every registered attack, against the default model: its output is inside the threat model,
it is deterministic under a seed, the host's success flags are re-predicted, and batches of
1 and 257 samples work."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.execute import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.threat import Norm, ThreatModel

#: Cheap settings so the contract runs quickly; the attacks' strength is tested elsewhere.
FAST: dict[str, dict[str, Any]] = {
    "pgd": {"steps": 3},
    "apgd-ce": {"steps": 4},
    "apgd-dlr": {"steps": 4},
    "apgd-t": {"steps": 4, "n_target_classes": 2},
    "square": {"n_queries": 30},
    "noise": {"samples": 2},
    "deepfool": {"steps": 3},
    "cw-l2": {"steps": 5, "binary_search_steps": 2},
    "autoattack": {"steps": 3, "n_target_classes": 2, "n_queries": 30},
}
#: Namespaced backends are exercised through one representative class each.
BACKEND_SPECS = {("art", Norm.LINF): "art:FastGradientMethod",
                 ("art", Norm.L2): "art:FastGradientMethod",
                 ("foolbox", Norm.LINF): "foolbox:FGSM",
                 ("foolbox", Norm.L2): "foolbox:FGM"}
EPS = {Norm.LINF: 0.1, Norm.L2: 1.0, Norm.L1: 4.0}


def _cases() -> list[Any]:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    cases = []
    for name in catalogue.attacks.names():
        attack_class = catalogue.attacks.get(name)
        params = FAST.get(name, {})
        native = name + (":" + ",".join(f"{k}={v}" for k, v in params.items())
                         if params else "")
        # semantic attacks need a generator of the data's images: the contract of advmix on
        # colour-digits is in test_semantic_attack.py
        for norm in sorted((n for n in attack_class.norms if n.is_lp), key=lambda n: n.value):
            spec = BACKEND_SPECS.get((name, norm)) if attack_class.namespace else native
            if spec is not None:
                cases.append(pytest.param(spec, norm, id=f"{name}-{norm.value}"))
    return cases


@pytest.fixture(scope="module")
def batch_257(digits_test: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
    return digits_test.x[:257], digits_test.y[:257]


@pytest.mark.parametrize(("spec", "norm"), _cases())
def test_attack_contract(spec: str, norm: Norm, default_model: RobustModel,
                         batch_257: tuple[torch.Tensor, torch.Tensor]) -> None:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    attack = build_attack(spec, catalogue)
    threat = ThreatModel(norm, EPS[norm])
    assert attack.supports(threat)
    x, y = batch_257
    for size in (1, 257):
        outcome = attack_batch(attack, default_model, x[:size], y[:size], threat, seed=5)
        assert outcome.problems == (), outcome.problems
        assert outcome.x_adv.shape == x[:size].shape and outcome.x_adv.dtype == x.dtype
        assert bool(threat.contains(outcome.x_adv, x[:size]).all())
        with torch.no_grad():
            assert torch.equal(outcome.predicted, default_model(outcome.x_adv).argmax(dim=1))
    again = attack_batch(attack, default_model, x[:257], y[:257], threat, seed=5)
    assert torch.equal(again.x_adv, outcome.x_adv)
