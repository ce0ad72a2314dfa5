"""Transfer tables (source x target) and the black-box, label-only surrogate."""

from __future__ import annotations

import pytest
import torch
from small_models import WideInputNet

from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.engine.surrogate import train_surrogate
from robustbench_lite.engine.transfer import TransferRow, transfer_table
from robustbench_lite.errors import ModelDataMismatchError
from robustbench_lite.host.attack import attack_batch, batch_seed
from robustbench_lite.models.robust_model import LoadInfo, RobustModel
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.models.zoo.surrogate_cnn import SurrogateCNN
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.threat import Norm, ThreatModel
from robustbench_lite.training.loop import TrainingRecipe, deterministic_torch, train_classifier

THREATS = (ThreatModel(Norm.LINF, 0.1), ThreatModel(Norm.LINF, 0.2))
SEED = 0
BATCH = 128


@pytest.fixture(scope="module")
def module_catalogue() -> Catalogue:
    return catalogue_for(get_plugin_manager(load_entrypoints=False))


@pytest.fixture(scope="module")
def digits_train(module_catalogue: Catalogue) -> EvalData:
    return load_dataset("digits", module_catalogue, "train")


@pytest.fixture(scope="module")
def transfer_pgd(module_catalogue: Catalogue) -> Attack:
    return build_attack("pgd:steps=20", module_catalogue)


@pytest.fixture(scope="module")
def second_model(digits_train: EvalData) -> RobustModel:
    """A DigitsCNN trained briefly from another seed: a different model of the same task."""
    with deterministic_torch(1):
        module = DigitsCNN()
        train_classifier(module, digits_train, TrainingRecipe(epochs=5, seed=1),
                         show_progress=False)
    return RobustModel(module=module, input_shape=(1, 8, 8), num_classes=10,
                       name="digits-cnn seed 1", sha256="0" * 64,
                       load_info=LoadInfo(format="test"))


@pytest.fixture(scope="module")
def surrogate(default_model: RobustModel, digits_train: EvalData) -> RobustModel:
    return train_surrogate(default_model, digits_train, seed=SEED)


def white_box_accuracy(model: RobustModel, data: EvalData, attack: Attack,
                       threat: ThreatModel) -> float:
    """White-box accuracy over all samples, batched and seeded as `transfer_table` does."""
    robust = 0
    for start in range(0, len(data.x), BATCH):
        x, y = data.x[start:start + BATCH], data.y[start:start + BATCH]
        with torch.no_grad():
            clean = model(x).argmax(dim=1) == y
        outcome = attack_batch(attack, model, x, y, threat,
                               batch_seed(SEED, attack, threat, start))
        robust += int((clean & outcome.correct).sum())
    return robust / len(data.x)


def cell(rows: list[TransferRow], source: str, target: str, eps: float) -> TransferRow:
    (row,) = [r for r in rows if r.source == source and r.target == target and r.eps == eps]
    return row


def test_two_models_table(default_model: RobustModel, second_model: RobustModel,
                          digits_test: EvalData, transfer_pgd: Attack) -> None:
    models = [default_model, second_model]
    rows = transfer_table(models, digits_test, THREATS, transfer_pgd, SEED, BATCH)
    assert len(rows) == len(THREATS) * 4
    for threat in THREATS:
        in_threat = [r for r in rows if r.eps == threat.eps and r.norm == threat.norm.value]
        assert len(in_threat) == 4
        assert all(0.0 <= r.accuracy <= 1.0 and 0.0 <= r.source_success <= 1.0
                   for r in in_threat)
        for target in models:
            diagonal = cell(rows, target.name, target.name, threat.eps)
            assert diagonal.accuracy == white_box_accuracy(target, digits_test, transfer_pgd,
                                                           threat)
            clean = float((target.predict(digits_test.x) == digits_test.y).double().mean())
            assert diagonal.accuracy + diagonal.source_success == pytest.approx(clean)
            for source in models:
                if source is not target:
                    assert cell(rows, source.name, target.name, threat.eps).accuracy >= \
                        diagonal.accuracy


def test_same_seed_same_table(default_model: RobustModel, second_model: RobustModel,
                              digits_test: EvalData, transfer_pgd: Attack) -> None:
    data = digits_test.subset(96)
    first = transfer_table([default_model, second_model], data, THREATS[:1], transfer_pgd,
                           SEED, 64)
    again = transfer_table([default_model, second_model], data, THREATS[:1], transfer_pgd,
                           SEED, 64)
    assert first == again


def test_surrogate_distils_and_transfers(default_model: RobustModel, surrogate: RobustModel,
                                         digits_test: EvalData, digits_train: EvalData,
                                         transfer_pgd: Attack) -> None:
    assert surrogate.name == f"surrogate of {default_model.name}"
    assert surrogate.load_info.format == "surrogate"
    assert surrogate.load_info.notes[0].startswith(
        f"distilled from {default_model.name} on {len(digits_train.x)} samples, agreement ")
    assert len(surrogate.sha256) == 64
    assert isinstance(surrogate.module, SurrogateCNN)
    agreement = float((surrogate.predict(digits_test.x)
                       == default_model.predict(digits_test.x)).double().mean())
    assert agreement >= 0.9

    threat = ThreatModel(Norm.LINF, 0.2)
    rows = transfer_table([surrogate, default_model], digits_test, [threat], transfer_pgd,
                          SEED, BATCH)
    clean = float((default_model.predict(digits_test.x) == digits_test.y).double().mean())
    transferred = cell(rows, surrogate.name, default_model.name, threat.eps).accuracy
    white_box = cell(rows, default_model.name, default_model.name, threat.eps).accuracy
    assert white_box <= transferred < clean


def test_surrogate_is_deterministic_and_generic(default_model: RobustModel,
                                                digits_train: EvalData) -> None:
    small = digits_train.subset(128)
    first = train_surrogate(default_model, small, seed=3, epochs=1)
    again = train_surrogate(default_model, small, seed=3, epochs=1)
    assert first.sha256 == again.sha256
    for shape in ((1, 1, 1), (3, 5, 7), (3, 32, 32)):
        assert SurrogateCNN(shape[0], 4)(torch.rand(2, *shape)).shape == (2, 4)


def test_mismatched_models_are_refused(default_model: RobustModel, digits_test: EvalData,
                                       transfer_pgd: Attack) -> None:
    wide = RobustModel(module=WideInputNet(), input_shape=(3, 32, 32), num_classes=10,
                       name="wide-input", sha256="0" * 64, load_info=LoadInfo(format="test"))
    with pytest.raises(ModelDataMismatchError, match="wide-input") as caught:
        transfer_table([default_model, wide], digits_test, THREATS, transfer_pgd, SEED, BATCH)
    assert default_model.name in str(caught.value)
    with pytest.raises(ModelDataMismatchError):
        train_surrogate(wide, digits_test)
