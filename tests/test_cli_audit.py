"""`robust audit` end to end through click's `CliRunner`: the default run, its outputs, and
one clear ``Error:`` line (never a traceback, never a clobbered report) for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli_runner import invoke
from click.testing import CliRunner, Result
from safetensors.torch import load_file
from small_models import NaNNet, WideInputNet
from torch import nn

from robustbench_lite.cli import cli
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN

WEIGHTS = (Path(__file__).resolve().parent.parent / "robustbench_lite" / "weights"
           / "digits_cnn.safetensors")
FAST = ("--n-samples", "20", "--attack", "fgsm", "--threat", "linf:0.1", "--no-transfer")
GOOD_REPORT = "<html>a previous good report</html>\n"
GOOD_RESULTS = '{"previous": true}\n'

#: torch 2.x deprecates the TorchScript API; a user never sees that DeprecationWarning (it is
#: not raised from __main__), so keep it out of the captured stderr here too.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.usefixtures("isolated_cli")]


# ---------------------------------------------------------------- helpers and fixtures


def printed_path(result: Result, label: str) -> Path:
    lines = [line for line in result.stdout.splitlines() if line.startswith(label)]
    assert len(lines) == 1, result.stdout
    return Path(lines[0][len(label):].strip())


def trained_cnn(num_classes: int = 10) -> DigitsCNN:
    model = DigitsCNN(num_classes=num_classes)
    if num_classes == 10:
        model.load_state_dict(load_file(str(WEIGHTS)))
    return model.eval()


class PickledCNN(DigitsCNN):
    """Pickled whole by ``torch.save(model)``; importable as part of this test module."""


def _state_dict_file(tmp: Path) -> Path:
    path = tmp / "digits_sd.pt"
    torch.save(trained_cnn().state_dict(), path)
    return path


def _text_file(tmp: Path) -> Path:
    path = tmp / "notes.pt"
    path.write_text("this is not a model\n" * 50)
    return path


def _truncated_zip(tmp: Path) -> Path:
    full = _state_dict_file(tmp)
    data = full.read_bytes()
    path = tmp / "truncated.pt"
    path.write_bytes(data[:len(data) // 2])
    return path


def _pickled_module(tmp: Path) -> Path:
    path = tmp / "whole.pt"
    model = PickledCNN()
    model.load_state_dict(load_file(str(WEIGHTS)))
    torch.save(model.eval(), path)
    return path


def _five_classes(tmp: Path) -> Path:
    torch.manual_seed(0)
    path = tmp / "five.pt"
    torch.save(trained_cnn(num_classes=5).state_dict(), path)
    return path


def _scripted(module: nn.Module, name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        torch.jit.save(torch.jit.script(module), str(path))
        return path
    return make


# ---------------------------------------------------------------- the default audit


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("default") / "out"
    result = invoke("audit", "--n-samples", "30", "--matrix", "quick", "--attack", "fgsm",
                    "--attack", "pgd:steps=3", "--no-transfer", "--out", str(out))
    return result, out


def test_default_audit(default_run: tuple[Result, Path]) -> None:
    result, out = default_run
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("Auditing the built-in default model 'digits-cnn'")
    assert "30 samples" in first
    report, results = printed_path(result, "Report:"), printed_path(result, "Results:")
    assert report == (out / "report.html").resolve() and report.is_file()
    assert results == (out / "results.json").resolve() and results.is_file()
    assert (out / "cells.csv").is_file()
    assert "Clean accuracy:" in result.stdout


def test_default_audit_results(default_run: tuple[Result, Path]) -> None:
    _, out = default_run
    doc = json.loads((out / "results.json").read_text())
    assert doc["clean_accuracy"] >= 0.9
    assert doc["data"]["name"] == "digits"
    assert doc["data"]["n_samples"] == 30
    assert doc["model"]["name"] == "digits-cnn"
    assert doc["model"]["format"] == "safetensors"
    assert doc["model"]["trusted"] is False
    assert doc["model"]["num_classes"] == 10
    attacks = {cell["attack"] for cell in doc["cells"]}
    assert attacks == {"fgsm", "pgd"}
    for cell in doc["cells"]:
        assert cell["error"] is None
        assert cell["n_samples"] == 30
    pgd = [cell for cell in doc["cells"] if cell["attack"] == "pgd"]
    assert all(cell["params"]["steps"] == 3 for cell in pgd)
    html = (out / "report.html").read_text()
    assert "digits-cnn" in html


def test_name_is_escaped_in_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("audit", *FAST, "--name", "My <b>model</b>", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["model"]["name"] == "My <b>model</b>"
    html = (out / "report.html").read_text()
    assert "<b>model</b>" not in html
    assert "My &lt;b&gt;model&lt;/b&gt;" in html


def test_threat_and_attack_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("audit", "--n-samples", "20", "--threat", "linf:8/255,0.1",
                    "--attack", "pgd:steps=3", "--no-transfer", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    cells = doc["cells"]
    assert {cell["attack"] for cell in cells} == {"pgd"}
    assert {cell["norm"] for cell in cells} == {"linf"}
    assert sorted(cell["eps"] for cell in cells) == pytest.approx([8 / 255, 0.1])
    assert all(cell["params"]["steps"] == 3 for cell in cells)


def test_quiet_prints_only_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("audit", *FAST, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert "Clean accuracy" not in result.stdout
    assert printed_path(result, "Report:").is_file()
    assert result.stderr == ""


# ---------------------------------------------------------------- model files that do load


def test_state_dict_file_with_arch(tmp_path: Path) -> None:
    model = _state_dict_file(tmp_path)
    out = tmp_path / "out"
    result = invoke("audit", model, "--arch", "digits-cnn", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"Auditing {model}")
    doc = json.loads((out / "results.json").read_text())
    assert doc["model"]["name"] == "digits_sd.pt"
    assert doc["model"]["format"] == "torch-checkpoint"
    assert doc["clean_accuracy"] >= 0.9


def test_pickled_module_with_trust(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("audit", _pickled_module(tmp_path), "--trust-model", *FAST, "--out", out,
                    "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["model"]["trusted"] is True
    assert doc["model"]["format"] == "torch-pickle"


def test_training_mode_torchscript_warns(tmp_path: Path) -> None:
    model = _scripted(trained_cnn().train(), "train_mode.pt")(tmp_path)
    out = tmp_path / "out"
    result = invoke("audit", model, *FAST, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, result.stderr
    assert "training mode" in warnings[0] and "evaluation mode" in warnings[0]
    assert "Traceback" not in result.output
    doc = json.loads((out / "results.json").read_text())
    assert any("evaluation mode" in note for note in doc["model"]["notes"])


# ---------------------------------------------------------------- bad inputs


#: (id, model file maker or None, extra arguments, text the error must contain)
BAD_INPUTS: list[tuple[str, Callable[[Path], Path] | None, tuple[str, ...], tuple[str, ...]]] = [
    ("missing file", lambda tmp: tmp / "does_not_exist.pt", (), ("not found",)),
    ("text file", _text_file, ("--arch", "digits-cnn"), ("not a model file",)),
    ("truncated zip", _truncated_zip, ("--arch", "digits-cnn"), ("truncated",)),
    ("wrong keys", _state_dict_file, ("--arch", "preact-resnet18"),
     ("missing keys", "unexpected keys", "conv1.weight", "features.0.weight")),
    ("state_dict without --arch", _state_dict_file, (), ("--arch",)),
    ("pickle without trust", _pickled_module, (), ("arbitrary code", "--trust-model")),
    ("class count", _five_classes, ("--arch", "digits-cnn", "--arch-kwargs",
                                    '{"num_classes": 5}'), ("5 classes", "has 10")),
    ("input shape", _scripted(WideInputNet().eval(), "cifar.pt"), (), ("(1, 8, 8)",)),
    ("nan logits", _scripted(NaNNet().eval(), "nan.pt"), (), ("NaN",)),
    ("unknown arch", _state_dict_file, ("--arch", "resnet9000"),
     ("'resnet9000'", "digits-cnn", "preact-resnet18")),
    ("bad arch import", _state_dict_file, ("--arch", "rbl_no_such_module:Net"),
     ("cannot import module",)),
    ("unknown attack", None, ("--attack", "nope"), ("'nope'", "fgsm", "pgd")),
    ("unknown attack parameter", None, ("--attack", "pgd:bogus=1"),
     ("bogus", "steps", "rel_step_size", "random_start", "restarts")),
    ("unknown dataset", None, ("--data", "no-such-data"), ("'no-such-data'", "digits")),
    ("zero eps", None, ("--threat", "linf:0"), ("greater than 0",)),
    ("negative eps", None, ("--threat", "linf:-0.1"), ("-0.1",)),
    ("unknown norm", None, ("--threat", "foo:0.1"), ("'foo'", "linf", "l2")),
    ("threat without eps", None, ("--threat", "linf"), ("NORM:EPS",)),
    ("bad arch-kwargs json", _state_dict_file, ("--arch", "digits-cnn", "--arch-kwargs",
                                                "{num_classes: 5"),
     ("--arch-kwargs", "JSON")),
    ("arch-kwargs not an object", _state_dict_file, ("--arch", "digits-cnn", "--arch-kwargs",
                                                     "[5]"), ("--arch-kwargs", "JSON object")),
    ("mean without std", None, ("--mean", "0.5"), ("--mean", "--std")),
    ("bad mean", None, ("--mean", "a,b", "--std", "0.2"), ("--mean",)),
    ("unknown format", _state_dict_file, ("--format", "onnx"), ("'onnx'", "torchscript")),
]


@pytest.mark.parametrize(("maker", "extra", "expected"),
                         [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_error_line(maker: Callable[[Path], Path] | None,
                                     extra: tuple[str, ...], expected: tuple[str, ...],
                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text(GOOD_REPORT)
    (out / "results.json").write_text(GOOD_RESULTS)
    model_args = [str(maker(tmp_path))] if maker else []
    result = invoke("audit", *model_args, *extra, "--n-samples", "20", "--matrix", "quick",
                    "--no-transfer", "--out", out, "-q")

    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert (out / "report.html").read_text() == GOOD_REPORT
    assert (out / "results.json").read_text() == GOOD_RESULTS
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json"]


def test_error_without_quiet_is_still_one_error_line(tmp_path: Path) -> None:
    model = _truncated_zip(tmp_path)
    result = invoke("audit", model, "--arch", "digits-cnn", "--n-samples", "20",
                    "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert result.stderr.splitlines()[-1] == errors[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("args", [("--help",), ("audit", "--help"), ("audit", "-h")])
def test_help_has_examples(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "Examples" in result.stdout
    assert "robust audit" in result.stdout


def test_audit_help_documents_the_options() -> None:
    text = invoke("audit", "--help").stdout
    for option in ("--arch", "--arch-kwargs", "--trust-model", "--mean", "--std", "--data",
                   "--n-samples", "--attack", "--threat", "--out", "--name", "--quiet"):
        assert option in text


# ---------------------------------------------------------------- the installed script


@pytest.mark.slow
def test_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "robust"
    assert script.is_file(), f"console script not installed next to {sys.executable}"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([str(script), "audit", "--n-samples", "20", "--matrix", "quick",
                           "--no-transfer", "--out", str(out), "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert (out / "report.html").is_file()
    doc = json.loads((out / "results.json").read_text())
    assert {cell["attack"] for cell in doc["cells"]} == {"fgsm", "pgd"}
    assert doc["clean_accuracy"] >= 0.9
    assert f"Report:  {(out / 'report.html').resolve()}" in done.stdout


def test_library_errors_name_arguments_and_the_cli_shows_flags(tmp_path: Path) -> None:
    from robustbench_lite.cli.errors import as_flags
    from robustbench_lite.errors import argument

    assert as_flags(f"check {argument('arch')} and {argument('arch_kwargs')}") == \
        "check --arch and --arch-kwargs"
    result = CliRunner().invoke(cli, ["harden", "--defense", "pgd-at:steps=0", "--out",
                                      str(tmp_path / "h")])
    assert result.exit_code == 1
    assert "Error: --defense pgd-at: steps must be an integer >= 1, got 0" in result.output
    assert "`" not in result.output
