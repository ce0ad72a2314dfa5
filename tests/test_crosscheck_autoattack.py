"""Our autoattack composition is never weaker than ART's AutoAttack on the same model.

ART's AutoAttack runs here with its default components at full strength (APGD-CE and
APGD-DLR with 5 restarts of 100 steps, DeepFool) except Square, whose budget is cut from
5 restarts x 5000 queries to 1 x 1000 to keep the test to about a minute; ART's default
composition in full is compared in ``benchmarks/``. Ours runs with its defaults.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from robustbench_lite.attacks.ensemble import AutoAttack
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.threat import Norm, ThreatModel

SAMPLES = 100
EPS = 0.1
TOLERANCE = 0.005  # 0.5 percentage points


@pytest.mark.slow
def test_autoattack_is_not_weaker_than_arts(default_model: RobustModel,
                                            digits_test: EvalData) -> None:
    from art.attacks.evasion import AutoAttack as ArtAutoAttack
    from art.attacks.evasion import AutoProjectedGradientDescent, DeepFool, SquareAttack
    from art.estimators.classification import PyTorchClassifier

    data = digits_test.subset(SAMPLES)
    settings = AuditSettings(seed=0, batch_size=128, show_progress=False)
    ours = run_audit(default_model, data, [AutoAttack()], [ThreatModel(Norm.LINF, EPS)],
                     settings, [])
    assert ours.cells[0].accuracy is not None

    classifier = PyTorchClassifier(model=default_model.module, loss=nn.CrossEntropyLoss(),
                                   input_shape=data.input_shape, nb_classes=10,
                                   clip_values=(0.0, 1.0))
    components = [
        AutoProjectedGradientDescent(classifier, norm=np.inf, eps=EPS, eps_step=2 * EPS,
                                     max_iter=100, nb_random_init=5, batch_size=128,
                                     loss_type=loss, verbose=False)
        for loss in ("cross_entropy", "difference_logits_ratio")
    ]
    components.append(DeepFool(classifier, max_iter=100, epsilon=1e-3, nb_grads=10,
                               batch_size=128, verbose=False))
    components.append(SquareAttack(classifier, norm=np.inf, eps=EPS, max_iter=1000,
                                   p_init=0.8, nb_restarts=1, verbose=False))
    np.random.seed(0)
    art_attack = ArtAutoAttack(classifier, norm=np.inf, eps=EPS, eps_step=2 * EPS,
                               attacks=components, batch_size=128)
    x_adv = art_attack.generate(x=data.x.numpy(), y=data.y.numpy())
    art_accuracy = float((classifier.predict(x_adv).argmax(1) == data.y.numpy()).mean())
    assert ours.cells[0].accuracy <= art_accuracy + TOLERANCE
