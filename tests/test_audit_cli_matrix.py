"""`robust audit` with matrices, gates, transfer and the result store; the Python API; and a
real run killed with SIGKILL that resumes to the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import robustbench_lite
from robustbench_lite.cli import cli
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.results import AuditResult

ROBUST = Path(sys.executable).parent / "robust"
QUICK = ["--matrix", "quick", "--n-samples", "60", "--no-transfer", "-q"]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["audit", *args])


def test_quick_matrix_gates_and_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(*QUICK, "--out", str(out), "--fail-under", "0",
                    "--fail-under-at", "linf:0.1=0.01")
    assert result.exit_code == 0, result.output
    assert "matrix 'quick'" in result.output.splitlines()[0]
    raw = json.loads((out / "results.json").read_text())
    assert raw["matrix"] == {"name": "quick", "version": "1"}
    assert raw["mode"] == "full"
    assert {(c["attack"], c["eps"]) for c in raw["cells"]} == {
        (a, e) for a in ("fgsm", "pgd") for e in (0.05, 0.1)}
    assert [g["passed"] for g in raw["gates"]] == [True, True, True]
    assert (out / "results.sqlite").is_file()
    assert raw["per_class"] and raw["curves"]


def test_failing_gate_exits_3(tmp_path: Path) -> None:
    result = invoke(*QUICK, "--out", str(tmp_path), "--fail-under", "99%")
    assert result.exit_code == 3
    assert "Gate FAILED: worst-case robust accuracy" in result.stderr
    assert json.loads((tmp_path / "results.json").read_text())["gates"][0]["passed"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--fail-under", "1.5"], "between 0 and 1"),
    (["--fail-under-at", "linf0.1=0.5"], "NORM:EPS=ACCURACY"),
    (["--matrix", "nope"], "unknown threat matrix 'nope'"),
])
def test_bad_gate_or_matrix_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = invoke(*QUICK, "--out", str(tmp_path), *args)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.output


def test_transfer_with_surrogate(tmp_path: Path) -> None:
    result = invoke("--matrix", "quick", "--n-samples", "60", "--threat", "linf:0.2",
                    "--out", str(tmp_path), "-q")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "results.json").read_text())["transfer"]
    pairs = {(row["source"], row["target"]) for row in rows}
    assert pairs == {("digits-cnn", "digits-cnn"), ("digits-cnn", "surrogate of digits-cnn"),
                     ("surrogate of digits-cnn", "digits-cnn"),
                     ("surrogate of digits-cnn", "surrogate of digits-cnn")}


def test_compare_builds_a_table_over_every_pair(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from robustbench_lite.builtin.architectures import DIGITS_CNN

    assert DIGITS_CNN.weights is not None
    weights = load_file(str(DIGITS_CNN.weights))
    other = tmp_path / "other.safetensors"
    save_file({k: v * 0.5 if k.endswith("3.weight") else v for k, v in weights.items()},
              str(other))
    result = invoke("--matrix", "quick", "--threat", "linf:0.1", "--n-samples", "40",
                    "--compare", str(other), "--arch", "digits-cnn", "--out", str(tmp_path),
                    "-q")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "results.json").read_text())["transfer"]
    assert {(r["source"], r["target"]) for r in rows} == {
        (a, b) for a in ("digits-cnn", "other.safetensors")
        for b in ("digits-cnn", "other.safetensors")}


def test_python_api_mirrors_the_cli() -> None:
    result = robustbench_lite.audit(matrix="quick", n_samples=40, transfer=False,
                                    threats=["linf:0.1"], attacks=["fgsm"])
    assert isinstance(result, AuditResult)
    assert [(c.attack, c.eps) for c in result.cells] == [("fgsm", 0.1)]
    assert 0 <= result.robust_accuracy[0].accuracy <= result.clean_accuracy


def cell_numbers(out: Path) -> list[tuple[Any, ...]]:
    raw = json.loads((out / "results.json").read_text())
    return [(c["attack"], c["eps"], c["accuracy"], c["mean_distance"], c["queries"])
            for c in raw["cells"]] + [(r["eps"], r["accuracy"]) for r in raw["robust_accuracy"]]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_numbers(tmp_path: Path) -> None:
    args = ["audit", "--matrix", "quick", "--attack", "fgsm", "--attack",
            "square:n_queries=800", "--threat", "linf:0.05,0.1,0.15", "--n-samples", "80",
            "--no-transfer", "-q"]  # six units: fgsm and square at three eps
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([str(ROBUST), *args, "--out", str(tmp_path / "whole")], check=True,
                   cwd=tmp_path, env=env, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([str(ROBUST), *args, "--out", str(killed)], cwd=tmp_path,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store_path = killed / ResultStore.FILENAME
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if store_path.exists():
                with ResultStore(store_path) as store:
                    if len(store) >= 1:
                        break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    with ResultStore(store_path) as store:
        finished = len(store)
    assert 1 <= finished < 6, "the run was not interrupted mid-way"
    assert not (killed / "results.json").exists()
    subprocess.run([str(ROBUST), *args, "--out", str(killed)], check=True, cwd=tmp_path,
                   env=env, capture_output=True)
    assert cell_numbers(killed) == cell_numbers(tmp_path / "whole")
