"""Time the `autoattack` preset against ART's AutoAttack on the default model, in one process.

Ours: the `autoattack` preset (APGD-CE, then APGD-T over 9 target classes, then Square with
5000 queries, each only on the samples still robust) at the digits standard Linf eps 0.1,
through the engine exactly as `robust audit --matrix autoattack` runs it (no result store).

ART, two configurations (``--art``):
- ``default``: ART's ``AutoAttack`` with its own default components (APGD-CE and APGD-DLR
  with 5 restarts of 100 steps, DeepFool, Square with 5 restarts of 5000 queries);
- ``matched``: ART's ``AutoAttack`` with components matched to ours as closely as ART allows
  in one untargeted pass: APGD-CE (100 steps), APGD-DLR (100 steps) and Square (5000
  queries), one restart each. (ART runs targeted APGD only in a second pass over every
  target class for every component, which is not the AutoAttack standard composition.)

Both start from the reference step size 2 * eps. The digits test split has 450 images; all
are used unless ``--samples`` says fewer.

Run: python benchmarks/matrix.py [--art default matched] [--samples 450]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from torch import nn

from robustbench_lite.api import open_model
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.matrix.resolve import resolve_matrix
from robustbench_lite.plugin_host import get_plugin_manager


def art_autoattack(classifier: object, eps: float, config: str) -> object:
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, SquareAttack

    if config == "default":
        return AutoAttack(classifier, norm=np.inf, eps=eps, eps_step=2 * eps, batch_size=128)
    components = [
        AutoProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=2 * eps,
                                     max_iter=100, nb_random_init=1, batch_size=128,
                                     loss_type=loss, verbose=False)
        for loss in ("cross_entropy", "difference_logits_ratio")
    ]
    components.append(SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=5000,
                                   p_init=0.8, nb_restarts=1, verbose=False))
    return AutoAttack(classifier, norm=np.inf, eps=eps, eps_step=2 * eps, attacks=components,
                      batch_size=128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--art", nargs="+", default=["matched", "default"],
                        choices=["matched", "default"])
    parser.add_argument("--samples", type=int, default=450)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    data = load_dataset("digits", catalogue).subset(args.samples)
    model = open_model(None, data, catalogue)
    matrix = resolve_matrix("autoattack", catalogue, data.family)
    threats = [t for t in matrix.threats if t.norm.value == "linf"]
    eps = threats[0].eps
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{len(data.x)} digits test samples, Linf eps={eps:g}", flush=True)

    started = time.perf_counter()
    result = run_audit(model, data, [build_attack(s, catalogue) for s in matrix.attacks],
                       threats, AuditSettings(show_progress=False), [])
    ours_seconds = time.perf_counter() - started
    ours = result.robust_accuracy[0].accuracy
    print(f"  ours (autoattack preset)   robust acc {ours:6.2%}   {ours_seconds:8.1f} s",
          flush=True)

    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model=model.module, loss=nn.CrossEntropyLoss(),
                                   input_shape=data.input_shape, nb_classes=10,
                                   clip_values=(0.0, 1.0))
    x, y = data.x.numpy(), data.y.numpy()
    for config in args.art:
        np.random.seed(0)
        attack = art_autoattack(classifier, eps, config)
        started = time.perf_counter()
        x_adv = attack.generate(x=x, y=y)  # type: ignore[attr-defined]
        seconds = time.perf_counter() - started
        accuracy = float((classifier.predict(x_adv).argmax(1) == y).mean())
        print(f"  ART AutoAttack ({config:<7})  robust acc {accuracy:6.2%}   {seconds:8.1f} s"
              f"   ours/ART time {ours_seconds / seconds:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
