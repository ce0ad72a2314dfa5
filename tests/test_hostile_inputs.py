"""Hostile and absurd inputs: each is one ``Error:`` line with exit code 1 before any attack
runs (never a traceback, never a late failure after the audit), or, for a damaged result
store record, a warning and a recomputed unit."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import invoke
from click.testing import Result
from safetensors.torch import load_file, save_file

from robustbench_lite.engine.store import ResultStore
from robustbench_lite.errors import ModelLoadError, ReportTemplateError, ThreatModelError
from robustbench_lite.models.architecture import checked_build
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.reports.render import check_templates, render_html
from robustbench_lite.reports.stub import stub_result
from robustbench_lite.threat import parse_eps

WEIGHTS = (Path(__file__).resolve().parent.parent / "robustbench_lite" / "weights"
           / "digits_cnn.safetensors")
#: A fast, quiet audit: one attack, one threat model, 20 samples, nothing optional.
FAST = ("--matrix", "quick", "--attack", "fgsm", "--threat", "linf:0.1", "--n-samples", "20",
        "--no-transfer", "--no-checks", "--examples", "0", "-q")
#: The same without the threat model, for cases that give their own.
FAST_NO_THREAT = ("--matrix", "quick", "--attack", "fgsm", "--n-samples", "20",
                  "--no-transfer", "--no-checks", "--examples", "0", "-q")

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.usefixtures("isolated_cli")]


def one_error(result: Result, *expected: str) -> str:
    """The single ``Error:`` line of a run that failed before any attack, with exit code 1."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "Auditing" not in result.stdout, "the audit started before the error"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- 1. eps and thresholds


@pytest.mark.parametrize("text", ["1e5000/1", "1e5000", "1e400/3", "1e99999", "1" * 500,
                                  "nan", "inf"])
def test_parse_eps_refuses_what_is_not_a_finite_float(text: str) -> None:
    with pytest.raises(ThreatModelError) as raised:
        parse_eps(text)
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 300


def test_parse_eps_still_reads_tiny_and_exact_values() -> None:
    assert parse_eps("1e-9999") == 0.0  # below float range: 0, refused later as eps <= 0
    assert parse_eps("8/255") == 8 / 255


def test_overflowing_threat_eps(tmp_path: Path) -> None:
    one_error(invoke("audit", "--threat", "linf:1e5000/1", *FAST_NO_THREAT, "--out",
                     tmp_path / "out"), "'1e5000/1'", "not finite", "8/255")


def test_overflowing_gate_eps(tmp_path: Path) -> None:
    one_error(invoke("audit", "--fail-under-at", "linf:1e5000/1=0.5", *FAST, "--out",
                     tmp_path / "out"), "gate", "'1e5000/1'", "not finite")


@pytest.mark.parametrize(("gate", "expected"), [
    ("linf:-0.1=0.5", "greater than 0"),
    ("linf:0.1=nan", "between 0 and 1"),
    ("linf:0.1=1e5000%", "between 0 and 1"),
    ("linf:0.1=abc", "not a number"),
])
def test_bad_gate(gate: str, expected: str, tmp_path: Path) -> None:
    one_error(invoke("audit", "--fail-under-at", gate, *FAST, "--out", tmp_path / "out"),
              expected)


@pytest.mark.parametrize("threshold", ["nan", "inf", "1e5000", "abc"])
def test_bad_fail_under(threshold: str, tmp_path: Path) -> None:
    one_error(invoke("audit", "--fail-under", threshold, *FAST, "--out", tmp_path / "out"),
              "--fail-under")


@pytest.mark.parametrize(("eps", "expected"), [
    ('"1e5000/1"', "threats[0].eps"),
    ("1e5000", "finite"),
    ("1" + "0" * 400, "finite"),
    ("1" + "0" * 5000, "cannot read the TOML"),
    ("nan", "finite"),
])
def test_matrix_file_with_overflowing_eps(eps: str, expected: str, tmp_path: Path) -> None:
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'name = "m"\nattacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\n'
                      f"eps = {eps}\n")
    line = one_error(invoke("audit", "--matrix", matrix, "--n-samples", "20", "--no-transfer",
                            "-q", "--out", tmp_path / "out"), str(matrix), expected)
    assert len(line) < 400


# ---------------------------------------------------------------- 2. devices


