"""A wheel built from the repository carries the templates and the default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_renders_a_report(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("robustbench_lite-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, capture_output=True)
    out = tmp_path / "out"
    script = ("import sys, robustbench_lite; print(robustbench_lite.__file__); "
              "sys.argv = ['robust', 'audit', '--n-samples', '20', '--matrix', 'quick', "
              "'--no-transfer', "
              f"'--out', {str(out)!r}, '-q']; "
              "from robustbench_lite.cli import main; main()")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith(str(site))
    assert "Robustness audit" in (out / "report.html").read_text()
    assert json.loads((out / "results.json").read_text())["data"]["n_samples"] == 20
