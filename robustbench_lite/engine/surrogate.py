"""A black-box surrogate of a model, trained by distillation on the model's predicted labels.

Threat model of the surrogate row of a transfer table: the adversary is **black-box and
label-only**. It may query the model for its predicted label (no logits, no probabilities,
no gradients, no weights) and it holds **unlabeled** held-out data from the same
distribution (e.g. the dataset's train split: its true labels are never read). It labels that
data with the model's predictions, trains a small generic CNN (`SurrogateCNN`) on those hard
labels, and attacks the model by transferring white-box adversarial examples crafted on the
surrogate. Cost to the adversary: one query per held-out sample.
"""

from __future__ import annotations

import logging
import time

import torch

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import ModelDataMismatchError
from robustbench_lite.models.robust_model import LoadInfo, RobustModel, state_dict_sha256
from robustbench_lite.models.zoo.surrogate_cnn import SurrogateCNN
from robustbench_lite.training.loop import TrainingRecipe, deterministic_torch, train_classifier

logger = logging.getLogger(__name__)


def train_surrogate(model: RobustModel, data: EvalData, *, seed: int = 0, epochs: int = 30,
                    show_progress: bool = False) -> RobustModel:
    """Distil ``model`` into a `SurrogateCNN` using only its predicted labels on ``data``.

    ``data`` is the adversary's held-out split (it should not be the evaluation data); only
    ``data.x`` is used, ``data.y`` is ignored. Each image is labelled with ``model``'s
    predicted class (hard labels: label-only black-box access, one query per image), then a
    `SurrogateCNN` for ``model.input_shape`` and ``model.num_classes`` is trained on them with
    `train_classifier` (``TrainingRecipe(epochs=epochs, seed=seed)``, on the CPU, inside
    `deterministic_torch(seed)`): the same seed, model and data give the same weights.

    Returns a `RobustModel` on ``model.device`` named ``"surrogate of <model.name>"``, with
    ``sha256`` the hash of its state dict (`state_dict_sha256`) and
    ``LoadInfo(format="surrogate", notes=("distilled from <name> on <n> samples, agreement
    <x>%",))``, where the agreement is the fraction of ``data`` on which the trained surrogate
    predicts the model's label (measured on the distillation data itself).

    Raises `ModelDataMismatchError` when ``data`` does not have the model's input shape, the
    input is not an image ``(C, H, W)``, or the model predicts a class outside its class count.
    """
    input_shape = tuple(model.input_shape)
    if tuple(data.input_shape) != input_shape:
        raise ModelDataMismatchError(
            f"cannot distil {model.name!r} (input {input_shape}) on dataset {data.name!r} "
            f"(input {tuple(data.input_shape)}); use held-out data of the model's input shape")
    if len(input_shape) != 3:
        raise ModelDataMismatchError(f"a surrogate needs image input (C, H, W); {model.name!r} "
                                     f"takes {input_shape}")
    num_classes = model.num_classes or data.num_classes
    started = time.perf_counter()
    labels = model.predict(data.x)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ModelDataMismatchError(f"{model.name!r} predicted class {int(labels.max())} but "
                                     f"has {num_classes} classes")
    class_names = (data.class_names if len(data.class_names) == num_classes
                   else tuple(str(i) for i in range(num_classes)))
    labelled = EvalData(data.x, labels, class_names, f"{data.name} labelled by {model.name}",
                        data.family, data.source)
    recipe = TrainingRecipe(epochs=epochs, seed=seed)
    with deterministic_torch(seed):
        module = SurrogateCNN(input_shape[0], num_classes)
        train_classifier(module, labelled, recipe, show_progress=show_progress)
        with torch.no_grad():
            agreed = sum(int((module(data.x[i:i + 512]).argmax(dim=1) == labels[i:i + 512]).sum())
                         for i in range(0, len(data.x), 512))
    agreement = agreed / len(data.x)
    seconds = time.perf_counter() - started
    logger.info("surrogate of %s: distilled on %d samples in %.1f s, agreement %.2f%%",
                model.name, len(data.x), seconds, 100 * agreement)
    surrogate = RobustModel(
        module=module, input_shape=input_shape, num_classes=num_classes,
        name=f"surrogate of {model.name}", sha256=state_dict_sha256(module),
        load_info=LoadInfo(format="surrogate", notes=(
            f"distilled from {model.name} on {len(data.x)} samples, "
            f"agreement {100 * agreement:.2f}%",)),
    )
    return surrogate.to(model.device)
