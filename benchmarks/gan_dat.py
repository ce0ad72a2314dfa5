"""Discriminator adversarial training (``d-at``) on the bundled digits GAN: how much harder
latent attacks on D become, what it costs in image quality and training time.

Three pairs, each audited with the same GAN matrix: the bundled GAN; a *control* that
continues plain training (non-saturating loss, R1) for the same epochs; and the ``d-at``
pair (`robustbench_lite.gan.training_config.AdversarialConfig` defaults, or ``--defense``).
Printed: the worst-case latent fool-D success rate at the standard latent eps (Linf 0.25
prior standard deviations) in z and w, pixel success rates, Fréchet and kernel distances
in digits-cnn feature space, D's accuracy, seconds per epoch with and without d-at, and
PGD's latent success with D's threshold at the median logit of G's samples (which a D
that merely rejects more generated samples cannot lower).

Run: python benchmarks/gan_dat.py [--epochs 10] [--matrix standard] [--defense d-at]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time

from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.gan.api import audit_gan, open_pair, real_images
from robustbench_lite.gan.harden import parse_d_at
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import default_features
from robustbench_lite.gan.training import train_gan
from robustbench_lite.models.robust_model import state_dict_sha256
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.results import AuditResult

#: The threat model the headline compares (the latent family's standard budget).
HEADLINE = ("linf", 0.25)
OBJECTIVES = ("latent-z-fool-d", "latent-w-fool-d", "pixel-fake-accepted",
              "pixel-real-rejected")


def success_at(result: AuditResult, objective: str, norm: str, eps: float) -> float:
    """The worst-case success rate of ``objective`` at (norm, eps): the share of the
    samples D judged right on clean input that some attack flipped."""
    row = next(r for r in result.robust_accuracy
               if r.objective == objective and r.norm == norm and abs(r.eps - eps) < 1e-9)
    if row.success_rate is not None:
        return row.success_rate
    view = next(v for v in result.gan["views"] if v["objective"] == objective)
    clean = float(view["clean_accuracy"])
    return 1 - row.accuracy / clean if clean else float("nan")


def median_success(result: AuditResult, objective: str, norm: str, eps: float) -> float:
    """PGD's success rate with D's threshold at the median logit of the view's samples."""
    row = next(r for r in result.gan["movement"] if r["objective"] == objective
               and r["norm"] == norm and abs(r["eps"] - eps) < 1e-9)
    value = row.get("median_threshold_success_rate")
    return float(value) if value is not None else float("nan")


def rejected(result: AuditResult, objective: str) -> float:
    """The share of the view's generated samples D rejects on clean input."""
    return float(next(view["clean_accuracy"] for view in result.gan["views"]
                      if view["objective"] == objective))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--matrix", default="standard")
    parser.add_argument("--defense", default="d-at")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    catalogue = catalogue_for(default_plugin_manager())
    bundled = open_pair()
    train = real_images(None, "train", bundled, catalogue)
    test = real_images(None, "test", bundled, catalogue)
    features = default_features(tuple(test.input_shape))
    training, adversarial = parse_d_at(args.defense, args.epochs, 64, args.seed)
    rows: dict[str, tuple[AuditResult, float | None]] = {}
    rows["bundled"] = (audit_gan(bundled, matrix=args.matrix, seed=args.seed), None)
    for label, recipe in (("control (plain)", None), ("d-at", adversarial)):
        generator = copy.deepcopy(bundled.generator)
        discriminator = copy.deepcopy(bundled.discriminator)
        started = time.perf_counter()
        trained = train_gan(generator, discriminator, train.x, test.x, training, recipe,
                            features=features, show_progress=True)
        seconds = (time.perf_counter() - started) / args.epochs
        pair = GanPair(trained.generator, trained.discriminator, label,
                       state_dict_sha256(trained.generator, trained.discriminator), "python")
        rows[label] = (audit_gan(pair, matrix=args.matrix, seed=args.seed), seconds)
    norm, eps = HEADLINE
    print(f"\n{args.defense}, {args.epochs} epochs, GAN matrix {args.matrix!r}; success "
          f"rates at {norm} eps={eps} (latent: prior std; pixel: the digits standard 0.1)")
    print(f"{'pair':18s}" + "".join(f"{name:>22s}" for name in OBJECTIVES)
          + f"{'FD':>9s}{'KID':>9s}{'D acc':>8s}{'s/epoch':>9s}")
    for label, (result, seconds) in rows.items():
        rates = [success_at(result, objective, norm, eps if objective.startswith("latent")
                            else 0.1) for objective in OBJECTIVES]
        gan = result.gan
        print(f"{label:18s}" + "".join(f"{rate:22.1%}" for rate in rates)
              + f"{gan['fd']:9.3f}{gan['kid']:9.4f}{gan['d_accuracy']:8.1%}"
              + (f"{seconds:9.1f}" if seconds is not None else f"{'-':>9s}"))
    for objective in OBJECTIVES[:2]:
        first, second = (success_at(rows[label][0], objective, norm, eps)
                         for label in ("bundled", "d-at"))
        change = (first - second) / first if first else float("nan")
        print(f"{objective}: {first:.1%} -> {second:.1%} ({change:.0%} relative reduction); "
              "PGD at the median threshold: " + ", ".join(
                  f"{label} {median_success(result, objective, norm, eps):.1%}"
                  for label, (result, _) in rows.items()))
        print("  D rejects G's samples: " + ", ".join(
            f"{label} {rejected(result, objective):.1%}" for label, (result, _) in rows.items()))
    fd_before, fd_after = rows["bundled"][0].gan["fd"], rows["d-at"][0].gan["fd"]
    print(f"FD: {fd_before:.3f} -> {fd_after:.3f} ({fd_after / fd_before - 1:+.1%})")
    plain, hardened = rows["control (plain)"][1], rows["d-at"][1]
    if plain and hardened:
        print(f"training time per epoch: plain {plain:.1f} s, d-at {hardened:.1f} s "
              f"({hardened / plain:.1f}x)")


if __name__ == "__main__":
    main()