@pytest.mark.parametrize("device", ["meta", "cuda:99", "banana", "xla", ""])
def test_unusable_device(device: str, tmp_path: Path) -> None:
    if device == "cuda:99" and torch.cuda.device_count() > 99:  # pragma: no cover
        pytest.skip("a machine with 100 GPUs")
    one_error(invoke("audit", "--device", device, *FAST, "--out", tmp_path / "out"),
              "--device", repr(device), "choose one of: auto, cpu")


def test_unusable_device_for_harden(tmp_path: Path) -> None:
    one_error(invoke("harden", "--defense", "pgd-at", "--device", "meta", "-q", "--out",
                     tmp_path / "out"), "--device", "'meta'", "auto, cpu")


# ---------------------------------------------------------------- 3. model metadata and size


def _weights_with_metadata(tmp_path: Path, arch_kwargs: str, name: str = "m") -> Path:
    path = tmp_path / f"{name}.safetensors"
    save_file(load_file(str(WEIGHTS)), str(path),
              metadata={"architecture": "digits-cnn", "arch_kwargs": arch_kwargs})
    return path


@pytest.mark.parametrize(("arch_kwargs", "expected"), [
    ('{"num_classes": 1000000000}', ("num_classes", "1 to 99999", "1000000000")),
    ('{"num_classes": 1e9}', ("num_classes", "1000000000.0")),
    ('{"num_classes": -1}', ("num_classes", "-1")),
    ('{"num_classes": "abc"}', ("num_classes", "'abc'")),
    ('{"num_classes": true}', ("num_classes", "True")),
    ('{"in_channels": 100000000}', ("in_channels",)),
    ("{num_classes", ("not valid JSON",)),
    ("[1]", ("JSON object",)),
    ('{"num_classes": {"nested": 1}}', ("JSON object of plain values",)),
    ('{"num_classes": NaN}', ("not valid JSON",)),
])
def test_safetensors_metadata_is_validated(arch_kwargs: str, expected: tuple[str, ...],
                                           tmp_path: Path) -> None:
    model = _weights_with_metadata(tmp_path, arch_kwargs)
    line = one_error(invoke("audit", model, *FAST, "--out", tmp_path / "out"), str(model),
                     "metadata arch_kwargs", *expected)
    assert "--arch-kwargs" in line  # the way to override it


def test_arch_kwargs_option_is_validated(tmp_path: Path) -> None:
    model = _weights_with_metadata(tmp_path, "{}")
    one_error(invoke("audit", model, "--arch", "digits-cnn", "--arch-kwargs",
                     '{"num_classes": 1000000000}', *FAST, "--out", tmp_path / "out"),
              "--arch-kwargs num_classes", "1000000000")


def test_module_too_large_for_memory_is_refused_before_it_is_built(tmp_path: Path) -> None:
    model = _weights_with_metadata(tmp_path, "{}")
    one_error(invoke("audit", model, "--arch", "wrn-28-10", "--arch-kwargs",
                     '{"widen_factor": 1000}', *FAST, "--out", tmp_path / "out"),
              "wrn-28-10", "GiB", "more than this machine", "--arch-kwargs")


def test_imported_architecture_too_large_is_refused(tmp_path: Path) -> None:
    model = _weights_with_metadata(tmp_path, "{}")
    one_error(invoke("audit", model, "--arch", "torch.nn:Linear", "--arch-kwargs",
                     '{"in_features": 1000000, "out_features": 10000000}', *FAST, "--out",
                     tmp_path / "out"), "torch.nn:Linear", "GiB")


def test_builder_value_error_is_one_line(tmp_path: Path) -> None:
    model = _weights_with_metadata(tmp_path, "{}")
    one_error(invoke("audit", model, "--arch", "wrn-28-10", "--arch-kwargs", '{"depth": 5}',
                     *FAST, "--out", tmp_path / "out"), "ValueError", "depth")


def test_checked_build_measures_on_meta() -> None:
    with pytest.raises(ModelLoadError, match="GiB"):
        checked_build(torch.nn.Linear, {"in_features": 10**6, "out_features": 10**7}, "x")
    module = checked_build(DigitsCNN, {"num_classes": 3}, "digits")
    assert isinstance(module, DigitsCNN)
    assert next(module.parameters()).device.type == "cpu"


# ---------------------------------------------------------------- 4. npz datasets


