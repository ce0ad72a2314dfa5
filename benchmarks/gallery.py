"""The false-robustness gallery: defenses a reviewer meets, applied to the default model,
and what the audit makes of each.

For every defense: ``robust harden`` (through the API) trains it on the digits train split,
then the after-audit (quick matrix plus Linf 0.1, the digits standard budget, with every
sanity check) gives the accuracy a naive PGD reports, the audit's worst case, the checks
that did not pass, and the adaptive fallback (a ``+eot``, ``+bpda`` or ``+rescaled`` cell,
or the transfer table) whose number is the lowest. Honest defenses should raise no failing
check; obfuscating ones should be flagged, with their true accuracy found by a fallback.

Run: python benchmarks/gallery.py [--epochs 3] [--n-samples 450] [--out docs/gallery.md]
(with an existing docs/gallery.md only the table between its markers is replaced)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from robustbench_lite.api import audit
from robustbench_lite.hardening import harden
from robustbench_lite.results import AuditResult
from robustbench_lite.training.harden import HardenSettings

#: (label, defense specs, kind): kind is "honest" or "obfuscating".
DEFENSES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("none (the default model)", (), "baseline"),
    ("adversarial training (pgd-at)", ("pgd-at",), "honest"),
    ("denoiser, trained end to end", ("denoiser:loss=hgd,freeze_classifier=false",),
     "honest"),
    ("Gaussian augmentation (for smoothing)", ("gaussian-augmentation:sigma=0.25",),
     "honest"),
    ("defensive distillation, T=100", ("distillation:temperature=100",), "obfuscating"),
    ("bit-depth reduction, 3 bits", ("input-transform:kind=bit-depth,bits=3",),
     "obfuscating"),
    ("JPEG-like quantisation, quality 25", ("input-transform:kind=jpeg,quality=25",),
     "obfuscating"),
    ("random resize-and-pad", ("input-transform:kind=resize-pad",), "obfuscating"),
)

EPS = 0.1


@dataclass(frozen=True)
class Row:
    label: str
    kind: str
    clean: float
    naive_pgd: float | None
    worst: float
    flagged: tuple[str, ...]
    found_by: str
    seconds: float


def row_for(label: str, kind: str, result: AuditResult, seconds: float) -> Row:
    """What the audit made of one defended model at Linf `EPS`."""
    cells = {cell.attack: cell.accuracy for cell in result.cells
             if cell.norm == "linf" and abs(cell.eps - EPS) < 1e-9 and not cell.targeted
             and cell.accuracy is not None}
    worst = next(row.accuracy for row in result.robust_accuracy
                 if row.norm == "linf" and abs(row.eps - EPS) < 1e-9 and not row.targeted)
    lowest = min(cells, key=lambda name: cells[name]) if cells else "-"
    transfer = [row["accuracy"] for row in result.transfer
                if row.get("target") == result.model.name and row.get("source")
                != result.model.name and abs(float(row["eps"]) - EPS) < 1e-9]
    found_by = lowest if "+" in lowest else "the matrix's own attacks"
    if transfer and min(transfer) < worst:
        found_by = f"transfer ({min(transfer):.1%})"
    flagged = tuple(f"{check.name} ({check.status})" for check in result.checks
                    if check.status != "pass")
    return Row(label, kind, result.clean_accuracy, cells.get("pgd"), worst, flagged,
               found_by, seconds)


def run(epochs: int, n_samples: int | None) -> list[Row]:
    rows = []
    for label, specs, kind in DEFENSES:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            if specs:
                outcome = harden(defenses=specs, out=Path(folder),
                                 settings=HardenSettings(epochs=epochs, seed=0),
                                 matrix="quick", n_samples=n_samples, transfer=True)
                result = outcome.after
            else:
                result = audit(matrix="quick", n_samples=n_samples, transfer=True)
        rows.append(row_for(label, kind, result, time.perf_counter() - started))
        logging.info("%s: naive PGD %s, worst case %.1f%%, %s", label,
                     rows[-1].naive_pgd, 100 * rows[-1].worst, rows[-1].flagged)
    return rows


def markdown(rows: list[Row], epochs: int) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    lines = ["| defense | kind | clean | naive PGD | audit worst case | checks not passed "
             "| lowest number found by |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row.label} | {row.kind} | {pct(row.clean)} | {pct(row.naive_pgd)} "
                     f"| {pct(row.worst)} | {'; '.join(row.flagged) or 'none'} "
                     f"| {row.found_by} |")
    return "\n".join(lines) + f"\n\n({epochs} epochs each; Linf {EPS}.)\n"


BEGIN, END = "<!-- gallery table: written by benchmarks/gallery.py -->\n", \
    "<!-- end of gallery table -->\n"


def write_table(path: Path, table: str) -> None:
    """Put ``table`` between the markers of ``path`` (docs/gallery.md keeps its prose), or
    write it alone to a new file."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + table + END + rest.split(END, 1)[1]
    else:
        text = table
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rows = run(args.epochs, args.n_samples)
    table = markdown(rows, args.epochs)
    print(table)
    if args.out is not None:
        write_table(args.out, table)


if __name__ == "__main__":
    main()
