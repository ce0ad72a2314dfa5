"""The ART and Foolbox backends: specs, errors, the threat-model contract, and a cross-check of
our PGD against the libraries' PGD through the host's audit."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robustbench_lite.attacks.backends import (
    ArtAttack,
    FoolboxAttack,
    available_art_attacks,
    available_foolbox_attacks,
)
from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue, build_catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.errors import AttackError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.tasks.classification.objectives import (
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.threat import Norm, ThreatModel

LINF = ThreatModel(Norm.LINF, 0.1)
L2 = ThreatModel(Norm.L2, 1.0)
#: Run seeds of the cross-check; their mean accuracy is compared (see the test).
CROSS_CHECK_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def backends_catalogue() -> Catalogue:
    """The built-in catalogue, where both backends are registered."""
    return build_catalogue(get_plugin_manager(load_entrypoints=False))


@pytest.fixture
def eight(digits_test: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
    return digits_test.x[:8], digits_test.y[:8]


# ---------------------------------------------------------------- specs and errors


def test_specs_build_through_the_catalogue(backends_catalogue: Catalogue) -> None:
    art = build_attack("art:ProjectedGradientDescent:max_iter=10,eps_step=0.01",
                       backends_catalogue)
    assert isinstance(art, ArtAttack)
    assert art.params == {"target": "ProjectedGradientDescent", "max_iter": 10,
                          "eps_step": 0.01}
    fb = build_attack("foolbox:LinfPGD:steps=5", backends_catalogue)
    assert isinstance(fb, FoolboxAttack)
    assert fb.params == {"target": "LinfPGD", "steps": 5}


@pytest.mark.parametrize(("spec", "listed"), [
    ("art:NoSuchAttack", ("HopSkipJump", "ProjectedGradientDescent")),
    ("foolbox:Nope", ("L2PGD", "LinfPGD")),
])
def test_unknown_names_list_the_available_classes(backends_catalogue: Catalogue, spec: str,
                                                  listed: tuple[str, ...]) -> None:
    with pytest.raises(AttackError) as raised:
        build_attack(spec, backends_catalogue)
    message = str(raised.value)
    assert spec.partition(":")[2] in message
    names = message.rpartition("one of: ")[2].split(", ")
    assert names == sorted(names) and set(listed) <= set(names)


def test_available_lists() -> None:
    art = available_art_attacks()
    assert "ProjectedGradientDescent" in art and "DPatch" not in art  # object detectors only
    assert "LinfPGD" in available_foolbox_attacks()
    with pytest.raises(AttackError, match="another kind of estimator"):
        ArtAttack(target="DPatch")


def test_unknown_parameters_list_the_accepted_ones(backends_catalogue: Catalogue) -> None:
    with pytest.raises(AttackError, match=r"no parameter bogus.*max_iter"):
        build_attack("art:ProjectedGradientDescent:bogus=1", backends_catalogue)
    with pytest.raises(AttackError, match=r"no parameter bogus.*abs_stepsize"):
        build_attack("foolbox:LinfPGD:bogus=1", backends_catalogue)
    with pytest.raises(AttackError, match="threat model sets the distance"):
        FoolboxAttack(target="InversionAttack", distance="l2")
    with pytest.raises(AttackError, match="the backend passes it"):
        ArtAttack(target="DeepFool", classifier=None)


@pytest.mark.parametrize("params", [{"eps": 0.3}, {"norm": 2}, {"targeted": True}])
def test_art_params_contradicting_the_threat_fail(default_model: RobustModel, params: Any,
                                                  eight: tuple[torch.Tensor, torch.Tensor]
                                                  ) -> None:
    x, y = eight
    attack = ArtAttack(target="ProjectedGradientDescent", **params)
    with pytest.raises(AttackError, match="use --threat"):
        attack.run(default_model, x, Misclassification(y), LINF,
                   torch.Generator().manual_seed(0))
    agreeing = ArtAttack(target="ProjectedGradientDescent", eps=0.1, norm="inf", max_iter=1)
    assert agreeing.attack_kwargs(LINF, 8)["eps"] == 0.1
    assert agreeing.attack_kwargs(LINF, 8, targeted=True)["targeted"] is True


def test_norm_and_targeted_support() -> None:
    linf_pgd = FoolboxAttack(target="LinfPGD")
    assert linf_pgd.supports(LINF) and not linf_pgd.supports(L2)
    with pytest.raises(AttackError, match="linf attack"):
        linf_pgd.run(lambda x: x, torch.zeros(1, 1),
                     Misclassification(torch.zeros(1, dtype=torch.long)), L2,
                     torch.Generator())
    assert not FoolboxAttack(target="L0FMNAttack").supports(L2)  # L0: no threat norm
    assert FoolboxAttack(target="InversionAttack").supports(L2)  # takes the threat's distance
    assert linf_pgd.serves(Misclassification) and linf_pgd.serves(TargetedMisclassification)
    art_pgd = ArtAttack(target="ProjectedGradientDescent")
    assert art_pgd.serves(Misclassification) and art_pgd.serves(TargetedMisclassification)
    art_deepfool = ArtAttack(target="DeepFool")
    assert art_deepfool.serves(Misclassification)
    assert not art_deepfool.serves(TargetedMisclassification)  # no targeted mode
    assert "no targeted mode" in art_deepfool.unserved_reason(TargetedMisclassification)


def test_foolbox_class_without_targeted_mode_fails_clearly(
        default_model: RobustModel, eight: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = eight
    fgsm = FoolboxAttack(target="FGSM")
    with pytest.raises(AttackError, match="no targeted mode"):
        fgsm.run(default_model, x, TargetedMisclassification(y, (y + 1) % 10),
                 ThreatModel(Norm.LINF, 0.1, targeted=True), torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- the host's contract


@pytest.mark.parametrize(("spec", "threat"), [
    ("art:ProjectedGradientDescent:eps_step=0.025,max_iter=5", LINF),
    ("foolbox:L2PGD:steps=5", L2),
    ("art:ProjectedGradientDescent:eps_step=0.025,max_iter=5",
     ThreatModel(Norm.LINF, 0.1, targeted=True)),
], ids=["art-pgd", "foolbox-l2pgd", "art-pgd-targeted"])
def test_seeded_counted_and_valid(spec: str, threat: ThreatModel,
                                  backends_catalogue: Catalogue, default_model: RobustModel,
                                  eight: tuple[torch.Tensor, torch.Tensor]) -> None:
    attack = build_attack(spec, backends_catalogue)
    x, y = eight
    targets = (y + 1) % 10 if threat.targeted else None
    torch_state, first = torch.get_rng_state(), attack_batch(attack, default_model, x, y,
                                                             threat, seed=3, targets=targets)
    assert torch.equal(torch.get_rng_state(), torch_state)  # global RNG restored
    again = attack_batch(attack, default_model, x, y, threat, seed=3, targets=targets)
    assert torch.equal(first.x_adv, again.x_adv)
    assert first.problems == () and bool(first.valid.all())
    assert first.queries >= 5 * len(x)  # the library's forward passes reach the counter


@pytest.mark.parametrize(("spec", "threat"), [
    ("art:HopSkipJump:max_iter=2,max_eval=50,init_eval=10", LINF),
    ("foolbox:L2DeepFoolAttack:steps=5", ThreatModel(Norm.L2, 0.2)),
], ids=["art-hopskipjump", "foolbox-deepfool"])
def test_decision_and_min_norm_outputs_are_projected(spec: str, threat: ThreatModel,
                                                     backends_catalogue: Catalogue,
                                                     default_model: RobustModel,
                                                     eight: tuple[torch.Tensor, torch.Tensor]
                                                     ) -> None:
    """ART's HopSkipJump draws its start from an unseeded ``np.random.RandomState()``, so its
    output is not reproducible; only the threat-model contract is checked here."""
    attack = build_attack(spec, backends_catalogue)
    x, y = eight
    outcome = attack_batch(attack, default_model, x, y, threat, seed=0)
    assert outcome.problems == () and bool(outcome.valid.all())
    assert float(threat.distances(outcome.x_adv, x).max()) <= threat.eps + 1e-6
    assert outcome.queries > 0


# ---------------------------------------------------------------- cross-check


def _accuracy(model: RobustModel, data: EvalData, attacks: list[Attack],
              threat: ThreatModel) -> list[float]:
    """Mean adversarial accuracy of each attack over `CROSS_CHECK_SEEDS`."""
    runs = []
    for seed in CROSS_CHECK_SEEDS:
        result = run_audit(model, data, attacks, [threat],
                           AuditSettings(seed=seed, batch_size=512, show_progress=False), [])
        assert all(cell.error is None and cell.violations == 0 for cell in result.cells)
        runs.append([cell.accuracy for cell in result.cells])
    return [sum(float(run[i] or 0.0) for run in runs) / len(runs) for i in range(len(attacks))]


@pytest.mark.parametrize(("threat", "art_norm", "foolbox_class"), [
    (LINF, "inf", "LinfPGD"), (L2, 2, "L2PGD"),
], ids=["linf", "l2"])
def test_pgd_agrees_with_art_and_foolbox(threat: ThreatModel, art_norm: Any,
                                         foolbox_class: str, default_model: RobustModel,
                                         digits_test: EvalData) -> None:
    """PGD, 20 steps of eps/4 from one random start, in the three implementations.

    All 450 digits. The random starts differ between implementations: in 18 measured runs,
    a single run of ours and one of a library were up to 1.11 percentage points apart (5 of
    450 samples) in 4 of 72 comparisons, so the test compares the mean over three run seeds
    (differences 0.07-0.44 pp). Without random starts the three agree exactly (277/450 Linf,
    11/450 L2).
    """
    step = threat.eps / 4
    attacks: list[Attack] = [
        PGD(steps=20, rel_step_size=0.25),
        ArtAttack(target="ProjectedGradientDescent", norm=art_norm, eps_step=step, max_iter=20,
                  num_random_init=1),
        FoolboxAttack(target=foolbox_class, abs_stepsize=step, steps=20, random_start=True),
    ]
    ours, art, foolbox = _accuracy(default_model, digits_test, attacks, threat)
    numbers = f"ours {ours:.2%}, ART {art:.2%}, Foolbox {foolbox:.2%}"
    assert abs(ours - art) <= 0.01, numbers
    assert abs(ours - foolbox) <= 0.01, numbers
    assert 0 < ours < 0.9, numbers  # the attack does something, and not everything