def _npy(shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": shape})
    return buffer.getvalue() + payload


def test_npz_header_claiming_terabytes_is_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "huge.npz"
    labels = io.BytesIO()
    np.save(labels, np.zeros(100000, dtype=np.int64))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", _npy((100000, 3, 2048, 2048), "<f4", b"\0" * 1000))
        archive.writestr("y.npy", labels.getvalue())
    one_error(invoke("audit", "--data", path, *FAST, "--out", tmp_path / "out"), str(path),
              "x.npy", "(100000, 3, 2048, 2048)", "holds only")


def _idx(shape: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + b"".join(size.to_bytes(4, "big") for size in shape) \
        + payload


@pytest.mark.parametrize(("shape", "expected"), [
    ((2**31, 2**31, 2**31), "more than half of this machine's"),
    ((100000, 28, 28), "file is truncated"),
])
def test_mnist_idx_header_claiming_too_much_is_refused_before_reading(
        shape: tuple[int, ...], expected: str, tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(shape, b"\0" * 784))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx((1,), b"\0"))
    one_error(invoke("audit", "--data", f"mnist:{tmp_path}", *FAST, "--out", tmp_path / "out"),
              "t10k-images-idx3-ubyte", expected)


def test_npz_too_large_for_memory_is_refused(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("robustbench_lite.data.npz.memory_bytes", lambda: 1000)
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((20, 1, 8, 8), np.float32), y=np.arange(20) % 10)
    one_error(invoke("audit", "--data", path, *FAST, "--out", tmp_path / "out"),
              "more than half", "fewer samples")


def _npz(tmp_path: Path, labels: np.ndarray, **extra: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((len(labels), 1, 8, 8), np.float32), y=labels, **extra)
    return path


@pytest.mark.parametrize(("labels", "expected"), [
    (np.array([0, 1, 2, 2**40]), ("1,099,511,627,777 classes", "100,000")),
    (np.array([0, 1, 2, -1]), ("labels must lie in",)),
    (np.array([0.0, 1.0, 2.5, 3.0]), ("float64", "integer")),
    (np.array([0, 1, 2, 2**63 - 1], dtype=np.int64), ("classes",)),
])
def test_npz_bad_labels(labels: np.ndarray, expected: tuple[str, ...],
                        tmp_path: Path) -> None:
    one_error(invoke("audit", "--data", _npz(tmp_path, labels), *FAST, "--out",
                     tmp_path / "out"), *expected)


def test_labels_beyond_the_class_names_are_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path, np.array([0, 1, 11] * 4),
                class_names=np.array([str(i) for i in range(10)]))
    one_error(invoke("audit", "--data", path, *FAST, "--out", tmp_path / "out"),
              "labels must lie in [0, 10)", "0..11")


def test_labels_beyond_the_models_classes_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "ten.pt"
    torch.jit.save(torch.jit.script(DigitsCNN().eval()), str(model))
    path = _npz(tmp_path, np.arange(24) % 12)
    one_error(invoke("audit", model, "--data", path, *FAST, "--out", tmp_path / "out"),
              "10 classes", "has 12")


# ---------------------------------------------------------------- 5. the result store


def _damage_one_record(store_path: Path) -> None:
    connection = sqlite3.connect(store_path)
    digest, robust = connection.execute("SELECT digest, robust FROM units LIMIT 1").fetchone()
    longer = np.concatenate([np.load(io.BytesIO(robust)), np.array([True, False, True])])
    buffer = io.BytesIO()
    np.save(buffer, longer)
    connection.execute("UPDATE units SET robust = ? WHERE digest = ?",
                       (buffer.getvalue(), digest))
    connection.commit()
    connection.close()


