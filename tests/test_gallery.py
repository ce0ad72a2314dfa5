"""The false-robustness gallery (benchmarks/gallery.py) pinned: an honest defense raises no
failing check, an obfuscating one is flagged and a fallback finds a lower number than the
naive attack."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.hardening import harden
from robustbench_lite.training.harden import HardenSettings

GALLERY = Path(__file__).resolve().parents[1] / "benchmarks" / "gallery.py"


def _gallery() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gallery", GALLERY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _row(defense: str, kind: str, tmp_path: Path) -> Any:
    gallery = _gallery()
    outcome = harden(defenses=[defense], out=tmp_path,
                     settings=HardenSettings(epochs=2, seed=0), matrix="quick",
                     n_samples=150, transfer=True)
    return gallery.row_for(defense, kind, outcome.after, 0.0)


def test_every_gallery_defense_is_registered(catalogue: Catalogue) -> None:
    from robustbench_lite.defenses.spec import build_recipe

    for _, specs, _ in _gallery().DEFENSES:
        if specs:
            build_recipe(list(specs), catalogue)


@pytest.mark.slow
def test_an_obfuscating_defense_is_flagged_and_its_truth_found(tmp_path: Path) -> None:
    row = _row("input-transform:kind=jpeg,quality=25", "obfuscating", tmp_path)
    assert any("(fail)" in flag for flag in row.flagged)
    assert row.naive_pgd - row.worst >= 0.1
    assert row.found_by != "the matrix's own attacks"


@pytest.mark.slow
def test_an_honest_defense_raises_no_failing_check(tmp_path: Path) -> None:
    row = _row("denoiser:loss=hgd,freeze_classifier=false", "honest", tmp_path)
    assert not any("(fail)" in flag for flag in row.flagged)
