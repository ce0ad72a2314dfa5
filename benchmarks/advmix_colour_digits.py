"""Reproduce the AdvMix paper's Colour-MNIST finding on colour-digits.

Trains four classifiers with the same architecture and budget (nominal, Linf PGD adversarial
training, RandMix, AdvMix) on the colour-digits train split, where each class has its own
colour, and measures them on the test split, whose colours are independent of the class:
clean accuracy there, accuracy under the semantic ``advmix`` attack, and under Linf PGD.
See ``robustbench_lite.semantic.experiment`` for the protocol. Expected (Gowal et al., CVPR
2020): AdvMix >= RandMix > adversarial training ~ nominal on the shifted split.

Run: python benchmarks/advmix_colour_digits.py [--epochs 15] [--n-test 450] [--out table.md]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.semantic.experiment import ExperimentSettings, run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=ExperimentSettings.epochs)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generator", default=None, help="generator spec or file "
                        "(default: the bundled colour-digits generator)")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    settings = ExperimentSettings(epochs=args.epochs, n_test=args.n_test, seed=args.seed,
                                  generator=args.generator)
    table = run_experiment(settings, catalogue_for(get_plugin_manager(load_entrypoints=False)))
    seconds = time.perf_counter() - started
    shown = table.copy()
    for column in ("shifted_test_accuracy", "semantic_attack_accuracy", "linf_pgd_accuracy"):
        shown[column] = shown[column].map(lambda v: f"{100 * v:.1f}%")
    shown["train_seconds"] = shown["train_seconds"].map(lambda v: f"{v:.0f}")
    lines = ["| " + " | ".join(shown.columns) + " |",
             "|" + " --- |" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |"
              for row in shown.itertuples(index=False)]
    text = "\n".join(lines)
    text += f"\n\n{settings}; total {seconds:.0f} s on {torch.get_num_threads()} thread(s)\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