def test_store_record_of_the_wrong_length_is_recomputed(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    out = tmp_path / "out"
    first = invoke("audit", *FAST, "--out", out)
    assert first.exit_code == 0, first.output
    before = json.loads((out / "results.json").read_text())
    _damage_one_record(out / ResultStore.FILENAME)

    with ResultStore(out / ResultStore.FILENAME) as store:
        key = store.keys()[0]
        with caplog.at_level(logging.WARNING):
            assert store.get(key) is None
    assert "damaged record" in caplog.text and str(out / ResultStore.FILENAME) in caplog.text

    again = invoke("audit", *FAST, "--out", out)
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    assert "damaged record" in again.stderr and "recomputed" in again.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["robust_accuracy"] == before["robust_accuracy"]
    with ResultStore(out / ResultStore.FILENAME) as store:
        record = store.get(store.keys()[0])  # the recomputed unit replaced the record
        assert record is not None and len(record.robust) == 20


# ---------------------------------------------------------------- 6. report templates


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ 1/0 }}", ("ZeroDivisionError: division by zero", "line 1")),
    ("{{ undefined_thing.attr }}", ("UndefinedError", "undefined_thing")),
    ('{% extends "default:report.html" %}{% block transfer %}{% for row in result.transfer %}'
     "{{ row.nope.x }}{% endfor %}{% endblock %}", ("UndefinedError", "nope")),
    ('{% extends "default:report.html" %}{% block certified %}'
     "{{ result.certificate.certified[0].eps / 0 }}{% endblock %}", ("ZeroDivisionError",)),
    ("{% for example in result.examples %}{{ example.missing() }}{% endfor %}",
     ("UndefinedError",)),
])
def test_template_failing_at_render_time_stops_the_audit_first(
        template: str, expected: tuple[str, ...], tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "report.html").write_text(template)
    one_error(invoke("audit", "--template-dir", folder, *FAST, "--out", tmp_path / "out"),
              "template report.html failed to render", *expected)
    assert not (tmp_path / "out").exists()


def test_default_templates_render_the_stub() -> None:
    check_templates()
    html = render_html(stub_result())
    assert "template-check" in html and "surrogate" in html


def test_render_html_turns_any_exception_into_one_line(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("ok {{ result.model.name.nope() }}")
    with pytest.raises(ReportTemplateError, match="failed to render") as raised:
        render_html(stub_result(), [tmp_path])
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------- 7. the output folder


def test_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    result = invoke("audit", *FAST, "--no-store", "--out", target)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1 and "is a file" in result.stderr


def test_out_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    one_error(invoke("audit", *FAST, "--no-store", "--out", tmp_path / "afile" / "sub"),
              "--out", "cannot write there", "Not a directory")


def test_out_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("robustbench_lite.cli.options.tempfile.mkstemp", refuse)
    one_error(invoke("audit", *FAST, "--no-store", "--out", tmp_path / "out"),
              "--out", "Permission denied", "writable")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_out_under_a_read_only_folder(tmp_path: Path) -> None:  # pragma: no cover - root CI
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        one_error(invoke("audit", *FAST, "--no-store", "--out", parent / "out"),
                  "Permission denied")
    finally:
        parent.chmod(0o755)


def test_disk_full_at_the_final_write_is_one_line(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("old report")

    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = invoke("audit", *FAST, "--no-store", "--out", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: cannot write the outputs to {out}: No space left on "
                               "device")
    assert (out / "report.html").read_text() == "old report"
    leftovers = [path.name for path in out.iterdir() if path.name.endswith(".tmp")]
    assert leftovers == [] and not (out / "results.json").exists()


def test_an_unwritable_report_output_is_one_line(tmp_path: Path) -> None:
    audit = invoke("audit", *FAST, "--out", tmp_path / "out")
    assert audit.exit_code == 0, audit.output
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("report", tmp_path / "out" / "results.json", "-o",
                    blocker / "report.html")
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("device", ["meta", "cuda:99", "banana"])
def test_the_python_api_refuses_unusable_devices(device: str) -> None:
    from robustbench_lite.api import usable_device
    from robustbench_lite.errors import DeviceError

    with pytest.raises(DeviceError, match=f"device '{device}'"):
        usable_device(device)


@pytest.mark.parametrize("config", ['{"z_dim": 1000000000}', '{"channels_4x4": -1}',
                                    '{"mapping_depth": "abc"}', '{"image_channels": 2.5}'])
def test_generator_config_metadata_is_validated_before_building(config: str,
                                                                tmp_path: Path) -> None:
    from robustbench_lite.errors import GeneratorError
    from robustbench_lite.semantic.stylegan import ColourDigitsGenerator

    path = tmp_path / "generator.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={
        "generator": ColourDigitsGenerator.name, "format_version": "1", "config": config})
    with pytest.raises(GeneratorError, match=r"malformed 'config' metadata.*whole number"):
        ColourDigitsGenerator.load(path)
