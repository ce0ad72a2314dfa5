"""Time PGD-Linf: ours, ART's, Foolbox's and a bare torch loop, in one process.

The bare loop is ``steps`` x (one forward + one backward with respect to the input only):
the practical limit for fixed-step PGD. Ratios are to that loop. Our PGD is timed in
fixed-step mode (every sample runs every step) and in evaluation mode (broken samples leave
the batch, keeping their adversarial example).

Run: python benchmarks/attacks.py [--repeats 3] [--batch-size 128] [--steps 10 40]
      [--models digits resnet18] [--device auto]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.models.loading import load_model
from robustbench_lite.models.robust_model import LoadInfo, RobustModel
from robustbench_lite.models.zoo.preact_resnet import PreActResNet18
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel

REL_STEP = 0.25


@dataclass
class Case:
    name: str
    model: RobustModel
    x: torch.Tensor
    y: torch.Tensor
    eps: float


def default_model_case(batch_size: int, device: torch.device) -> Case:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    data = load_dataset("digits", catalogue)
    arch = catalogue.architectures.get("digits-cnn")
    assert arch.weights is not None
    model = load_model(arch.weights, catalogue=catalogue, input_shape=data.input_shape,
                       arch="digits-cnn", num_classes=10).to(device)
    return Case("default model (digits-cnn, 1x8x8)", model, data.x[:batch_size].to(device),
                data.y[:batch_size].to(device), 0.1)


def resnet_case(batch_size: int, device: torch.device) -> Case:
    torch.manual_seed(0)
    module = PreActResNet18(num_classes=10)
    model = RobustModel(module, (3, 32, 32), 10, "preact-resnet18 (random)", "-",
                        LoadInfo("random")).to(device)
    x = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # labels the model gets right, so every sample is attacked
    return Case("ResNet-18 (CIFAR-shaped, random weights, 3x32x32)", model, x, y, 8 / 255)


def bare_loop(case: Case, steps: int) -> torch.Tensor:
    step = REL_STEP * case.eps
    x_adv = case.x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = functional.cross_entropy(case.model.module(x_adv), case.y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + step * grad.sign(), case.x - case.eps),
                          case.x + case.eps).clamp(0, 1)
    return x_adv


def ours(case: Case, steps: int, early_stop: bool) -> torch.Tensor:
    attack = PGD(steps=steps, rel_step_size=REL_STEP, early_stop=early_stop)
    generator = torch.Generator(device=case.x.device).manual_seed(0)
    return attack.run(case.model, case.x, Misclassification(case.y),
                      ThreatModel(Norm.LINF, case.eps), generator)


def art_pgd(case: Case, steps: int) -> torch.Tensor:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=case.model.module, loss=nn.CrossEntropyLoss(),
        input_shape=tuple(case.x.shape[1:]), nb_classes=10, clip_values=(0.0, 1.0),
        device_type="gpu" if case.x.is_cuda else "cpu")
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=case.eps,
                                      eps_step=REL_STEP * case.eps, max_iter=steps,
                                      num_random_init=1, batch_size=len(case.x),
                                      verbose=False)
    return torch.from_numpy(attack.generate(x=case.x.cpu().numpy(), y=case.y.cpu().numpy()))


def foolbox_pgd(case: Case, steps: int) -> torch.Tensor:
    import foolbox

    fmodel = foolbox.PyTorchModel(case.model.module, bounds=(0, 1), device=case.x.device)
    attack = foolbox.attacks.LinfPGD(abs_stepsize=REL_STEP * case.eps, steps=steps,
                                     random_start=True)
    _, clipped, _ = attack(fmodel, case.x, case.y, epsilons=case.eps)
    return clipped


def timed(run: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def round_robin(runs: dict[str, Callable[[], torch.Tensor]], repeats: int,
                device: torch.device) -> dict[str, tuple[float, torch.Tensor]]:
    """Best time of each run over ``repeats`` rounds, every round timing each run in turn,
    so a passing load on the machine affects all of them alike."""
    for run in runs.values():
        run()  # warm-up: allocator, library imports, lazy initialisation
    best: dict[str, tuple[float, torch.Tensor]] = {}
    for _ in range(repeats):
        for label, run in runs.items():
            seconds, result = timed(run, device)
            if label not in best or seconds < best[label][0]:
                best[label] = (seconds, result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--models", nargs="+", default=["digits", "resnet18"],
                        choices=["digits", "resnet18"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, best of {args.repeats}")
    builders = {"digits": default_model_case, "resnet18": resnet_case}
    for key in args.models:
        case = builders[key](args.batch_size, device)
        print(f"\n{case.name}, Linf eps={case.eps:.4g}", flush=True)
        for steps in args.steps:
            runs: dict[str, Callable[[], torch.Tensor]] = {
                "bare torch loop": partial(bare_loop, case, steps),
                "ours, fixed steps": partial(ours, case, steps, early_stop=False),
                "ours, evaluation mode": partial(ours, case, steps, early_stop=True),
                "ART": partial(art_pgd, case, steps),
                "Foolbox": partial(foolbox_pgd, case, steps),
            }
            print(f"  PGD-{steps}:")
            results = round_robin(runs, args.repeats, device)
            base = results["bare torch loop"][0]
            for label, (seconds, x_adv) in results.items():
                with torch.no_grad():
                    accuracy = float((case.model(x_adv.to(device)).argmax(1) == case.y)
                                     .float().mean())
                print(f"    {label:<22} {seconds:8.3f} s  {seconds / base:5.2f}x bare   "
                      f"robust acc {accuracy:6.1%}", flush=True)


if __name__ == "__main__":
    main()
